"""Values in and out of the container, for cellbox's runtime: uploaded beside `container.py` and found as
`capture.py` is; not imported by the runtime in the container.

DataFrames and Series travel as Parquet (CSV plus a dtype record when pyarrow is missing), numpy arrays as .npy,
and other values as JSON that keeps the tuples, sets and non-string dict keys JSON alone loses. cellbox reads
and writes values with this same module on its side, so both ends agree on formats and dtypes. The standard
library is enough to load it; pandas and numpy are used only for values of theirs.
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


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


# The dtypes a CSV's dtype record names, and all `_apply_dtypes` reads: numbers, booleans, strings, objects and
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
    """A dtype record names what cellbox doesn't read (see DTYPES)."""


def _dtype_record(frame: Any) -> dict[str, Any]:
    """Each column's dtype, for a CSV to be read back as it was; dtypes `_apply_dtypes` doesn't read are left out
    (the column comes back as CSV reads it), and a time zone known by its file rather than a name as UTC."""
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


def _checked_dtype(dtype: Any) -> Any:
    """A dtype record's entry when it is one `_dtype_record` writes; `BadDtype` otherwise."""
    if isinstance(dtype, str):
        if dtype in DTYPES or _DATETIME_TZ.fullmatch(dtype):
            return dtype
    elif (
        isinstance(dtype, dict)
        and set(dtype) == {"dtype", "categories", "ordered"}
        and dtype["dtype"] == "category"
        and isinstance(dtype["ordered"], bool)
        and isinstance(dtype["categories"], list)
        and all(isinstance(c, (str, int, float)) for c in dtype["categories"])
    ):
        return dtype
    raise BadDtype(f"a dtype cellbox does not read: {repr(dtype)[:80]}")


def _write_frame(
    frame: Any, path_stem: str, kind: str, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Write a frame or series; `progress`, when given, hears how many rows each part written added."""
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
        frame.to_csv(path, index=True)
        info.update(format="csv", path=path, dtypes=_dtype_record(frame), index_name=frame.index.name)
    del pd
    return info


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
            raise BadDtype("a dtype record that is not a mapping")
        for dtype in dtypes.values():  # before the file is read
            _checked_dtype(dtype)
        frame = pd.read_csv(spec["path"], index_col=0)
        frame = _apply_dtypes(frame, dtypes)
    if spec.get("kind") == "series":
        series = frame.iloc[:, 0]
        series.name = spec.get("series_name")
        return series
    return frame


def _apply_dtypes(frame: Any, dtypes: dict[str, Any]) -> Any:
    """The frame's columns as the dtype record says (`BadDtype` for a dtype `_dtype_record` doesn't write)."""
    import pandas as pd

    for col, dtype in dtypes.items():
        _checked_dtype(dtype)
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


def _is_json_value(value: Any) -> bool:
    try:
        _to_json(value)
    except (TypeError, ValueError):
        return False
    return True


TAG = "__cellbox__"


def _to_json(value: Any) -> Any:
    """A value as JSON that keeps what JSON alone loses: tuples, sets and dict keys that aren't strings are
    tagged ({"__cellbox__": "tuple", "items": [...]}); anything else that isn't JSON is a TypeError."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity are not JSON")
        return value
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [_to_json(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        kind = "set" if isinstance(value, set) else "frozenset"
        return {TAG: kind, "items": [_to_json(v) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: _to_json(v) for k, v in value.items()}
        return {TAG: "dict", "items": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
    raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} is not a JSON value")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {k: _from_json(v) for k, v in value.items()}
        items = value["items"]
        if tag == "dict":
            return {_from_json(k): _from_json(v) for k, v in items}
        made = {"tuple": tuple, "set": set, "frozenset": frozenset}[tag]
        return made(_from_json(v) for v in items)
    return value


def _is_array(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray) and value.dtype.kind not in "OV"


def _kind_of(value: Any) -> str | None:
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return "dataframe"
        if isinstance(value, pd.Series):
            return "series"
    return None


def _export(value: Any, path_stem: str, name: str) -> dict[str, Any]:
    kind = _kind_of(value)
    if kind is not None:
        return _write_frame(value, path_stem, kind)
    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)
    if _is_array(value):
        import numpy

        path = path_stem + ".npy"
        numpy.save(path, value, allow_pickle=False)
        return {"kind": "ndarray", "format": "npy", "path": path}
    value = _plain_scalar(value)
    try:
        encoded = _to_json(value)
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


def _import(spec: dict[str, Any]) -> Any:
    if spec["format"] == "json":
        with open(spec["path"], encoding="utf-8") as f:
            return _from_json(json.load(f))
    if spec["format"] == "npy":
        import numpy

        return numpy.load(spec["path"], allow_pickle=False)
    return _read_frame(spec)


def _describe_value(value: Any, out_dir: str, capture: Any) -> dict[str, Any]:
    """The last expression: its mimebundle as the shell's displayhook makes it (`bundle`), and for the Python API
    the value itself where it travels (a frame, up to MAX_VALUE_ROWS rows; a JSON value), else its repr."""
    described: dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    try:
        described["bundle"] = capture.format_value(value)
    except Exception as exc:  # a broken _repr_*_ must not fail the run: IPython shows the plain repr then
        described["bundle"] = {"data": {"text/plain": _safe_repr(value)}, "metadata": {}}
        described["repr_error"] = f"{type(exc).__name__}: {exc}"
    kind = _kind_of(value)
    if kind is not None:
        shown = value
        if len(value) > MAX_VALUE_ROWS:  # to be displayed, not kept: -o brings a whole frame back
            shown = value.head(MAX_VALUE_ROWS)
            described["truncated_from"] = len(value)
        try:
            described.update(_write_frame(shown, os.path.join(out_dir, "value"), kind))
            return described
        except Exception:  # e.g. a Series of dtype objects, which Parquet can't hold: its repr stands
            described.pop("truncated_from", None)
    try:
        encoded = _to_json(_plain_scalar(value))
    except (TypeError, ValueError):
        encoded = None
    else:
        if len(json.dumps(encoded)) <= MAX_REPR:
            described.update(kind="json", json=encoded)
    described.setdefault("kind", "repr")
    described["repr"] = _limited(_safe_repr(value), MAX_REPR)
    return described


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
