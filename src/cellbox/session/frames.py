"""DataFrames and JSON values on their way into and out of a container.

Fingerprints come from the Arrow form of a frame (tens of milliseconds for millions of rows, far cheaper than
writing it), so re-pushing unchanged data costs almost nothing. Reading results back reuses the container
runtime's own reader, so both ends agree on formats and dtypes. A cell's last value that the container sent only
the first rows of (runtime.values.MAX_VALUE_ROWS) comes back as a frame that says so when shown.

What comes back is the container's word, so before a value is read the memory reading its file takes is bounded
(`declared_size`) and checked against what this machine has free (`available_memory`), and a value that can't fit
fails with one line saying what to do (`TooLarge`) instead of taking the kernel down. The bound comes from what
the reader acts on, never from what the file claims about itself: a Parquet file's page headers (each row charged
the dictionary entry it copies: 300 rows naming one 4 MiB entry are 1.2 GB of strings in a 390-byte file), an
array's shape, and for JSON and CSV what is counted in the text (lists and dicts; lines times the header's
fields, as pandas fills short lines). A file that can't be bounded is refused as the record would be.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from ..api import CellboxError
from ..boundary import record
from ..common import text
from ..runtime import values as runtime
from . import parquet_pages
from .parquet_pages import ChunkPages, Unreadable

# Reading a Parquet file into pandas holds the Arrow table and the frame at once: 2.2x the frame for numbers,
# 2.1x for strings, measured; a little more for safety. It is charged on the values as Arrow decodes them, a
# dictionary entry once for every row that names it, from what the page headers say (parquet_pages).
READ_PEAK = 2.5
METADATA_PEAK = 10  # parsed Parquet metadata, per byte of the footer that holds it (pandas' JSON in it aside)
# A value's bytes in memory by its Parquet physical type (a string's offset: its bytes are counted as decoded).
WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12, "BYTE_ARRAY": 8}
STRING_OBJECT = 64  # a string pandas holds as a Python object: 49 bytes and its pointer (UCS-4 text: 4 a byte)
BYTES_OBJECT = 48
NESTED_OBJECT = 128  # a row of a list or struct column, or a value in it, as pandas holds it (an array, a dict)
READER_BASE = 16 << 20  # Arrow's reader itself: its pools and threads (5-12 MB for a frame of three numbers)
# JSON as Python objects (json.load, then the runtime's from_json copies every list and dict), measured at
# their worst: [{"":0}, ...] takes ~400 bytes a dict, [[], ...] ~140 a list, a string up to 7x its text (one
# character outside Latin-1 makes all four bytes wide).
JSON_CONTAINER = 256  # per "[" or "{"
JSON_ITEM = 96  # per "," or ":" (a value, a key)
JSON_BYTE = 9
# A CSV as pandas reads it (NaN-filled where a line is short), and each column's dtype applied: ~65 bytes a cell at
# worst (numbers made strings), ~7 a byte (text made Python strings).
CSV_CELL = 96
CSV_BYTE = 10
CSV_COLUMN = 4096  # pandas' parser and frame, per column (a 200,000-column header alone took 786 MB)
CSV_HEADER_SCAN = 32 << 10  # a header longer than this is taken to be as wide as the file has commas


def _hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def kind_of(value: Any) -> str | None:
    """`dataframe`, `series`, `ndarray`, `json`, `bundle` (lists and dicts holding frames or arrays), or None for
    values that can't travel."""
    kind = runtime.frame_kind(value)
    if kind is not None:
        return kind
    if runtime.is_array(value):
        return "ndarray"
    parts: list[Any] = []
    try:
        runtime.to_json(value, parts)
    except (TypeError, ValueError, RecursionError):
        return None
    return "bundle" if parts else "json"


def fingerprint(value: Any) -> str:
    """A content hash of a value that travels (a frame's schema, index and dtypes included)."""
    h = _hasher()
    _fingerprint_into(h, value)
    return h.hexdigest()


