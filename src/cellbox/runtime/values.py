"""Values in and out of the container, for cellbox's runtime: uploaded beside `container.py` and found as
`capture.py` is; not imported by the runtime in the container.

This module is the contract between the two ends: cellbox writes `-i` values with it and the runtime reads them;
the runtime writes `-o` values and the last value with it and cellbox reads them, so both agree on formats and
dtypes by construction. The standard library is enough to load it; pandas, pyarrow and numpy are used only for
values of theirs.

A value travels as one file and its *spec*, a JSON object that says how to read the file back:

    kind        format    the spec holds, besides "kind", "format" and "path"
    dataframe   parquet   "rows", "columns" (each column's name as a string), and what `arrow_ready` changed (below)
    series      parquet   the same, and "series_name" (str or None; the file holds one column)
    dataframe   csv       where pyarrow is missing: the same as parquet, and "dtypes", the dtype map
    series      csv       the same, and "series_name"
    ndarray     npy       nothing more (numbers, booleans, strings, times: no objects, so no pickle)
    json        json      nothing more (the file is `to_json`'s encoding)
    bundle      bundle    "parts": a list or dict holding frames or arrays, as one file of parts end to end, each
                          {"kind", "format", "offset", "length"} and its own spec's fields: the first is the JSON
                          around the others, where {"__cellbox__": "part", "index": i} stands for part i

A push adds "name" (the variable it is set as); a frame shown as the last value may add "truncated_from" (its
length, of which MAX_VALUE_ROWS rows were written). `write_value` writes one (`-o`, and `-i` through the client),
`write_frame` a frame or series, `read_value` reads any of them back; `describe_value` says what a cell's last
value is.

A frame travels as pandas holds it (`arrow_ready`): an object column whose values are not all strings (codes like
[101, "A7", None], lists, dicts, decimals, mixed types) is written as one JSON text per row, `to_json`'s encoding of
its value, and read back as those values ("json_columns", their positions; "complex_columns" the dtype of a complex
one); so is an object index ("json_index"). A sparse column is written dense (the same values). Column labels
that are not unique strings (ints, tuples, a name twice) are written as their positions and put back from "labels"
(their JSON). A frame of numbers and strings is written as it is, with nothing of this. What Parquet still refuses
is one line naming the column and the fix (`.astype(object)`), never Arrow's traceback.

The dtype map gives each column, by its name, the dtype it is read back as: a name in DTYPES, a
"datetime64[unit, zone]" whose zone is a name (TIME_ZONE), never a path, or {"dtype": "category", "categories":
[...], "ordered": bool}. `dtype_map` writes only these and `check_dtype` refuses anything else (`BadDtype`),
since `astype` of an arbitrary name can allocate what it likes or open a file.

JSON keeps what JSON alone loses by tagging it {"__cellbox__": tag, ...}: "tuple", "set", "frozenset" with
"items"; "dict" with "items" as [key, value] pairs (keys not all strings, or the tag among them); "float" (NaN and
infinities, by name); "complex"; "bytes", "bytearray" (base64); "datetime" and "Timestamp" (ISO text, and "zone"
where the zone has a name: TIME_ZONE, never a path), "date", "time", "timedelta", "Timedelta" (nanoseconds),
"decimal" (its text), "NaT", "NA"; "numpy" (a scalar with its dtype, one of NUMPY_SCALARS); "objects" (an array
of objects: "shape" and its "items"), "ndarray" (an array in a frame's cell, as Parquet gives lists back: "dtype",
one of NUMPY_SCALARS, "shape" and "items"). Whatever reads a spec or a tag refuses what `write_value` doesn't write
(`BadValue`, `BadDtype`, or what Python raises), and bounds it: MAX_PARTS parts, MAX_DEPTH levels of nesting.
Nothing is pickled.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from typing import Any

MAX_REPR = 100_000
MAX_VALUE_ROWS = 100_000  # rows of a frame sent back for display as a cell's last value
PART_ROWS = 1024 * 1024  # rows per Parquet row group when the writer reports its progress (as pyarrow writes)
FRAME_KINDS = ("dataframe", "series")
PART_KINDS = (*FRAME_KINDS, "ndarray", "json")  # of a bundle's parts
KINDS = (*PART_KINDS, "bundle")  # of a value's spec
PART_FORMATS = ("parquet", "csv", "npy", "json")
FORMATS = (*PART_FORMATS, "bundle")
MAX_PARTS = 10_000  # frames and arrays in one value (its bundle's parts, the JSON around them included)
MAX_COLUMNS = 1_000_000  # object columns a frame's spec names
MAX_DEPTH = 200  # lists, dicts, tuples and sets inside one another in a value
LAST_VALUE_KINDS = (*FRAME_KINDS, "json", "repr")  # of what `describe_value` says
TAG = "__cellbox__"

# The dtypes a CSV's dtype map names, and all `_apply_dtypes` reads: numbers, booleans, strings, objects and
# time, by the names pandas gives them (a category is a dict of its own). Any other name is refused, whoever wrote
# it: `astype` of a name it likes lets a record allocate what it likes ('S100000000' is 100 MB a row) or open a
# file (a 'dateutil/...' time zone is a path).
_BITS = {"int": (8, 16, 32, 64), "uint": (8, 16, 32, 64), "float": (16, 32, 64, 128), "complex": (64, 128, 256)}
_NULLABLE = {"Int": (8, 16, 32, 64), "UInt": (8, 16, 32, 64), "Float": (32, 64)}
DTYPES = frozenset(
    ["bool", "object", "str", "string", "boolean"]
    + [f"{kind}{bits}" for table in (_BITS, _NULLABLE) for kind, sizes in table.items() for bits in sizes]
    + [f"{kind}64[{unit}]" for kind in ("datetime", "timedelta") for unit in ("s", "ms", "us", "ns")]
)
TIME_ZONE = r"(?!dateutil/)[A-Za-z][A-Za-z0-9_+:-]{0,63}(?:/[A-Za-z0-9_+-]{1,64}){0,3}"  # a name, never a path
_DATETIME_TZ = re.compile(r"datetime64\[(?:s|ms|us|ns), (" + TIME_ZONE + r")\]")


class BadDtype(ValueError):
    """A dtype map names what cellbox doesn't read (see DTYPES)."""


