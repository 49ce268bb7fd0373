"""Previews of a container's files (the artifact gallery's tables and text), made under a budget whatever the file
claims: a preview holds at most a few MB while it is made, and what it shows is bounded in rows, columns, cell
length and bytes.

A Parquet file's first rows are read only as far as its page headers say they cost (`parquet_pages`): columns
whose first pages would pass `DECODE_BUDGET` are left out and named, and the rest are read as Arrow dictionary
values where they can be, so a long dictionary entry is cut once rather than copied into every row. A CSV's
fields are cut as they are parsed, before pandas sees them. Everything is escaped where it becomes HTML.
"""

from __future__ import annotations

import csv
import io
import itertools
import posixpath
import reprlib
from collections.abc import Iterator
from typing import Any

from ..common import text
from ..common.text import TIMES
from ..session.first_rows import first_rows_caption
from ..session.parquet_pages import Leaf, Limits, Unreadable, chunk_cost, footer_length

PREVIEW_ROWS = 20
PREVIEW_COLUMNS = 50
CELL_CHARS = 80  # a cell, a column's name or an index label is cut to this many characters
DENSE_LIMIT = 1_000_000  # a string column costing more than this read as it is is read as dictionary values
DECODE_BUDGET = 8_000_000  # what reading a Parquet file's first rows may hold, by its page headers
PARQUET_PREVIEW_LIMIT = 16_000_000  # Parquet keeps its index at the end: larger files get no preview
PARQUET_FOOTER_LIMIT = 1 << 20  # a file whose metadata is longer gets no preview (it is parsed whole)
CSV_PREVIEW_BYTES = 1 << 20  # a CSV preview is made from this prefix (its last, cut line dropped)
TEXT_PREVIEW_BYTES = 64 << 10
TEXT_PREVIEW_LINES = 20
TEXT_LINE_CHARS = 200
NAMED = 5  # columns named when saying which were left out

DELIMITERS = {".csv": ",", ".tsv": "\t"}
TEXT_SUFFIXES = (".txt", ".log", ".md", ".json", ".jsonl", ".ndjson")

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = CELL_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = _repr.maxarray = 10
# C0 controls (a tab and a line break aside) and DEL shown as the replacement character: they mean nothing in HTML.
_CONTROLS = {c: "\N{REPLACEMENT CHARACTER}" for c in [*range(0x20), 0x7F] if c not in (0x09, 0x0A)}


class NoPreview(Exception):
    """Why a file gets no preview (shown in its place)."""


def kind(name: str) -> str | None:
    """`table`, `text` or None: what preview a file of this name gets."""
    suffix = posixpath.splitext(name.lower())[1]
    if suffix in DELIMITERS or suffix == ".parquet":
        return "table"
    return "text" if suffix in TEXT_SUFFIXES else None