def _fingerprint_into(h: xxhash.xxh3_128, value: Any) -> None:
    kind = kind_of(value)
    h.update(f"{kind}\0".encode())
    if kind in ("dataframe", "series"):
        import pyarrow as pa

        frame = value.to_frame(name="__series__" if value.name is None else value.name) if kind == "series" else value
        try:
            frame, extras = runtime.arrow_ready(frame)  # object columns as their values' JSON, as they travel
        except TypeError:  # a value in it can't travel: never the same as another, and `write` says why
            h.update(os.urandom(16))
            return
        h.update(json.dumps(extras, sort_keys=True).encode())
        table = pa.Table.from_pandas(frame, preserve_index=True)
        h.update(table.schema.serialize())
        for column in table.columns:
            for chunk in column.chunks:
                # Offset and length too: two slices of one buffer share its bytes but not their contents.
                h.update(f"{chunk.offset}:{len(chunk)}".encode())
                for buffer in chunk.buffers():
                    if buffer is not None:
                        h.update(buffer)
    elif kind == "ndarray":
        h.update(f"{value.dtype.str}:{value.shape}\0".encode())
        import numpy as np

        h.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8).data)
    elif kind in ("json", "bundle"):
        parts: list[Any] = []
        h.update(json.dumps(runtime.to_json(value, parts), sort_keys=True, allow_nan=False).encode())
        for part, _ in parts:
            _fingerprint_into(h, part)
    else:
        raise TypeError(f"can't fingerprint a {type(value).__name__}")


def file_fingerprint_bytes(data: bytes) -> str:
    """The fingerprint `file_fingerprint` gives a file holding these bytes."""
    h = _hasher()
    h.update(b"file\0")
    h.update(data)
    return h.hexdigest()


def file_fingerprint(path: Path, chunk_size: int = 1024 * 1024, report: Callable[[int], None] | None = None) -> str:
    """A content hash of a file, read in chunks (`report` hears the size of each)."""
    h = _hasher()
    h.update(b"file\0")
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
            if report is not None:
                report(len(chunk))
    return h.hexdigest()


def size_in_memory(value: Any) -> int:
    """About how many bytes a frame, series or array holds, or the frames and arrays in a list or dict (without
    looking at each string: it must be quick); 0 for other values, which are small."""
    kind = kind_of(value)
    if kind in ("dataframe", "series"):
        usage = value.memory_usage(index=True, deep=False)
        return int(usage if isinstance(usage, int) else usage.sum())
    if kind == "ndarray":
        return int(value.nbytes)
    if kind == "bundle":
        parts: list[Any] = []
        runtime.to_json(value, parts)
        return sum(size_in_memory(part) for part, _ in parts)
    return 0