class BadValue(ValueError):
    """A spec or file that `write_value` doesn't write: a bundle's parts out of bounds, an object column that is
    not its values' JSON, a tag that does not decode."""


class CannotTravel(TypeError):
    """A value, or an entry in it (`entry`, as Python would index it: `["model"]`, `[2]`, `, column 'c'`), of a
    type no format here holds faithfully (`type_name`)."""

    def __init__(self, type_name: str, entry: str = "") -> None:
        super().__init__(f"a {type_name} is not a value that can travel")
        self.type_name = type_name
        self.entry = entry

    def said(self, flag: str, name: str) -> str:
        """The error in one line, for the variable `name` of `-i` or `-o` (`flag`)."""
        move = "push" if flag == "-i" else "pull"
        return (
            f"{flag} {name}: {name}{self.entry} is a {self.type_name}, which can't travel (frames, arrays, numbers, "
            "strings, times, decimals, bytes, and lists and dicts of them can); convert it first, or save it to a "
            f"file and {move} the file."
        )


# --- the interface --------------------------------------------------------------------------------------------


def write_value(value: Any, path_stem: str, name: str, flag: str = "-o") -> dict[str, Any]:
    """Write the value `name` to `path_stem` plus its format's suffix; its spec. A value that can't travel
    faithfully (an entry of it no format holds) is a TypeError naming the variable and the entry, for `flag`'s
    user (`-o`, or `-i`)."""
    kind = frame_kind(value)
    if kind is not None:
        return write_frame(value, path_stem, kind, name=name, flag=flag)
    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)
    if is_array(value):
        return _write_array(value, path_stem)
    parts: list[Any] = []
    try:
        encoded = to_json(value, parts)
    except CannotTravel as exc:
        raise TypeError(exc.said(flag, name)) from None
    except (ValueError, RecursionError) as exc:
        raise TypeError(f"{flag} {name}: {name} can't travel: {exc}") from None
    if parts:
        return _write_bundle(encoded, parts, path_stem, name, flag)
    path = path_stem + ".json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(encoded, f)
    return {"kind": "json", "format": "json", "path": path}


def read_value(spec: dict[str, Any], on_decode: Callable[[int, int, int], None] | None = None) -> Any:
    """The value a spec describes, read from its "path" (only "format" is needed for JSON and arrays). A dtype
    record naming what isn't read is `BadDtype`, before the file is opened; a spec or file `write_value` doesn't
    write is `BadValue`. `on_decode`, when given, hears what decoding JSON text held in a frame's object columns
    will make (lists and dicts, values, bytes of text: `json_counts`) before it is decoded, and may refuse it."""
    if spec["format"] == "bundle":
        parts = split_bundle(spec)
        try:
            with open(parts[0]["path"], encoding="utf-8") as f:
                around = json.load(f)
            return assemble([around, *(read_value(part, on_decode) for part in parts[1:])])
        finally:
            for part in parts:
                _remove(part["path"])
    if spec["format"] == "json":
        with open(spec["path"], encoding="utf-8") as f:
            return from_json(json.load(f))
    if spec["format"] == "npy":
        import numpy

        return numpy.load(spec["path"], allow_pickle=False)
    return _read_frame(spec, on_decode)


def write_frame(
    frame: Any,
    path_stem: str,
    kind: str,
    progress: Callable[[int], None] | None = None,
    *,
    name: str = "",
    flag: str = "-o",
) -> dict[str, Any]:
    """Write a frame or series (`kind`, one of FRAME_KINDS) as Parquet, or as CSV with a dtype map where pyarrow
    is missing; its spec. Columns Arrow can't type travel as their values' JSON (`arrow_ready`). `progress`, when
    given, hears how many rows each part written added; `name` and `flag` name the variable in an error."""
    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)

    if kind == "series":
        series_name = frame.name
        frame = frame.to_frame(name="__series__" if series_name is None else series_name)
    else:
        series_name = None
    info: dict[str, Any] = {"kind": kind, "rows": len(frame), "columns": [str(c) for c in frame.columns]}
    if kind == "series":
        info["series_name"] = None if series_name is None else str(series_name)
    frame, extras = arrow_ready(frame, name, flag)
    info.update(extras)
    if _has_pyarrow():
        path = path_stem + ".parquet"
        try:
            if progress is None:
                frame.to_parquet(path)
            else:
                _write_parquet_in_parts(frame, path, progress)
        except Exception as exc:
            _raise_unwritable(exc, frame, name, flag)
        info.update(format="parquet", path=path)
    else:
        path = path_stem + ".csv"
        frame.to_csv(path, index=True)  # the index's name is in the header, and read_csv takes it from there
        info.update(format="csv", path=path, dtypes=dtype_map(frame))
    return info


