"""Values in and out of the container, for cellbox's runtime: uploaded beside `container.py` and found as
`capture.py` is; not imported by the runtime in the container.

This module is the contract between the two ends: cellbox writes `-i` values with it and the runtime reads them;
the runtime writes `-o` values and the last value with it and cellbox reads them, so both agree on formats and
dtypes by construction. The standard library is enough to load it; pandas, pyarrow and numpy are used only for
values of theirs.

A value travels as one file and its *spec*, a JSON object that says how to read the file back:

    kind        format    the spec holds, besides "kind", "format" and "path"
    dataframe   parquet   "rows", "columns" (each column's name as a string)
    series      parquet   the same, and "series_name" (str or None; the file holds one column)
    dataframe   csv       where pyarrow is missing: the same as parquet, and "dtypes", the dtype map
    series      csv       the same, and "series_name"
    ndarray     npy       nothing more (numbers, booleans, strings, times: no objects, so no pickle)
    json        json      nothing more (the file is `to_json`'s encoding)

A push adds "name" (the variable it is set as); a frame shown as the last value may add "truncated_from" (its
length, of which MAX_VALUE_ROWS rows were written). `write_value` writes one (`-o`), `write_frame` a frame or
series, `read_value` reads any of them back; `describe_value` says what a cell's last value is.

The dtype map gives each column, by its name, the dtype it is read back as: a name in DTYPES, a
"datetime64[unit, zone]" whose zone is a name (TIME_ZONE), never a path, or {"dtype": "category", "categories":
[...], "ordered": bool}. `dtype_map` writes only these and `check_dtype` refuses anything else (`BadDtype`),
since `astype` of an arbitrary name can allocate what it likes or open a file.

JSON keeps what JSON alone loses by tagging it (TAG): a tuple, set or frozenset is {"__cellbox__": "tuple" | "set"
| "frozenset", "items": [...]}, and a dict whose keys are not all strings (or that has the tag as a key) is
{"__cellbox__": "dict", "items": [[key, value], ...]}. NaN and infinities are not JSON values.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

MAX_REPR = 100_000
MAX_VALUE_ROWS = 100_000  # rows of a frame sent back for display as a cell's last value
PART_ROWS = 1024 * 1024  # rows per Parquet row group when the writer reports its progress (as pyarrow writes)
FRAME_KINDS = ("dataframe", "series")
KINDS = (*FRAME_KINDS, "ndarray", "json")  # of a value's spec
FORMATS = ("parquet", "csv", "npy", "json")
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


# --- the interface --------------------------------------------------------------------------------------------


def write_value(value: Any, path_stem: str, name: str) -> dict[str, Any]:
    """Write the `-o` value `name` to `path_stem` plus its format's suffix; its spec. A value that can't travel
    faithfully (not a frame, series, array without objects or JSON value) is a TypeError saying what to do."""
    kind = frame_kind(value)
    if kind is not None:
        return write_frame(value, path_stem, kind)
    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)
    if _is_array(value):
        import numpy

        path = path_stem + ".npy"
        numpy.save(path, value, allow_pickle=False)
        return {"kind": "ndarray", "format": "npy", "path": path}
    value = _plain_scalar(value)
    try:
        encoded = to_json(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"-o {name}: {name} is a {type(value).__module__}.{type(value).__qualname__}, which can't travel "
            "faithfully; -o brings back DataFrames, Series, numpy arrays and JSON values (numbers, strings, "
            "booleans, None, and lists, tuples, sets and dicts of them). Convert it first, e.g. "
            f"{name} = pd.DataFrame(...) or {name} = str({name}), or save it to a file and pull the file."
        ) from None
    path = path_stem + ".json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(encoded, f)
    return {"kind": "json", "format": "json", "path": path}


def read_value(spec: dict[str, Any]) -> Any:
    """The value a spec describes, read from its "path" (only "format" is needed for JSON and arrays). A dtype
    record naming what isn't read is `BadDtype`, before the file is opened."""
    if spec["format"] == "json":
        with open(spec["path"], encoding="utf-8") as f:
            return from_json(json.load(f))
    if spec["format"] == "npy":
        import numpy

        return numpy.load(spec["path"], allow_pickle=False)
    return _read_frame(spec)


def write_frame(frame: Any, path_stem: str, kind: str, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write a frame or series (`kind`, one of FRAME_KINDS) as Parquet, or as CSV with a dtype map where pyarrow
    is missing; its spec. `progress`, when given, hears how many rows each part written added."""
    import pandas as pd

    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)

    if kind == "series":
        name = frame.name
        frame = frame.to_frame(name="__series__" if name is None else name)
    else:
        name = None
    info: dict[str, Any] = {"kind": kind, "rows": len(frame), "columns": [str(c) for c in frame.columns]}
    if kind == "series":
        info["series_name"] = None if name is None else str(name)
    if _has_pyarrow():
        path = path_stem + ".parquet"
        if progress is None:
            frame.to_parquet(path)
        else:
            _write_parquet_in_parts(frame, path, progress)
        info.update(format="parquet", path=path)
    else:
        path = path_stem + ".csv"
        frame.to_csv(path, index=True)  # the index's name is in the header, and read_csv takes it from there
        info.update(format="csv", path=path, dtypes=dtype_map(frame))
    del pd
    return info


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


def to_json(value: Any) -> Any:
    """A value as JSON that keeps what JSON alone loses: tuples, sets and dict keys that aren't strings are
    tagged ({"__cellbox__": "tuple", "items": [...]}); anything else that isn't JSON is a TypeError, NaN and
    infinities a ValueError."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity are not JSON")
        return value
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [to_json(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        kind = "set" if isinstance(value, set) else "frozenset"
        return {TAG: kind, "items": [to_json(v) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: to_json(v) for k, v in value.items()}
        return {TAG: "dict", "items": [[to_json(k), to_json(v)] for k, v in value.items()]}
    raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} is not a JSON value")


def from_json(value: Any) -> Any:
    """The value `to_json` encoded. Encoded JSON that `to_json` doesn't make (an unknown tag, a tag without its
    items) raises what Python raises for it: KeyError, TypeError, ValueError and the like."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {k: from_json(v) for k, v in value.items()}
        items = value["items"]
        if tag == "dict":
            return {from_json(k): from_json(v) for k, v in items}
        made = {"tuple": tuple, "set": set, "frozenset": frozenset}[tag]
        return made(from_json(v) for v in items)
    return value


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


def _read_frame(spec: dict[str, Any]) -> Any:
    import pandas as pd

    if spec["format"] == "parquet":
        frame = pd.read_parquet(spec["path"])
    else:
        dtypes = spec.get("dtypes") or {}
        if not isinstance(dtypes, dict):
            raise BadDtype("a dtype map that is not a mapping")
        for dtype in dtypes.values():  # before the file is read
            check_dtype(dtype)
        frame = pd.read_csv(spec["path"], index_col=0)
        frame = _apply_dtypes(frame, dtypes)
    if spec.get("kind") == "series":
        series = frame.iloc[:, 0]
        series.name = spec.get("series_name")
        return series
    return frame


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


def _is_array(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray) and value.dtype.kind not in "OV"


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