def cut(value: str, limit: int = CELL_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


# --- Parquet -----------------------------------------------------------------------------------------------------


def parquet(data: bytes) -> tuple[Any, str]:
    """The first rows of a Parquet file held whole in `data`, and what they show of it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        footer = footer_length(data[-8:], len(data))
    except Unreadable as exc:
        raise NoPreview(str(exc)) from None
    if footer > PARQUET_FOOTER_LIMIT:
        raise NoPreview(f"its metadata is over {text.size(PARQUET_FOOTER_LIMIT)}, too large to preview here")
    buffer = pa.py_buffer(data)
    bounds = {"thrift_string_size_limit": PARQUET_FOOTER_LIMIT, "thrift_container_size_limit": PARQUET_FOOTER_LIMIT}
    opened = pq.ParquetFile(pa.BufferReader(buffer), **bounds)
    meta, schema = opened.metadata, opened.schema_arrow
    leaves = [_leaves(field.type) for field in schema]
    if sum(leaves) != meta.num_columns:
        raise NoPreview("its schema and its columns disagree")
    groups = _first_groups(meta)
    index = {name for name in ((schema.pandas_metadata or {}).get("index_columns") or []) if isinstance(name, str)}
    order = sorted(range(len(schema)), key=lambda i: schema[i].name not in index)  # the index first: it labels rows
    first_leaf = [0, *itertools.accumulate(leaves)]
    budget, limits = DECODE_BUDGET, Limits()
    chosen: list[int] = []
    dictionary: list[str] = []  # columns read as Arrow dictionary values
    too_large: list[str] = []
    considered = 0
    for i in order:
        if considered == PREVIEW_COLUMNS + len(index):
            break
        considered += 1
        field = schema[i]
        nested = leaves[i] > 1 or not _flat(field.type)
        # Strings are read as they are unless copying their entries into each row would cost more than reading
        # them as Arrow dictionary values (which costs more time: ~0.5 ms a column).
        dictionary_too = not nested and _as_dictionary(field.type, meta.schema.column(first_leaf[i]).physical_type)
        try:
            cost = _field_cost(
                data, meta, range(first_leaf[i], first_leaf[i] + leaves[i]), nested, False, groups, budget, limits
            )
            as_dictionary = dictionary_too and cost > DENSE_LIMIT
        except Unreadable:
            if not dictionary_too:
                too_large.append(field.name)
                continue
            as_dictionary = True
        if as_dictionary:
            try:
                cost = _field_cost(data, meta, [first_leaf[i]], False, True, groups, budget, limits)
            except Unreadable:
                too_large.append(field.name)
                continue
            dictionary.append(field.name)
        budget -= cost
        chosen.append(i)
    if too_large and not chosen:
        raise NoPreview(f"reading its first rows would take over {text.size(DECODE_BUDGET)}, or its pages can't say")
    columns = [schema[i].name for i in sorted(chosen)]
    reader = opened
    if dictionary:
        reader = pq.ParquetFile(pa.BufferReader(buffer), metadata=meta, read_dictionary=dictionary, **bounds)
    got: list[Any] = []
    wanted = PREVIEW_ROWS
    if columns and groups:
        batches = reader.iter_batches(
            batch_size=PREVIEW_ROWS, row_groups=[g for g, _ in groups], columns=columns, use_threads=False
        )
        for batch in batches:
            got.append(batch.slice(0, wanted))
            wanted -= len(got[-1])
            if wanted <= 0:
                break
    if got:
        table = pa.Table.from_batches(got)
    else:
        read_schema = reader.schema_arrow  # made anew at each look
        table = pa.schema([read_schema.field(name) for name in columns]).empty_table()
    bounded = [_bounded(column) for column in table.columns]
    if any(new is not old for new, old in zip(bounded, table.columns, strict=True)):
        table = pa.table(bounded, names=columns)
    frame = table.replace_schema_metadata(schema.metadata).to_pandas()
    data_columns = len(schema) - len(index & set(schema.names))
    shown_data = len(frame.columns)
    caption = _shown(len(frame), meta.num_rows, data_columns)
    more = data_columns - shown_data - len([n for n in too_large if n not in index])
    if more > 0:
        caption += f"; the first {shown_data} columns shown, and {more:,} more columns"
    if too_large:
        named = ", ".join(cut(str(n), 40) for n in too_large[:NAMED]) + (", ..." if len(too_large) > NAMED else "")
        caption += (
            f"; left out, as reading their first rows would take over {text.size(DECODE_BUDGET)} or their pages "
            f"can't say: {named}"
        )
    return frame, caption


def _field_cost(
    data: bytes,
    meta: Any,
    leaves: Any,
    nested: bool,
    as_dictionary: bool,
    groups: list[tuple[int, int]],
    budget: int,
    limits: Limits,
) -> int:
    """What reading a field's first rows (its Parquet columns `leaves`) holds, by their page headers."""
    cost = 0
    for leaf in leaves:
        column = meta.schema.column(leaf)
        described = Leaf(
            column.physical_type, column.length or 0, nested or column.max_repetition_level > 0, as_dictionary
        )
        for group, rows in groups:
            cost += chunk_cost(data, meta.row_group(group).column(leaf), described, rows, budget - cost, limits)
    return cost


def _first_groups(meta: Any) -> list[tuple[int, int]]:
    """The row groups the first rows are in, each with how many of its rows are wanted."""
    groups: list[tuple[int, int]] = []
    wanted = PREVIEW_ROWS
    for group in range(min(meta.num_row_groups, 10_000)):
        rows = meta.row_group(group).num_rows
        if rows > 0:
            groups.append((group, min(rows, wanted)))
            wanted -= rows
            if wanted <= 0:
                break
    return groups


def _leaves(kind: Any) -> int:
    """How many Parquet columns hold an Arrow field of this type."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return sum(_leaves(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _leaves(kind.key_type) + _leaves(kind.item_type)
    if isinstance(kind, (pa.ListType, pa.LargeListType, pa.FixedSizeListType)) or pa.types.is_list_view(kind):
        return _leaves(kind.value_type)
    if isinstance(kind, pa.ExtensionType):
        return _leaves(kind.storage_type)
    return 1


def _flat(kind: Any) -> bool:
    import pyarrow as pa

    return not pa.types.is_nested(kind) and not (
        isinstance(kind, pa.ExtensionType) and pa.types.is_nested(kind.storage_type)
    )


def _as_dictionary(kind: Any, physical: str) -> bool:
    """Whether a column is read as Arrow dictionary values (asked for, or already so in the file's schema)."""
    import pyarrow as pa

    readable = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    return physical == "BYTE_ARRAY" and (pa.types.is_dictionary(kind) or any(test(kind) for test in readable))


def _bounded(column: Any) -> Any:
    """A column with its strings cut to a cell's length (a dictionary's entries cut once, then taken per row)."""
    import pyarrow as pa

    if not (pa.types.is_dictionary(column.type) or _is_text(column.type) or _is_bytes(column.type)):
        return column  # nothing long to cut (nested values are cut where they are shown)
    chunks = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            chunks.append(_cut_values(chunk.dictionary).take(chunk.indices))
        else:
            chunks.append(_cut_values(chunk))
    if all(new is old for new, old in zip(chunks, column.chunks, strict=True)):
        return column
    return pa.chunked_array(chunks, type=chunks[0].type)


def _cut_values(values: Any) -> Any:
    import pyarrow.compute as pc

    if _is_text(values.type):
        if len(values) == 0 or (pc.max(pc.binary_length(values)).as_py() or 0) <= CELL_CHARS:
            return values  # no string is longer in bytes, so none in characters
        long = pc.greater(pc.utf8_length(values), CELL_CHARS)
        ellipsis = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(values, 0, CELL_CHARS - 1), "\N{HORIZONTAL ELLIPSIS}", ""
        )
        return pc.if_else(long, ellipsis, values)
    if _is_bytes(values.type):
        return pc.binary_slice(values, 0, CELL_CHARS + 1)
    return values


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def _is_bytes(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind))