def arrow_ready(frame: Any, name: str = "", flag: str = "-o") -> tuple[Any, dict[str, Any]]:
    """The frame as Parquet holds it, and what its spec says besides to read it back as it was: column labels that
    are not unique strings (ints, tuples, the same name twice) become their positions, the labels kept as JSON
    ("labels"); each object column whose values are not all strings, and each complex one, becomes the JSON of its
    values, one text per row ("json_columns": their positions), and so does an object index ("json_index"). A plain
    frame comes back as it is, uncopied."""
    import pandas as pd

    extras: dict[str, Any] = {}
    labels = list(frame.columns)
    plain_labels = isinstance(frame.columns, pd.MultiIndex) or (
        all(type(label) is str for label in labels) and len(set(labels)) == len(labels)
    )
    encoded = [
        i
        for i, dtype in enumerate(frame.dtypes)
        if dtype.kind == "c" or (str(dtype) == "object" and not _strings(frame.iloc[:, i]))
    ]
    sparse = [i for i, dtype in enumerate(frame.dtypes) if isinstance(dtype, pd.SparseDtype)]
    odd_index = (
        not isinstance(frame.index, pd.MultiIndex) and str(frame.index.dtype) == "object" and not _strings(frame.index)
    )
    if plain_labels and not encoded and not sparse and not odd_index:
        return frame, extras
    if not plain_labels:
        extras["labels"] = _json_entry(labels, name, flag, " (its column labels)")
        frame = frame.set_axis([str(i) for i in range(len(labels))], axis=1)
    else:
        frame = frame.copy(deep=False)
    for i in sparse:  # Parquet has no sparse columns: the same values, dense
        frame.isetitem(i, frame.iloc[:, i].sparse.to_dense())
    complex_columns = {str(i): str(frame.dtypes.iloc[i]) for i in encoded if frame.dtypes.iloc[i].kind == "c"}
    for i in encoded:
        column = frame.iloc[:, i]
        texts = _texts(column, frame.index, name, flag, labels[i])
        frame.isetitem(i, pd.Series(texts, index=frame.index, dtype=object))
    if encoded:
        extras["json_columns"] = encoded
        if complex_columns:
            extras["complex_columns"] = complex_columns
    if odd_index:
        texts = _texts(frame.index, range(len(frame.index)), name, flag, None)
        frame.index = pd.Index(texts, dtype=object, name=frame.index.name)
        extras["json_index"] = True
    return frame, extras


def json_counts(text: str) -> tuple[int, int, int]:
    """What decoding this JSON text makes at the most: lists and dicts, values, and bytes of text."""
    return text.count("[") + text.count("{"), text.count(",") + text.count(":"), len(text)


def split_bundle(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A bundle's parts, each its spec and its bytes in a file of its own beside the bundle ("path"): the first is
    the JSON around the others. `BadValue`, before a byte is copied, for parts that are not what `write_value`
    writes: too many, of a kind or format no part has, outside the file, or overlapping."""
    parts = spec.get("parts")
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTS:
        raise BadValue(f"a bundle of {len(parts) if isinstance(parts, list) else 'no'} parts (1 to {MAX_PARTS:,})")
    size = os.path.getsize(spec["path"])
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("kind") not in PART_KINDS or part.get("format") not in PART_FORMATS:
            raise BadValue("a bundle's part of a kind or format no part has")
        offset, length = part.get("offset"), part.get("length")
        if type(offset) is not int or type(length) is not int or min(offset, length) < 0 or offset + length > size:
            raise BadValue("a bundle's part outside its file")
        if index == 0 and part["kind"] != "json":
            raise BadValue("a bundle whose first part is not JSON")
    if sum(part["length"] for part in parts) > size:  # parts end to end: copying them takes no more than the file
        raise BadValue("a bundle whose parts overlap")
    made = []
    with open(spec["path"], "rb") as whole:
        try:
            for index, part in enumerate(parts):
                path = f"{spec['path']}.{index}.{part['format']}"
                whole.seek(part["offset"])
                with open(path, "wb") as out:
                    made.append({**part, "path": path})
                    _copy(whole, out, part["length"])
        except BaseException:
            for part in made:
                _remove(part["path"])
            raise
    return made


def assemble(values: list[Any]) -> Any:
    """A bundle's value from its parts' values: the first is the JSON around the others (as `to_json` made it),
    whose places it tags."""
    return from_json(values[0], values)


def describe_value(value: Any, out_dir: str, capture: Any) -> dict[str, Any]:
    """A cell's last value: its type ("type", module and name), its mimebundle as the shell's displayhook makes it
    with `capture.format_value` ("bundle"; "repr_error" when a `_repr_*_` raised), and for the Python API the
    value itself where it travels. Its "kind" (LAST_VALUE_KINDS) says how: a frame or series written to `out_dir`
    as `write_frame` does (up to MAX_VALUE_ROWS rows, "truncated_from" saying how many it had), a JSON value up to
    MAX_REPR characters in "json" (encoded as `to_json` does), else only its "repr" (which "json" has too)."""
    described: dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    try:
        described["bundle"] = capture.format_value(value)
    except Exception as exc:  # a broken _repr_*_ must not fail the run: IPython shows the plain repr then
        described["bundle"] = {"data": {"text/plain": _safe_repr(value)}, "metadata": {}}
        described["repr_error"] = f"{type(exc).__name__}: {exc}"
    kind = frame_kind(value)
    if kind is not None:
        shown = value
        if len(value) > MAX_VALUE_ROWS:  # to be displayed, not kept: -o brings a whole frame back
            shown = value.head(MAX_VALUE_ROWS)
            described["truncated_from"] = len(value)
        try:
            described.update(write_frame(shown, os.path.join(out_dir, "value"), kind))
            return described
        except Exception:  # e.g. a Series of dtype objects, which Parquet can't hold: its repr stands
            described.pop("truncated_from", None)
    try:
        encoded = to_json(_plain_scalar(value))
    except (TypeError, ValueError):
        encoded = None
    else:
        if len(json.dumps(encoded)) <= MAX_REPR:
            described.update(kind="json", json=encoded)
    described.setdefault("kind", "repr")
    described["repr"] = _limited(_safe_repr(value), MAX_REPR)
    return described


def frame_kind(value: Any) -> str | None:
    """ "dataframe" or "series" for pandas' (without importing pandas where the cell didn't), else None."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return "dataframe"
        if isinstance(value, pd.Series):
            return "series"
    return None


