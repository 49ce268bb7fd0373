"""DataFrames and JSON values on their way into and out of a container.

Fingerprints come from the Arrow form of a frame (tens of milliseconds for millions of rows, far cheaper than
writing it), so re-pushing unchanged data costs almost nothing. Reading results back reuses the container
runtime's own reader, so both ends agree on formats and dtypes.
"""

from __future__ import annotations

import json
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


def file_fingerprint(path: Path, chunk_size: int = 1024 * 1024) -> str:
    """A content hash of a file, read in chunks."""
    h = _hasher()
    h.update(b"file\0")
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def write(value: Any, stem: Path) -> dict[str, Any]:
    """Write a value for the container; returns the runtime's spec for it (kind, format, local path)."""
    kind = kind_of(value)
    if kind in ("dataframe", "series"):
        return runtime._write_frame(value, str(stem), kind)
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
    """Read a value the runtime exported, from its downloaded file."""
    return runtime._import({**spec, "path": str(local_path)})