def write(value: Any, stem: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write a value for the container: the `-i` variable named as the file (`stem`) is; returns the runtime's
    spec for it (kind, format, local path). `progress` hears how many rows each part of a frame written added. A
    value, or an entry of it, that can't travel is a TypeError naming it."""
    kind = runtime.frame_kind(value)
    if kind is not None:
        return runtime.write_frame(value, str(stem), kind, progress, name=stem.name, flag="-i")
    return runtime.write_value(value, str(stem), stem.name, flag="-i")


def read(spec: dict[str, Any], local_path: Path, name: str | None = None) -> Any:
    """Read a value the runtime exported (the `-o` variable `name`), from its downloaded file, once its declared
    size is known to fit in memory (`TooLarge` if not); the first rows of a longer frame (`truncated_from` rows)
    say so when shown. A bundle's parts are checked together, before any is read; a frame's object columns before
    their JSON is decoded."""
    free = available_memory()

    def decoding(containers: int, items: int, size: int) -> None:
        check_fits(name, _json_cost(containers, items, size), f"its object columns' values, {text.size(size)} of JSON")

    try:
        if spec.get("format") == "bundle":
            value = _read_bundle(spec, local_path, name, free, decoding)
        else:
            if free is not None:
                check_fits(name, *_declared(spec, local_path, name, free), free)
            value = runtime.read_value({**spec, "path": str(local_path)}, decoding)
    except runtime.BadDtype as exc:
        raise record.refused(f"{_which(name)} names {exc}") from None
    except runtime.BadValue as exc:
        raise record.refused(f"{_which(name)} holds {exc}") from None
    total = spec.get("truncated_from")
    if total and spec.get("kind") in ("dataframe", "series"):
        from .first_rows import first_rows

        return first_rows(value, total)
    return value


def _declared(spec: dict[str, Any], path: Path, name: str | None, free: int | None) -> tuple[int, str]:
    try:
        return declared_size(spec, path, free)
    except Unreadable as exc:
        raise record.refused(f"{_which(name)}'s file can't be checked before it is read: {exc}") from None


def _read_bundle(
    spec: dict[str, Any], path: Path, name: str | None, free: int | None, decoding: Callable[[int, int, int], None]
) -> Any:
    """A bundle's parts split into files of their own, their memory checked together, then read and assembled."""
    parts = runtime.split_bundle({**spec, "path": str(path)})
    try:
        if free is not None:
            sizes = [_declared(part, Path(part["path"]), name, free)[0] for part in parts]
            check_fits(name, sum(sizes), f"{len(parts) - 1:,} frames and arrays", free)
        with Path(parts[0]["path"]).open(encoding="utf-8") as f:
            around = json.load(f)
        return runtime.assemble([around, *(runtime.read_value(part, decoding) for part in parts[1:])])
    finally:
        for part in parts:
            Path(part["path"]).unlink(missing_ok=True)


def _which(name: str | None) -> str:
    return f"-o {name}" if name else "the value"


class TooLarge(CellboxError):
    """A value the container sent back would take more memory than this machine has free."""


def check_fits(name: str | None, needed: int, declared: str = "", available: int | None = None) -> None:
    """`TooLarge` when reading a value (the `-o` variable `name`) takes `needed` bytes, more than `available` (this
    machine's free memory unless given); `declared` says what makes it so large. Nothing is checked where free
    memory can't be known."""
    free = available_memory() if available is None else available
    if free is None or needed <= free:
        return
    what = f"-o {name}" if name else "a value the cell sent back"
    variable = name or "NAME"
    because = f" ({declared})" if declared else ""
    raise TooLarge(
        f"{what} is too large to bring back: reading it would take about {text.size(needed)}{because}, and this "
        f"machine has {text.size(free)} free. Bring back a sample instead (e.g. `sample = {variable}.sample(100_000)` "
        f"and -o sample), or write it to a file in the container (`{variable}.to_parquet('/mnt/data/{variable}"
        f".parquet')`) and pull it (`%container pull {variable}.parquet`)."
    )


def check_declared(name: str | None, size: int | None) -> None:
    """Before a value's file is downloaded: `TooLarge` when the size its record or listing declares for the file
    already can't fit in memory (a file is never smaller in memory than on disk)."""
    if size:
        check_fits(name, size, f"its file is {text.size(size)}")


def declared_size(spec: dict[str, Any], path: Path, free: int | None = None) -> tuple[int, str]:
    """The memory reading a value's file takes, as far as the file and its spec declare it, and in words what
    declares it. The container wrote both, so this is what they claim; it is read before anything is decoded.
    Given the `free` memory, a Parquet file that fits whatever its columns are is not looked at column by column
    (the figure is then an upper bound)."""
    size = path.stat().st_size
    kind = spec.get("format")
    if kind == "parquet":
        return _parquet_size(path, size, free)
    if kind == "npy":
        return _npy_size(path, size)
    if kind == "json":
        return _json_size(path, size)
    return _csv_size(path, size)


def _counts(path: Path, wanted: tuple[bytes, ...]) -> list[int]:
    """How often each of these bytes is in the file, read a few MB at a time."""
    found = [0] * len(wanted)
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            for i, byte in enumerate(wanted):
                found[i] += chunk.count(byte)
    return found


def _json_size(path: Path, size: int) -> tuple[int, str]:
    """JSON's lists and dicts, values and text, counted in the file (a "[" in a string counts too: an upper bound)."""
    opened, curly, commas, colons = _counts(path, (b"[", b"{", b",", b":"))
    containers = opened + curly
    needed = _json_cost(containers, commas + colons, size)
    said = f"a {text.size(size)} JSON file"
    if containers:
        said += f" of {containers:,} lists and dicts"
    return needed, said


def _json_cost(containers: int, items: int, size: int) -> int:
    return containers * JSON_CONTAINER + items * JSON_ITEM + size * JSON_BYTE


def _json_text_cost(data: bytes) -> int:
    return _json_cost(data.count(b"[") + data.count(b"{"), data.count(b",") + data.count(b":"), len(data))


def _csv_size(path: Path, size: int) -> tuple[int, str]:
    """A CSV's cells: its lines (each \\n or \\r ends one at the most) times the fields of its header, which
    pandas gives every row (NaN where a line is short), and its index; and what each column costs besides."""
    newlines, returns, commas = _counts(path, (b"\n", b"\r", b","))
    with path.open("rb") as f:
        head = f.read(CSV_HEADER_SCAN)
    width = csv_header_width(head, whole=len(head) == size)
    if width is None:  # each record has at most as many fields as the file has commas, and one
        width = commas + 1
    cells = (newlines + returns + 1) * (width + 1)
    said = f"a {text.size(size)} CSV file of {newlines + returns:,} lines {text.TIMES} {width:,} fields"
    return cells * CSV_CELL + (width + 1) * CSV_COLUMN + size * CSV_BYTE, said


def csv_header_width(head: bytes, whole: bool) -> int | None:
    """The fields of a CSV's first record (its header), as pandas' own parser splits it, from the file's first bytes
    (`whole`: all of it); None when the record doesn't end within them. The record has ended when a second one
    has begun, or the file has."""
    import io

    import pandas as pd

    try:
        probe = pd.read_csv(
            io.BytesIO(head),
            header=None,
            index_col=False,
            nrows=2,
            dtype=str,
            on_bad_lines="skip",
            encoding_errors="replace",  # the first bytes may end inside a character
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return 0 if whole and not head.strip() else None
    if len(probe) == 2 or (whole and len(probe) == 1):
        return int(probe.shape[1])
    return None


def _parquet_size(path: Path, size: int, free: int | None) -> tuple[int, str]:
    """What reading a Parquet file into pandas holds at its peak, from its footer and every page header (each
    row's copy of the dictionary entry it names included), or a bound on it that already passes `free`."""
    import mmap

    import pyarrow.parquet as pq

    from .parquet_pages import Limits, chunk_pages, footer_length

    with path.open("rb") as f:
        f.seek(max(0, size - 8))
        tail = f.read(8)
    try:
        footer = footer_length(tail, size)
    except Unreadable:
        footer = 0  # not Parquet: the reader says so
    check = footer * METADATA_PEAK
    if free is not None and check > free:
        return check, f"its Parquet metadata alone is {text.size(footer)}"
    meta = pq.read_metadata(path)
    kept = meta.metadata or {}
    check += sum(_json_text_cost(kept.get(key) or b"") for key in (b"pandas", b"PANDAS_ATTRS"))  # pandas parses
    leaves = _leaves(meta)
    rows, groups = meta.num_rows, meta.num_row_groups
    said = f"{rows:,} rows {text.TIMES} {meta.num_columns:,} columns"
    floor = check + int(READ_PEAK * sum(leaf.floor for leaf in leaves) * rows)
    if free is not None and floor > free:  # what the footer's rows take before any page is looked at
        return floor, said
    objects = _strings_as_objects()
    # A pyarrow writer's page holds at most 20,000 rows, or 1 MB: many times that many headers are not looked at.
    pages = 10_000 + rows * len(leaves) // 2_000 + size // 4_096
    limits = Limits(pages=pages, header_bytes=pages * 1_024)
    base = check + READER_BASE  # with no dictionary entry copied into a row
    uncompressed = strings = 0  # strings: their bytes decoded, the copies aside
    copies: list[_Copies] = []  # chunks whose rows copy dictionary entries
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for group in range(groups):
            row_group = meta.row_group(group)
            for index, leaf in enumerate(leaves):
                chunk = row_group.column(index)
                found = chunk_pages(data, chunk, limits)
                uncompressed += found.page_bytes
                cost, decoded = leaf.cost(row_group.num_rows, found, 0, objects)
                base += found.page_bytes + cost
                strings += decoded
                if free is not None and base > free:
                    return base, f"{said}, {text.size(uncompressed)} uncompressed or more"
                if found.indexed and found.dictionary is not None and leaf.copies_entries:
                    copy = _Copies(leaf, group, row_group.num_rows, found, chunk.compression, cost, decoded)
                    copy.bound(copy.most(), objects)
                    if copy.extra:
                        copies.append(copy)
        # A dictionary's longest entry is at most its page less the other entries' lengths. Where that bound
        # doesn't fit, each dictionary is decoded for its longest entry, and then each row's entry is looked up,
        # the largest first, until the figure fits, or can't whatever the rest turn out to be (`settled`).
        needed = base + sum(copy.extra for copy in copies)
        settled = base
        for exact in (False, True):
            if free is not None and needed <= free:
                break
            copies.sort(key=lambda copy: copy.extra, reverse=True)
            for copy in copies:
                if exact and copy.leaf.name is None:
                    continue
                copied = _copied(path, copy) if exact else _longest_copied(data, copy)
                if copied is None:
                    continue  # Arrow can't decode it either: the bound stands
                needed -= copy.extra
                copy.bound(copied, objects)
                needed += copy.extra
                settled += copy.extra if exact else 0
                if free is not None and (needed <= free or settled > free):
                    break
    strings += sum(copy.strings for copy in copies)
    said += f", {text.size(uncompressed)} uncompressed"
    if strings > uncompressed:
        said += f", {text.size(strings)} of strings decoded"
    return needed, said


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """A Parquet column as pandas gets it: `number` (a numpy dtype), `text` or `binary` (each row its own
    string), `dictionary` (a categorical: its entries once) or `other` (lists, structs, decimals, dates: Python
    objects); `name` is its field's, when the field is this one column."""

    kind: str
    physical: str
    width: int
    name: str | None

    @property
    def floor(self) -> int:
        """Bytes a row takes at the least."""
        return self.width if self.kind == "number" else 4 if self.kind != "other" else 0

    @property
    def copies_entries(self) -> bool:
        return self.physical == "BYTE_ARRAY" and self.kind != "dictionary"

    def cost(self, rows: int, pages: ChunkPages, copied: int, objects: bool) -> tuple[int, int]:
        """Bytes reading one chunk of `rows` rows holds besides its pages, the dictionary entries its rows copy
        taking `copied` bytes; and how many of them are strings' bytes."""
        levels = 2 * max(rows, pages.values)  # a nullable column's definition levels, decoded
        if self.kind == "number":
            objects_made = rows * 8 if self.physical == "BOOLEAN" else 0  # True, False and None, with nulls
            return int(READ_PEAK * (rows * self.width + levels)) + objects_made, 0
        if self.kind == "dictionary":
            entries = (pages.dictionary.uncompressed if pages.dictionary else 0) + pages.plain_bytes
            arrow = rows * 4 + 2 * entries + levels  # indices, and each entry once (and hashed, from a plain page)
            python = entries // 4 * STRING_OBJECT + 4 * entries if objects else 0
            return int(READ_PEAK * arrow) + python, entries
        values = rows if self.kind in ("text", "binary") else max(rows, pages.values)
        decoded = pages.plain_bytes + copied if self.physical == "BYTE_ARRAY" else values * self.width
        if self.kind == "text":
            arrow, python = values * 8 + decoded, (values * STRING_OBJECT + 4 * decoded if objects else 0)
        elif self.kind == "binary":
            arrow, python = values * 8 + decoded, values * BYTES_OBJECT + decoded
        else:
            arrow = values * parquet_pages.LEVELS_BYTES + rows * 8 + decoded
            python = (values + rows) * NESTED_OBJECT + 4 * decoded
        return int(READ_PEAK * (arrow + levels)) + python, decoded if self.physical == "BYTE_ARRAY" else 0


@dataclasses.dataclass
class _Copies:
    """A column chunk whose rows copy dictionary entries: what it costs with none copied, and what the copies may
    add (`extra`) by the best bound found so far."""

    leaf: _Leaf
    group: int
    rows: int
    pages: ChunkPages
    codec: str
    cost: int
    decoded: int
    extra: int = 0
    strings: int = 0  # the copies' bytes, by the same bound

    @property
    def indexed(self) -> int:
        return min(self.pages.indexed, self.rows if self.leaf.kind in ("text", "binary") else self.pages.values)

    def most(self) -> int:
        """The bytes the copies take at the most, by the dictionary page's headers alone."""
        page = self.pages.dictionary
        return self.indexed * max(0, page.uncompressed - 4 * page.values) if page else 0

    def bound(self, copied: int, objects: bool) -> None:
        """Takes `copied` bytes of copies as the bound."""
        cost, decoded = self.leaf.cost(self.rows, self.pages, copied, objects)
        self.extra, self.strings = cost - self.cost, decoded - self.decoded


def _longest_copied(data: Any, copy: _Copies) -> int | None:
    """The copies' bytes at the most, by the dictionary's longest entry."""
    from .parquet_pages import longest_entry

    try:
        return copy.indexed * longest_entry(data, copy.pages, copy.codec)
    except Unreadable:
        return None


def _copied(path: Path, copy: _Copies) -> int | None:
    """The bytes of every row's string in the chunk (a flat string column's), read as Arrow dictionary values: its
    indices and its dictionary, no string copied."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    name = copy.leaf.name
    try:
        opened = pq.ParquetFile(path, read_dictionary=[name])
        column = opened.read_row_group(copy.group, columns=[name], use_threads=False).column(0)
        total = 0
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):
                return None
            lengths = pc.binary_length(chunk.dictionary)
            total += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
    except (pa.ArrowException, OSError, ValueError, KeyError):
        return None
    return int(total)


def _leaves(meta: Any) -> list[_Leaf]:
    """The file's Parquet columns, each as pandas gets it (by the Arrow type of the field it is part of)."""
    import pyarrow as pa

    schema = meta.schema.to_arrow_schema()
    seen = collections.Counter(schema.names)
    kinds: list[str] = []
    names: list[str | None] = []  # a flat field's name, when no other field has it
    for field in schema:
        kind = field.type
        count = _leaf_count(kind)
        if pa.types.is_dictionary(kind):
            kinds.append("dictionary")
        elif any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)):
            kinds.append("text")
        elif any(test(kind) for test in (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)):
            kinds.append("binary")
        elif any(
            test(kind)
            for test in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_timestamp)
        ) or pa.types.is_duration(kind):
            kinds.append("number")
        else:
            kinds += ["other"] * count
            names += [None] * count
            continue
        if count != 1:
            raise Unreadable("its schema and its columns disagree")
        names.append(field.name if seen[field.name] == 1 else None)
    if len(kinds) != meta.num_columns:
        raise Unreadable("its schema and its columns disagree")
    leaves = []
    for index, kind in enumerate(kinds):
        column = meta.schema.column(index)
        physical = column.physical_type
        width = (column.length or 0) if physical == "FIXED_LEN_BYTE_ARRAY" else WIDTHS.get(physical, 8)
        if kind == "dictionary" and physical != "BYTE_ARRAY":
            kind = "number"  # a categorical of numbers: its codes, and its numbers once, are no more than these
        leaves.append(_Leaf(kind, physical, width, names[index]))
    return leaves