def to_json(value: Any, parts: list[Any] | None = None, _entry: str = "", _depth: int = 0) -> Any:
    """A value as JSON that keeps what JSON alone loses by tagging it (see the table above). Where `parts` is
    given, a frame, series or array inside the value is appended to it with its entry (`(value, '["a"][0]')`) and
    tagged by its place there (counted from 1: the JSON around them is the first part). An entry of any other type
    is `CannotTravel` naming it; nesting past MAX_DEPTH is a ValueError."""
    if value is None or type(value) in (bool, int, str):  # the common case first
        return value
    if _depth > MAX_DEPTH:
        raise ValueError(f"it is nested more than {MAX_DEPTH} levels deep")
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return _numpy_scalar(value, _entry)
    if isinstance(value, (bool, int, str)):  # subclasses (an IntEnum) as the plain value
        return bool(value) if isinstance(value, bool) else int(value) if isinstance(value, int) else str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {TAG: "float", "value": repr(float(value))}
        return float(value)
    inner = _depth + 1
    if isinstance(value, list):
        return [to_json(v, parts, f"{_entry}[{i}]", inner) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [to_json(v, parts, f"{_entry}[{i}]", inner) for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        kind = "set" if isinstance(value, set) else "frozenset"
        return {TAG: kind, "items": [to_json(v, parts, f"{_entry} (an item)", inner) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        if all(type(k) is str for k in value) and TAG not in value:
            return {k: to_json(v, parts, f"{_entry}[{k!r}]", inner) for k, v in value.items()}
        return {
            TAG: "dict",
            "items": [
                [to_json(k, parts, f"{_entry} (a key)", inner), to_json(v, parts, f"{_entry}[{k!r}]", inner)]
                for k, v in value.items()
            ],
        }
    tagged = _tagged_scalar(value)
    if tagged is not None:
        return tagged
    if numpy is not None and isinstance(value, numpy.ndarray) and value.dtype.kind == "O":
        items = [to_json(v, parts, f"{_entry}[{i}]", inner) for i, v in enumerate(value.ravel().tolist())]
        return {TAG: "objects", "shape": list(value.shape), "items": items}
    if parts is None and is_array(value) and str(value.dtype) in NUMPY_SCALARS:  # in a frame's cell: as JSON
        flat = value.view("int64") if value.dtype.kind in "mM" else value
        items = [to_json(v, None, f"{_entry}[{i}]", inner) for i, v in enumerate(flat.ravel().tolist())]
        return {TAG: "ndarray", "dtype": str(value.dtype), "shape": list(value.shape), "items": items}
    if parts is not None and (frame_kind(value) is not None or is_array(value)):
        if len(parts) + 2 > MAX_PARTS:
            raise ValueError(f"it holds more than {MAX_PARTS - 1:,} frames and arrays")
        parts.append((value, _entry))
        return {TAG: "part", "index": len(parts)}
    raise CannotTravel(f"{type(value).__module__}.{type(value).__qualname__}", _entry)


def from_json(value: Any, parts: list[Any] | None = None, _depth: int = 0) -> Any:
    """The value `to_json` encoded (`parts` the values its parts tags name). Encoded JSON that `to_json` doesn't
    make (an unknown tag, a tag without its items, a dtype or time zone it doesn't write) raises what Python raises
    for it: KeyError, TypeError, ValueError and the like."""
    if value is None or type(value) in (bool, int, str, float):
        return value
    if _depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    inner = _depth + 1
    if isinstance(value, list):
        return [from_json(v, parts, inner) for v in value]
    if not isinstance(value, dict):
        raise TypeError(f"not JSON: {type(value).__name__}")
    tag = value.get(TAG)
    if tag is None:
        return {k: from_json(v, parts, inner) for k, v in value.items()}
    if tag == "part":
        index = value["index"]
        if parts is None or type(index) is not int or not 1 <= index < len(parts):
            raise IndexError("a part the value does not have")
        return parts[index]
    if tag in _SCALAR_TAGS:
        return _SCALAR_TAGS[tag](value)
    if tag == "objects":
        return _objects(value, [from_json(v, parts, inner) for v in value["items"]])
    if tag == "ndarray":
        return _array(value, [from_json(v, parts, inner) for v in value["items"]])
    items = value["items"]
    if not isinstance(items, list):
        raise TypeError("items that are not a list")
    if tag == "dict":
        return {from_json(k, parts, inner): from_json(v, parts, inner) for k, v in items}
    made = {"tuple": tuple, "set": set, "frozenset": frozenset}[tag]
    return made(from_json(v, parts, inner) for v in items)


def is_json_value(value: Any) -> bool:
    """Whether `to_json` encodes the value."""
    try:
        to_json(value)
    except (TypeError, ValueError):
        return False
    return True


def dtype_map(frame: Any) -> dict[str, Any]:
    """Each column's dtype, for a CSV to be read back as it was; dtypes `check_dtype` refuses are left out (the
    column comes back as CSV reads it), and a time zone known by its file rather than a name as UTC."""
    record: dict[str, Any] = {}
    for col, dtype in frame.dtypes.items():
        name = str(dtype)
        if name == "category":  # the categories and their order don't survive CSV by themselves
            categories = [c.item() if hasattr(c, "item") else c for c in dtype.categories]
            record[str(col)] = {"dtype": "category", "categories": categories, "ordered": bool(dtype.ordered)}
        elif name in DTYPES or _DATETIME_TZ.fullmatch(name):
            record[str(col)] = name
        elif name.startswith("datetime64[") and ", " in name:
            record[str(col)] = name.split(",", 1)[0] + ", UTC]"  # the same instants
    return record


def check_dtype(dtype: Any) -> None:
    """`BadDtype` unless an entry of a dtype map is one `dtype_map` writes."""
    if isinstance(dtype, str):
        if dtype in DTYPES or _DATETIME_TZ.fullmatch(dtype):
            return
    elif (
        isinstance(dtype, dict)
        and set(dtype) == {"dtype", "categories", "ordered"}
        and dtype["dtype"] == "category"
        and isinstance(dtype["ordered"], bool)
        and isinstance(dtype["categories"], list)
        and all(isinstance(c, (str, int, float)) for c in dtype["categories"])
    ):
        return
    raise BadDtype(f"a dtype cellbox does not read: {repr(dtype)[:80]}")


# --- how ------------------------------------------------------------------------------------------------------


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _write_parquet_in_parts(frame: Any, path: str, progress: Callable[[int], None]) -> None:
    """Byte for byte the file `frame.to_parquet(path)` writes (pandas' own Arrow conversion, its metadata and
    attrs, snappy, row groups of PART_ROWS rows), one row group at a time: writing takes seconds for millions of
    rows, and this is how that is seen."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame)
    if frame.attrs:
        attrs = json.dumps(frame.attrs)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"PANDAS_ATTRS": attrs})
    if table.num_rows == 0:
        pq.write_table(table, path)
        return
    with pq.ParquetWriter(path, table.schema) as writer:
        for start in range(0, table.num_rows, PART_ROWS):
            part = table.slice(start, PART_ROWS)
            writer.write_table(part)
            progress(part.num_rows)


def _read_frame(spec: dict[str, Any], on_decode: Callable[[int, int, int], None] | None = None) -> Any:
    import pandas as pd

    if spec["format"] == "parquet":
        frame = pd.read_parquet(spec["path"])
    else:
        dtypes = spec.get("dtypes") or {}
        if not isinstance(dtypes, dict):
            raise BadDtype("a dtype map that is not a mapping")
        for dtype in dtypes.values():  # before the file is read
            check_dtype(dtype)
        # JSON texts stay texts (101 is not the string "101"); the one a CSV reads as missing is None's, "null".
        texts = [i + 1 for i in _json_columns(spec)] + ([0] if spec.get("json_index") else [])
        frame = pd.read_csv(spec["path"], index_col=0, converters=dict.fromkeys(texts, str))
        frame = _apply_dtypes(frame, dtypes)
    frame = _as_written(frame, spec, on_decode)
    if spec.get("kind") == "series":
        series = frame.iloc[:, 0]
        series.name = frame.columns[0] if "labels" in spec else spec.get("series_name")
        return series
    return frame


def _as_written(frame: Any, spec: dict[str, Any], on_decode: Callable[[int, int, int], None] | None) -> Any:
    """The frame `arrow_ready` was given: its object columns and index decoded, its labels put back."""
    import pandas as pd

    columns = _json_columns(spec)
    width = frame.shape[1]
    if not all(i < width for i in columns):
        raise BadValue("an object column the frame does not have")
    missing = "null" if spec["format"] == "csv" else None  # None's text, which a CSV reads as missing
    texts = [_stored_texts(frame.iloc[:, i], missing) for i in columns]
    index_texts = _stored_texts(frame.index, missing) if spec.get("json_index") else []
    if on_decode is not None and (texts or index_texts):
        containers = items = size = 0
        for column in [*texts, index_texts]:
            whole = "".join(column)  # one string counted at C speed: a row's text can't make more than its own
            found = json_counts(whole)
            containers, items, size = containers + found[0], items + found[1] + len(column), size + found[2]
        on_decode(containers, items, size)  # each row is one value more than its text counts
    complex_columns = spec.get("complex_columns") or {}
    if not isinstance(complex_columns, dict) or not set(complex_columns.values()) <= {"complex64", "complex128"}:
        raise BadValue("a complex column of a dtype cellbox does not write")
    for i, column in zip(columns, texts, strict=True):
        decoded = pd.Series(_objects_of(column), index=frame.index, dtype=object)
        dtype = complex_columns.get(str(i))
        frame.isetitem(i, decoded if dtype is None else decoded.astype(dtype))
    if spec.get("json_index"):
        frame.index = pd.Index(_objects_of(index_texts), dtype=object, name=frame.index.name)
    if "labels" in spec:
        labels = from_json(spec["labels"])
        if not isinstance(labels, list) or len(labels) != width:
            raise BadValue("column labels that are not one for each column")
        frame.columns = pd.Index(_objects_of(labels, decoded=True), dtype=object, tupleize_cols=False)
    return frame


def _json_columns(spec: dict[str, Any]) -> list[int]:
    columns = spec.get("json_columns") or []
    if not isinstance(columns, list) or len(set(columns)) != len(columns) or len(columns) > MAX_COLUMNS:
        raise BadValue("object columns that are not a list of positions")
    if not all(type(i) is int and i >= 0 for i in columns):
        raise BadValue("an object column the frame does not have")
    return columns


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue("an object column's row that is not its value's JSON")
    return value


def _stored_texts(values: Any, missing: str | None) -> list[str]:
    """An object column's texts as read (a missing one is `missing`'s); `BadValue` for a row that is no text."""
    texts = list(values.to_numpy(dtype=object))
    for i, t in enumerate(texts):
        if type(t) is not str:
            if missing is None or not (t is None or t != t):
                raise BadValue("an object column's row that is not its value's JSON")
            texts[i] = missing
    return texts


def _objects_of(items: list[Any], decoded: bool = False) -> Any:
    """The values (decoded from their JSON texts unless `decoded`) as a numpy array of objects, each as it is (a
    list in it stays one value). The commonest texts (null, strings, ints) are read without the full decoder."""
    import numpy

    if decoded:
        return numpy.fromiter(items, dtype=object, count=len(items))  # each item one value, a list included
    loads, scan = json.loads, json.decoder.scanstring  # type: ignore[attr-defined]  # C, not in the stubs
    made: list[Any] = []
    append = made.append
    try:
        for text in items:
            first = text[:1]
            if text == "null":
                append(None)
            elif first == '"':
                value, end = scan(text, 1)
                if end != len(text):
                    raise ValueError("text after a string")
                append(value)
            elif text.isascii() and text.isdigit() and (text == "0" or first != "0"):
                append(int(text))
            else:
                append(from_json(loads(text)))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise BadValue(f"an object column's value that does not decode ({type(exc).__name__})") from None
    return numpy.fromiter(made, dtype=object, count=len(made))


def _apply_dtypes(frame: Any, dtypes: dict[str, Any]) -> Any:
    """The frame's columns as the dtype map says (`BadDtype` for a dtype `dtype_map` doesn't write)."""
    import pandas as pd

    for col, dtype in dtypes.items():
        check_dtype(dtype)
        if col not in frame.columns:
            continue
        if isinstance(dtype, dict):
            frame[col] = frame[col].astype(pd.CategoricalDtype(dtype["categories"], ordered=dtype["ordered"]))
        elif dtype.startswith("datetime64"):
            tz = dtype[dtype.index(",") + 1 : -1].strip() if "," in dtype else None
            values = pd.to_datetime(frame[col], utc=tz is not None)
            frame[col] = values.dt.tz_convert(tz) if tz else values
        else:
            frame[col] = frame[col].astype(dtype)
    return frame


def is_array(value: Any) -> bool:
    """Whether the value is a numpy array `.npy` holds without pickle (no objects)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray) and value.dtype.kind not in "OV"


def _strings(values: Any) -> bool:
    """Whether pandas' objects are all strings (no None, no NaN): the one object column Parquet keeps as it is."""
    import pandas as pd

    return pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")


def _texts(values: Any, rows: Any, name: str, flag: str, label: Any) -> list[str]:
    """The values of an object column (or of the index, `label` None), each as its JSON text; the commonest
    (None, strings, ints) without a call to `to_json`. A value that can't travel is named by its column and row."""
    dumps, string = json.dumps, json.encoder.encode_basestring_ascii  # what json.dumps gives a str, in C
    texts: list[str] = []
    append = texts.append
    try:
        for value in values:
            kind = type(value)
            if value is None:
                append("null")
            elif kind is str:
                append(string(value))
            elif kind is int or (kind is float and value - value == 0):  # finite: NaN and infinities are tagged
                append(repr(value))
            else:
                append(dumps(to_json(value)))
    except (TypeError, ValueError, RecursionError) as exc:
        row = list(rows[len(texts) : len(texts) + 1]) or [len(texts)]
        where = f"{'.index' if label is None else f'[{_limited(repr(label), 60)}]'} at row {_limited(repr(row[0]), 60)}"
        if isinstance(exc, CannotTravel):
            raise TypeError(CannotTravel(exc.type_name, where + exc.entry).said(flag, name)) from None
        raise TypeError(f"{flag} {name}: {name}{where} can't travel: {exc}") from None
    return texts


def _json_entry(value: Any, name: str, flag: str, what: str) -> Any:
    try:
        return to_json(value, None, what)
    except CannotTravel as exc:
        raise TypeError(exc.said(flag, name)) from None
    except (ValueError, RecursionError) as exc:
        raise TypeError(f"{flag} {name}: {name}{what} can't travel: {exc}") from None


def _raise_unwritable(exc: Exception, frame: Any, name: str, flag: str) -> None:
    """A frame Parquet refused even as `arrow_ready` made it, as one line naming the column pandas names."""
    arrow = sys.modules.get("pyarrow")
    if not isinstance(exc, (ValueError, TypeError, NotImplementedError)) and not (
        arrow is not None and isinstance(exc, arrow.ArrowException)
    ):
        raise exc
    said = [str(arg) for arg in exc.args if isinstance(arg, str)]
    found = (re.search(r"column (.+?)(?: with type|\))", t) for t in said)
    column = next((m.group(1) for m in found if m), None)
    what = f"column {column}" if column else "a column"
    first = (said[0] if said else type(exc).__name__).splitlines()[0][:200]
    # As objects, its values travel one by one as JSON, whatever Parquet makes of the column's type.
    fix = f"{name}[{column!r}] = {name}[{column!r}].astype(object)" if column else f"{name} = {name}.astype(object)"
    raise TypeError(
        f"{flag} {name}: {what} of {name} can't be written as Parquet ({first}); convert it first, e.g. {fix}"
    ) from None


def _write_array(value: Any, path_stem: str) -> dict[str, Any]:
    import numpy

    path = path_stem + ".npy"
    numpy.save(path, value, allow_pickle=False)
    return {"kind": "ndarray", "format": "npy", "path": path}


def _write_bundle(encoded: Any, parts: list[Any], path_stem: str, name: str, flag: str) -> dict[str, Any]:
    """A value holding frames and arrays, as one file: the JSON around them, then each of them, end to end."""
    specs: list[dict[str, Any]] = []
    try:
        skeleton = path_stem + ".part0.json"
        with open(skeleton, "w", encoding="utf-8") as f:
            json.dump(encoded, f)
        specs.append({"kind": "json", "format": "json", "path": skeleton})
        for index, (part, entry) in enumerate(parts, 1):
            kind = frame_kind(part)
            stem = f"{path_stem}.part{index}"
            if kind is None:
                specs.append(_write_array(part, stem))
            else:
                specs.append(write_frame(part, stem, kind, name=f"{name}{entry}", flag=flag))
        path = path_stem + ".bundle"
        offset = 0
        with open(path, "wb") as out:
            for spec in specs:
                with open(spec["path"], "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
                length = out.tell() - offset
                spec.update(offset=offset, length=length)
                offset += length
    finally:
        for spec in specs:
            _remove(spec.pop("path"))
    return {"kind": "bundle", "format": "bundle", "path": path, "parts": specs}


def _copy(source: Any, out: Any, length: int) -> None:
    while length > 0:
        chunk = source.read(min(length, 1 << 20))
        if not chunk:
            raise BadValue("a bundle's part outside its file")
        out.write(chunk)
        length -= len(chunk)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


# numpy scalars travel with their dtype, one of these: numbers and booleans, and times in any unit numpy has. The
# dtype is the spec's word, so only these names are ever given to numpy.
_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")
NUMPY_SCALARS = frozenset(
    ["bool", "float16", "float32", "float64", "complex64", "complex128", "datetime64", "timedelta64"]
    + [f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)]
    + [f"{kind}64[{unit}]" for kind in ("datetime", "timedelta") for unit in _UNITS]
)


def _numpy_scalar(value: Any, entry: str) -> Any:
    kind = value.dtype.kind
    if kind == "U":
        return str(value)
    if kind == "S":
        return {TAG: "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    dtype = str(value.dtype)
    if dtype not in NUMPY_SCALARS:
        raise CannotTravel(f"numpy.{type(value).__qualname__}", entry)
    if kind in "mM":
        item: Any = int(value.view("int64"))
    elif kind == "c":
        item = repr(complex(value))
    else:
        item = to_json(value.item())
    return {TAG: "numpy", "dtype": dtype, "value": item}


def _from_numpy(value: dict[str, Any]) -> Any:
    import numpy

    name = value["dtype"]
    if name not in NUMPY_SCALARS:
        raise ValueError(f"a numpy dtype cellbox does not read: {str(name)[:40]!r}")
    dtype = numpy.dtype(name)
    item = value["value"]
    if dtype.kind in "mM":
        if type(item) is not int:
            raise TypeError("a time that is not a count")
        return numpy.array(item, dtype="int64").view(dtype)[()]
    if dtype.kind == "c":
        return numpy.array(_complex(item), dtype=dtype)[()]
    item = from_json(item)
    if not isinstance(item, (bool, int, float)):
        raise TypeError("a number that is not one")
    return numpy.array(item, dtype=dtype)[()]


def _tagged_scalar(value: Any) -> dict[str, Any] | None:
    """The tag of a value JSON has no type for (a time, a decimal, bytes …), or None."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        if value is pd.NaT:
            return {TAG: "NaT"}
        if value is pd.NA:
            return {TAG: "NA"}
        if isinstance(value, pd.Timestamp):
            return {TAG: "Timestamp", "iso": value.isoformat(), **_zone(value.tzinfo)}
        if isinstance(value, pd.Timedelta):
            return {TAG: "Timedelta", "ns": int(value.value)}
    if isinstance(value, complex):
        return {TAG: "complex", "value": repr(value)}
    if isinstance(value, (bytes, bytearray)):
        return {TAG: type(value).__name__, "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return {TAG: "datetime", "iso": value.isoformat(), **_zone(value.tzinfo)}
    if isinstance(value, datetime.date):
        return {TAG: "date", "iso": value.isoformat()}
    if isinstance(value, datetime.time):
        return {TAG: "time", "iso": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {TAG: "timedelta", "days": value.days, "seconds": value.seconds, "microseconds": value.microseconds}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "value": str(value)}
    return None


def _zone(tzinfo: Any) -> dict[str, str]:
    """A time zone known by its name (a zoneinfo key), to be put back; an offset alone is in the ISO text."""
    key = getattr(tzinfo, "key", None)
    return {"zone": key} if isinstance(key, str) and re.fullmatch(TIME_ZONE, key) else {}


def _zoned(moment: Any, value: dict[str, Any]) -> Any:
    zone = value.get("zone")
    if zone is None:
        return moment
    if not isinstance(zone, str) or not re.fullmatch(TIME_ZONE, zone) or moment.tzinfo is None:
        raise ValueError("a time zone cellbox does not read")
    import zoneinfo

    return moment.astimezone(zoneinfo.ZoneInfo(zone))


def _iso(value: dict[str, Any]) -> str:
    iso = value["iso"]
    if not isinstance(iso, str) or len(iso) > 64:
        raise ValueError("a time that is not ISO text")
    return iso


def _complex(text: Any) -> complex:
    if not isinstance(text, str) or len(text) > 100:
        raise ValueError("a complex number that is not its text")
    return complex(text)


def _decimal(text: Any) -> decimal.Decimal:
    if not isinstance(text, str) or len(text) > 10_000:
        raise ValueError("a decimal that is not its text")
    try:
        return decimal.Decimal(text)
    except ArithmeticError:  # decimal's InvalidOperation
        raise ValueError("a decimal that is not its text") from None


def _counted(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("a count that is not an integer")
    return value


def _float(value: dict[str, Any]) -> float:
    text = value["value"]
    if text not in ("nan", "inf", "-inf"):
        raise ValueError("a float tag that is not NaN or infinity")
    return float(text)


def _pandas() -> Any:
    import pandas

    return pandas


def _array(value: dict[str, Any], items: list[Any]) -> Any:
    """A numpy array of one of NUMPY_SCALARS' dtypes, of this shape, its items in order (times as counts)."""
    import numpy

    name = value["dtype"]
    if name not in NUMPY_SCALARS:
        raise ValueError(f"a numpy dtype cellbox does not read: {str(name)[:40]!r}")
    dtype = numpy.dtype(name)
    shape = _shape(value["shape"], len(items))
    if dtype.kind in "mM":
        if not all(type(n) is int for n in items):
            raise TypeError("times that are not counts")
        return numpy.array(items, dtype="int64").view(dtype).reshape(shape)
    if not all(isinstance(n, (bool, int, float, complex)) for n in items):
        raise TypeError("numbers that are not numbers")
    return numpy.array(items, dtype=dtype).reshape(shape)


def _shape(shape: Any, count: int) -> list[int]:
    if not isinstance(shape, list) or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError("an array's shape that is not one")
    size = 1
    for n in shape:
        size *= n
    if size != count:
        raise ValueError("an array's items that do not fill its shape")
    return shape


def _objects(value: dict[str, Any], items: list[Any]) -> Any:
    """A numpy array of objects of this shape, its items in order."""
    return _objects_of(items, decoded=True).reshape(_shape(value["shape"], len(items)))


_SCALAR_TAGS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "float": _float,
    "complex": lambda v: _complex(v["value"]),
    "bytes": lambda v: base64.b64decode(v["base64"], validate=True),
    "bytearray": lambda v: bytearray(base64.b64decode(v["base64"], validate=True)),
    "datetime": lambda v: _zoned(datetime.datetime.fromisoformat(_iso(v)), v),
    "date": lambda v: datetime.date.fromisoformat(_iso(v)),
    "time": lambda v: datetime.time.fromisoformat(_iso(v)),
    "timedelta": lambda v: datetime.timedelta(
        days=_counted(v["days"]), seconds=_counted(v["seconds"]), microseconds=_counted(v["microseconds"])
    ),
    "decimal": lambda v: _decimal(v["value"]),
    "numpy": _from_numpy,
    "Timestamp": lambda v: _zoned(_pandas().Timestamp(_iso(v)), v),
    "Timedelta": lambda v: _pandas().Timedelta(_counted(v["ns"]), unit="ns"),
    "NaT": lambda v: _pandas().NaT,
    "NA": lambda v: _pandas().NA,
}


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__qualname__} object (repr failed: {exc})>"


def _plain_scalar(value: Any) -> Any:
    """numpy scalars (what `frame.x.sum()` gives) as the Python numbers they stand for."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    return value


def _limited(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit} more characters not shown]"