# --- CSV and TSV -------------------------------------------------------------------------------------------------


def delimited(data: bytes, whole: bool, size: int | None, sep: str = ",") -> tuple[Any, str]:
    """The first rows of a CSV (or TSV) from its first bytes (`whole`: they are all of it), and what they show."""
    import pandas as pd

    end = len(data)
    if not whole:
        end = data.rfind(b"\n", 0, CSV_PREVIEW_BYTES) + 1  # cut off: keep the complete lines
        if end == 0:
            raise NoPreview(f"no complete line in its first {text.size(CSV_PREVIEW_BYTES)}")
    records: list[list[str]] = []
    width = 0
    try:
        for record in csv.reader(_lines(data, end), delimiter=sep):
            if not record:
                continue  # a blank line, which pandas skips too
            if not records:
                width = len(record)
            records.append([cut(field) for field in record[:PREVIEW_COLUMNS]])
            if len(records) > PREVIEW_ROWS:
                break
    except csv.Error as exc:
        raise NoPreview(cut(str(exc), 200)) from None
    if not records:
        raise NoPreview("no columns in it")
    kept = io.StringIO()
    csv.writer(kept, delimiter=sep, lineterminator="\n").writerows(records)
    frame = pd.read_csv(io.StringIO(kept.getvalue()), sep=sep)
    total = _count_rows(data, sep) if whole else None
    if total is not None:
        caption = _shown(len(frame), total, width)
    else:
        rows = f"{len(frame)} row{'s' if len(frame) != 1 else ''}"
        caption = f"first {rows} {TIMES} {width:,} columns of a {text.size(size)} file"
    if width > PREVIEW_COLUMNS:
        caption += f"; the first {PREVIEW_COLUMNS} columns shown, and {width - PREVIEW_COLUMNS:,} more columns"
    return frame, caption


def _lines(data: bytes, end: int) -> Iterator[str]:
    """The lines of `data[:end]` (which ends a line), decoded as far as they are read; nothing is copied whole."""
    stream = io.BytesIO(data)
    first = True
    while stream.tell() < end:
        line = stream.readline().decode("utf-8", errors="replace")
        if first:
            line, first = line.removeprefix("\N{BYTE ORDER MARK}"), False
        yield line