def _leaf_count(kind: Any) -> int:
    """How many Parquet columns hold an Arrow field of this type."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return sum(_leaf_count(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _leaf_count(kind.key_type) + _leaf_count(kind.item_type)
    if isinstance(kind, (pa.ListType, pa.LargeListType, pa.FixedSizeListType)) or pa.types.is_list_view(kind):
        return _leaf_count(kind.value_type)
    if isinstance(kind, pa.ExtensionType):
        return _leaf_count(kind.storage_type)
    return 1


def _strings_as_objects() -> bool:
    """Whether pandas makes a Python object of each string it reads (pandas before 3, or its strings in Python)."""
    import pandas as pd

    try:
        strings = pd.api.types.pandas_dtype("str")  # what a string column becomes
    except TypeError:
        return True
    return not (isinstance(strings, pd.StringDtype) and strings.storage == "pyarrow")


def _npy_size(path: Path, size: int) -> tuple[int, str]:
    import numpy as np

    with path.open("rb") as f:
        try:  # the header only: nothing is allocated
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(f)
        except ValueError:  # a version of the format these can't read: the loader says so
            return size, f"a {text.size(size)} array file"
    count = 1
    for n in shape:
        count *= int(n)
    return max(count * dtype.itemsize, size), f"an array of shape {shape} of {dtype}"


def available_memory() -> int | None:
    """Bytes this process can still take: the least of the system's available memory, its control groups' room
    (a notebook in a container has its cgroup's limit, not the host's memory) and its address-space limit. Where
    none of these can be read, half the physical memory; None when not even that is known."""
    rooms: list[int] = []
    if sys.platform.startswith("linux"):
        rooms += _meminfo() + _cgroup_rooms() + _rlimit_rooms()
    if not rooms:
        rooms += _sysconf_room()
    if not rooms and sys.platform == "win32":
        rooms += _windows_room()
    return min(rooms) if rooms else None


def _meminfo() -> list[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return [int(line.split()[1]) * 1024]
    except (OSError, ValueError, IndexError):
        pass
    return []


def _cgroup_rooms() -> list[int]:
    """Room under the memory limit of each control group this process is in (and their parents)."""
    rooms: list[int] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return rooms
    for line in lines:
        _, controllers, group = [*line.split(":", 2), "", ""][:3]
        if controllers == "":  # cgroup v2
            base, names = Path("/sys/fs/cgroup"), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            base, names = (
                Path("/sys/fs/cgroup/memory"),
                ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
            )
        else:
            continue
        folder = base / group.strip("/")
        while True:
            room = _cgroup_room(folder, *names)
            if room is not None:
                rooms.append(room)
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return rooms


def _cgroup_room(folder: Path, limit_file: str, usage_file: str, reclaimable: str) -> int | None:
    try:
        limit_text = (folder / limit_file).read_text().strip()
        if limit_text == "max" or int(limit_text) >= 1 << 60:
            return None
        usage = int((folder / usage_file).read_text())
        cache = 0  # page cache the kernel gives back under pressure: not used up
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == reclaimable:
                cache = int(value)
        return max(0, int(limit_text) - usage + cache)
    except (OSError, ValueError):
        return None


def _rlimit_rooms() -> list[int]:
    import resource

    rooms = []
    for limit, field in ((resource.RLIMIT_AS, "VmSize:"), (resource.RLIMIT_DATA, "VmData:")):
        soft = resource.getrlimit(limit)[0]
        if soft == resource.RLIM_INFINITY:
            continue
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(field):
                    rooms.append(max(0, soft - int(line.split()[1]) * 1024))
        except (OSError, ValueError, IndexError):
            continue
    return rooms


def _sysconf_room() -> list[int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return []
    for name, share in (("SC_AVPHYS_PAGES", 1), ("SC_PHYS_PAGES", 2)):
        try:
            pages = os.sysconf(name)
        except (ValueError, OSError):
            continue
        if pages > 0:
            return [pages * page // share]
    return []


def _windows_room() -> list[int]:
    import ctypes

    class Status(ctypes.Structure):
        _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong)] + [
            (name, ctypes.c_ulonglong)
            for name in ("total", "available", "page_total", "page_free", "virtual_total", "virtual_free", "extended")
        ]

    status = Status()
    status.length = ctypes.sizeof(Status)
    try:
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return [int(status.available)]
    except (AttributeError, OSError):
        pass
    return []
