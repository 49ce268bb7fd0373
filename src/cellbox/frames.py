"""DataFrames and JSON values on their way into and out of a container.

Fingerprints come from the Arrow form of a frame (tens of milliseconds for millions of rows, far cheaper than
writing it), so re-pushing unchanged data costs almost nothing. Reading results back reuses the container
runtime's own reader, so both ends agree on formats and dtypes. A cell's last value that the container sent only
the first rows of (runtime.values.MAX_VALUE_ROWS) comes back as a frame that says so when shown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from .runtime import values as runtime


def _hasher() -> Any:
    return xxhash.xxh3_128()


def kind_of(value: Any) -> str | None:
    """`dataframe`, `series`, `json`, or None for values that can't travel."""
    kind = runtime._kind_of(value)
    if kind is not None:
        return kind
    return "json" if runtime._is_json_value(value) else None


def fingerprint(value: Any) -> str:
    """A content hash of a frame, series or JSON value (schema, index and dtypes included)."""
    kind = kind_of(value)
    h = _hasher()
    h.update(f"{kind}\0".encode())
    if kind in ("dataframe", "series"):
        import pyarrow as pa

        frame = value.to_frame(name="__series__" if value.name is None else value.name) if kind == "series" else value
        table = pa.Table.from_pandas(frame, preserve_index=True)
        h.update(table.schema.serialize())
        for column in table.columns:
            for chunk in column.chunks:
                # Offset and length too: two slices of one buffer share its bytes but not their contents.
                h.update(f"{chunk.offset}:{len(chunk)}".encode())
                for buffer in chunk.buffers():
                    if buffer is not None:
                        h.update(buffer)
    elif kind == "json":
        h.update(json.dumps(runtime._to_json(value), sort_keys=True, allow_nan=False).encode())
    else:
        raise TypeError(f"can't fingerprint a {type(value).__name__}")
    return h.hexdigest()


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
    """About how many bytes a frame or series holds (without looking at each string: it must be quick); 0 for
    other values, which are small."""
    if kind_of(value) in ("dataframe", "series"):
        usage = value.memory_usage(index=True, deep=False)
        return int(usage if isinstance(usage, int) else usage.sum())
    return 0


def write(value: Any, stem: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write a value for the container; returns the runtime's spec for it (kind, format, local path). `progress`
    hears how many rows each part of a frame written added."""
    kind = kind_of(value)
    if kind in ("dataframe", "series"):
        return runtime._write_frame(value, str(stem), kind, progress)
    if kind == "json":
        path = str(stem) + ".json"
        Path(path).write_text(json.dumps(runtime._to_json(value), allow_nan=False), encoding="utf-8")
        return {"kind": "json", "format": "json", "path": path}
    raise TypeError(
        f"a {type(value).__module__}.{type(value).__qualname__} can't be sent to a container: push DataFrames, "
        "Series and JSON values (numbers, strings, booleans, None, lists and dicts of them), or save it to a file "
        "and push the file."
    )


def read(spec: dict[str, Any], local_path: Path) -> Any:
    """Read a value the runtime exported, from its downloaded file; the first rows of a longer frame
    (`truncated_from` rows) say so when shown."""
    value = runtime._import({**spec, "path": str(local_path)})
    total = spec.get("truncated_from")
    if total and spec.get("kind") in ("dataframe", "series"):
        from .first_rows import first_rows

        return first_rows(value, total)
    return value


TIMES = "\N{MULTIPLICATION SIGN}"  # as pandas writes a frame's size in HTML


def first_rows_caption(shown: int, total: int, columns: int | None = None, times: str = TIMES) -> str:
    """`first 100,000 of 1,000,000 rows by 6 columns` (with `times` for "by", as pandas writes it): how a part
    of a longer table is named, in the artifact previews too."""
    caption = f"first {shown:,} of {total:,} rows"
    return caption if columns is None else f"{caption} {times} {columns} columns"