def _count_rows(data: bytes, sep: str) -> int | None:
    """The rows of a whole (bounded) CSV under its header, as pandas counts them (blank lines skipped); None when
    pandas can't read it."""
    import pandas as pd

    if not any(mark in data for mark in (b'"', b"\r", b"\n\n")) and not data.startswith(b"\n"):
        return max(0, data.count(b"\n") + (not data.endswith(b"\n")) - 1)  # no quotes, no blank lines: lines are rows
    try:  # one column parsed, in chunks: memory stays small whatever the width
        with pd.read_csv(io.BytesIO(data), sep=sep, usecols=[0], chunksize=100_000) as chunks:
            return sum(len(chunk) for chunk in chunks)
    except Exception:
        return None


# --- text ----------------------------------------------------------------------------------------------------------


def text_lines(data: bytes, whole: bool, size: int | None) -> tuple[str, str]:
    """The first lines of a text file (each cut to `TEXT_LINE_CHARS`) from its first bytes, and what they show."""
    lines = data[:TEXT_PREVIEW_BYTES].decode("utf-8", errors="replace").translate(_CONTROLS).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    shown = [cut(line.rstrip("\r"), TEXT_LINE_CHARS) for line in lines[:TEXT_PREVIEW_LINES]]
    if whole and len(data) <= TEXT_PREVIEW_BYTES and len(lines) <= TEXT_PREVIEW_LINES:
        caption = f"{len(lines):,} line{'s' if len(lines) != 1 else ''}"
    else:
        lines_said = f"{len(shown)} line{'s' if len(shown) != 1 else ''}"
        caption = f"first {lines_said} of a {text.size(size if size is not None else len(data))} file"
    return "\n".join(shown), caption


# --- as HTML -------------------------------------------------------------------------------------------------------


def table_html(frame: Any) -> str:
    """A preview's frame as an HTML table of at most PREVIEW_ROWS rows and PREVIEW_COLUMNS columns, every cell,
    label and name cut to CELL_CHARS characters and escaped. Strings are cut as a preview reads them (`parquet`,
    `delimited`); Python objects (nested values, bytes) are cut here."""
    import numpy as np

    shown = frame
    if len(frame) > PREVIEW_ROWS or len(frame.columns) > PREVIEW_COLUMNS:
        shown = frame.iloc[:PREVIEW_ROWS, :PREVIEW_COLUMNS]
    cut_columns = {}
    for i, dtype in enumerate(shown.dtypes):
        if not (isinstance(dtype, np.dtype) and dtype.kind == "O"):
            continue  # numbers and times, which pandas formats short, and strings, cut as they were read
        values = shown.iloc[:, i].tolist()
        if not all(_fits(value) for value in values):
            cut_columns[i] = [_cell(value) for value in values]
    if cut_columns:
        import pandas as pd

        shown = shown.copy()
        for i, values in cut_columns.items():
            shown.isetitem(i, pd.Series(values, index=shown.index, dtype=object))
    index, columns = _labels(shown.index), _labels(shown.columns)
    if index is not shown.index or columns is not shown.columns:
        shown = shown.set_axis(index, axis=0).set_axis(columns, axis=1)
    html: str = shown.to_html()
    return html


def _fits(value: Any) -> bool:
    """Shown as it is: a number, a missing value or a short string."""
    return (
        value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= CELL_CHARS)
    )


def _cell(value: Any) -> Any:
    import pandas as pd

    if _fits(value):
        return value  # pandas formats numbers and missing values
    if isinstance(value, str):
        return cut(value)
    if isinstance(value, (bytes, bytearray)):
        return cut(repr(bytes(value[: CELL_CHARS + 1])))
    if pd.api.types.is_scalar(value):
        return cut(str(value))
    return cut(_repr.repr(value))


def _labels(index: Any) -> Any:
    """The labels cut, or `index` itself when every one is short."""
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        levels = [_labels(level) for level in index.levels]
        names = [_cell(name) for name in index.names]
        if all(new is old for new, old in zip(levels, index.levels, strict=True)) and names == list(index.names):
            return index
        return index.set_levels(levels).set_names(names)
    if getattr(index.dtype, "kind", "O") in "biufcmM" or (len(index) == 0 and _fits(index.name)):
        return index
    labels = index.tolist()
    if all(_fits(label) for label in labels) and (index.name is None or _fits(index.name)):
        return index
    return pd.Index([_cell(label) for label in labels], name=_cell(index.name))


def _shown(rows: int, total: int, columns: int) -> str:
    if rows < total:
        return first_rows_caption(rows, total, columns)
    return f"{total:,} row{'s' if total != 1 else ''} {TIMES} {columns} columns"
