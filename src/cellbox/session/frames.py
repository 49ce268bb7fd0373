"""DataFrames and JSON values on their way into and out of a container.

Fingerprints come from the Arrow form of a frame (tens of milliseconds for millions of rows, far cheaper than
writing it), so re-pushing unchanged data costs almost nothing. Reading results back reuses the container
runtime's own reader, so both ends agree on formats and dtypes. A cell's last value that the container sent only
the first rows of (runtime.values.MAX_VALUE_ROWS) comes back as a frame that says so when shown.

What comes back is the container's word, so before a value is read the memory its file declares it takes
(`declared_size`: a Parquet footer's rows and uncompressed sizes, an array's shape, a file's length) is checked
against what this machine has free (`available_memory`), and a value that can't fit fails with one line saying
what to do (`TooLarge`) instead of taking the kernel down.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from ..api import CellboxError
from ..common import text
from ..runtime import values as runtime

# Reading a Parquet file into pandas holds the Arrow table and the frame at once: 2.2x the frame for numbers,
# 2.1x for strings, measured; a little more for safety.
READ_PEAK = 2.5
METADATA_PEAK = 10  # parsed Parquet metadata, per byte of the footer that holds it
JSON_PEAK = 8  # Python objects per byte of JSON text
CSV_PEAK = 3
# A value's bytes in memory by its Parquet physical type (a string's: an offset and a short string).
WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 8, "BYTE_ARRAY": 16}


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


def read(spec: dict[str, Any], local_path: Path, name: str | None = None) -> Any:
    """Read a value the runtime exported (the `-o` variable `name`), from its downloaded file, once its declared
    size is known to fit in memory (`TooLarge` if not); the first rows of a longer frame (`truncated_from` rows)
    say so when shown."""
    free = available_memory()
    if free is not None:
        needed, declared = declared_size(spec, local_path, free)
        check_fits(name, needed, declared, free)
    value = runtime._import({**spec, "path": str(local_path)})
    total = spec.get("truncated_from")
    if total and spec.get("kind") in ("dataframe", "series"):
        from .first_rows import first_rows

        return first_rows(value, total)
    return value


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
    factor = JSON_PEAK if kind == "json" else CSV_PEAK
    rows, columns = spec.get("rows"), spec.get("columns")
    cells = (rows if isinstance(rows, int) else 0) * max(1, len(columns) if isinstance(columns, list) else 0)
    in_memory = max(size * factor, cells * 8)
    return in_memory, f"a {text.size(size)} {kind} file"


def _parquet_size(path: Path, size: int, free: int | None) -> tuple[int, str]:
    import pyarrow.parquet as pq

    from .parquet_pages import Unreadable, footer_length

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
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    widest = max(WIDTHS.values())
    frame = max(uncompressed, meta.num_rows * meta.num_columns * widest, size)
    if free is None or int(frame * READ_PEAK) + check > free:  # near the bound: each column's own width
        widths = 0
        for i in range(meta.num_columns):
            column = meta.schema.column(i)
            flba = column.physical_type == "FIXED_LEN_BYTE_ARRAY"
            widths += (column.length or 0) if flba else WIDTHS.get(column.physical_type, 8)
        frame = max(uncompressed, meta.num_rows * widths, size)
    declared = (
        f"{meta.num_rows:,} rows {text.TIMES} {meta.num_columns:,} columns, {text.size(uncompressed)} uncompressed"
    )
    return int(frame * READ_PEAK) + check, declared


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
