"""Downloads in chunks: the body of a content response (`ContentStream`, `AsyncContentStream`) and the file it
is written to (`AtomicFile`: the target appears only once every byte has arrived)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx

from .base import CHUNK_SIZE
from .errors import APIConnectionError, connection_error


class ContentStream:
    """The body of a content download, read in chunks. Use as a context manager, or call `close()`."""

    def __init__(self, response: httpx.Response, chunk_size: int = CHUNK_SIZE) -> None:
        self.response = response
        self.chunk_size = chunk_size

    @property
    def size(self) -> int | None:
        length = self.response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None

    def __iter__(self) -> Iterator[bytes]:
        if self.response.is_stream_consumed:  # already read, e.g. by an in-memory transport
            yield from _split(self.response.content, self.chunk_size)
            return
        try:
            yield from self.response.iter_raw(self.chunk_size)
        except httpx.TransportError as exc:
            raise _dropped(exc, self.response) from None

    def read(self) -> bytes:
        return b"".join(self)

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> ContentStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncContentStream:
    """The async twin of `ContentStream`."""

    def __init__(self, response: httpx.Response, chunk_size: int = CHUNK_SIZE) -> None:
        self.response = response
        self.chunk_size = chunk_size

    @property
    def size(self) -> int | None:
        length = self.response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.response.is_stream_consumed:
            for chunk in _split(self.response.content, self.chunk_size):
                yield chunk
            return
        try:
            async for chunk in self.response.aiter_raw(self.chunk_size):
                yield chunk
        except httpx.TransportError as exc:
            raise _dropped(exc, self.response) from None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncContentStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _split(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _dropped(exc: httpx.TransportError, response: httpx.Response) -> APIConnectionError:
    error = connection_error(exc, response.request)
    error.message = f"{error.message} The download stopped part-way; nothing was written in place of the file."
    error.args = (error.message,)
    return error


class AtomicFile:
    """`with AtomicFile(to) as out: out.write(chunk)`: written beside `to` and renamed over it on success, removed
    on failure, so a reader never sees half a file. `progress` is called with the size of each chunk written."""

    def __init__(self, to: str | os.PathLike[str], progress: Callable[[int], object] | None = None) -> None:
        self.target = Path(to)
        self.progress = progress

    def __enter__(self) -> AtomicFile:
        fd, self._temp = _temp_beside(self.target)
        self._out = os.fdopen(fd, "wb")
        return self

    def write(self, chunk: bytes) -> None:
        self._out.write(chunk)
        if self.progress is not None:
            self.progress(len(chunk))

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._out.close()
            if exc_type is None:
                os.replace(self._temp, self.target)
        finally:
            if os.path.exists(self._temp):
                os.unlink(self._temp)


def _temp_beside(target: Path) -> tuple[int, str]:
    # Written next to the target and renamed over it, so a reader never sees half a file.
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    # mkstemp makes the file private (0600); the download gets the mode any new file would. Windows has no such
    # modes (nor os.fchmod before Python 3.13): there mkstemp's file is already an ordinary one.
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, temp


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
