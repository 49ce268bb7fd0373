"""The client's resources: `client.containers`, `client.containers.files`, `client.files`, `client.responses`.

Each method validates and describes its call through `operations` and hands it to the client. The sync and
async classes are twins of one-line shells with identical signatures (tests/api/test_twins.py keeps them so).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from . import operations as ops
from .base import CHUNK_SIZE
from .errors import APIConnectionError, connection_error
from .operations import FileSource
from .records import Container, ContainerFile, Deleted, File, Page, Response

if TYPE_CHECKING:
    from .client import AsyncClient, Client

__all__ = [
    "AsyncContainerFiles",
    "AsyncContainers",
    "AsyncContentStream",
    "AsyncFiles",
    "AsyncResponses",
    "ContainerFiles",
    "Containers",
    "ContentStream",
    "Files",
    "Responses",
]


# --- streamed content -----------------------------------------------------------------------------------------


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


def _temp_beside(target: Path) -> tuple[int, str]:
    # Written next to the target and renamed over it, so a reader never sees half a file.
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    # mkstemp makes the file private (0600); the download gets the mode any new file would.
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


# --- containers -----------------------------------------------------------------------------------------------


class Containers:
    """`client.containers`: create, list, retrieve and delete containers; `.files` for their files."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.files = ContainerFiles(client)

    def create(
        self,
        name: str,
        *,
        memory_limit: str | None = None,
        expires_after: int | Mapping[str, Any] | None = None,
        file_ids: Sequence[str] | None = None,
        network_policy: Mapping[str, Any] | None = None,
    ) -> Container:
        """Create a container. `expires_after` is minutes of idleness (or the API's {anchor, minutes})."""
        return self._client._execute(
            ops.create_container(
                name,
                memory_limit=memory_limit,
                expires_after=expires_after,
                file_ids=file_ids,
                network_policy=network_policy,
            )
        )

    def list(
        self, *, limit: int | None = None, order: str | None = None, name: str | None = None
    ) -> Iterator[Container]:
        """Every container, following `after` across pages of `limit` (the server's default page size)."""
        after = None
        while True:
            page = self.list_page(limit=limit, order=order, after=after, name=name)
            yield from page.data
            if (after := page.next_after) is None:
                return

    def list_page(
        self, *, limit: int | None = None, order: str | None = None, after: str | None = None, name: str | None = None
    ) -> Page[Container]:
        """One page of containers."""
        return self._client._execute(ops.list_containers(limit=limit, order=order, after=after, name=name))

    def retrieve(self, container_id: str) -> Container:
        return self._client._execute(ops.retrieve_container(container_id))

    def delete(self, container_id: str) -> Deleted:
        return self._client._execute(ops.delete_container(container_id))


class AsyncContainers:
    """`client.containers` of an `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.files = AsyncContainerFiles(client)

    async def create(
        self,
        name: str,
        *,
        memory_limit: str | None = None,
        expires_after: int | Mapping[str, Any] | None = None,
        file_ids: Sequence[str] | None = None,
        network_policy: Mapping[str, Any] | None = None,
    ) -> Container:
        return await self._client._execute(
            ops.create_container(
                name,
                memory_limit=memory_limit,
                expires_after=expires_after,
                file_ids=file_ids,
                network_policy=network_policy,
            )
        )

    async def list(
        self, *, limit: int | None = None, order: str | None = None, name: str | None = None
    ) -> AsyncIterator[Container]:
        after = None
        while True:
            page = await self.list_page(limit=limit, order=order, after=after, name=name)
            for item in page.data:
                yield item
            if (after := page.next_after) is None:
                return

    async def list_page(
        self, *, limit: int | None = None, order: str | None = None, after: str | None = None, name: str | None = None
    ) -> Page[Container]:
        return await self._client._execute(ops.list_containers(limit=limit, order=order, after=after, name=name))

    async def retrieve(self, container_id: str) -> Container:
        return await self._client._execute(ops.retrieve_container(container_id))

    async def delete(self, container_id: str) -> Deleted:
        return await self._client._execute(ops.delete_container(container_id))


# --- container files ------------------------------------------------------------------------------------------


class ContainerFiles:
    """`client.containers.files`: upload, list, retrieve, delete and download a container's files."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        container_id: str,
        file: FileSource | None = None,
        *,
        file_id: str | None = None,
        filename: str | None = None,
    ) -> ContainerFile:
        """Upload `file` (a path, streamed from disk; bytes; or a binary file object), or copy a `file_id`."""
        return self._client._execute(ops.create_container_file(container_id, file, file_id=file_id, filename=filename))

    def list(self, container_id: str, *, limit: int | None = None, order: str | None = None) -> Iterator[ContainerFile]:
        after = None
        while True:
            page = self.list_page(container_id, limit=limit, order=order, after=after)
            yield from page.data
            if (after := page.next_after) is None:
                return

    def list_page(
        self, container_id: str, *, limit: int | None = None, order: str | None = None, after: str | None = None
    ) -> Page[ContainerFile]:
        return self._client._execute(ops.list_container_files(container_id, limit=limit, order=order, after=after))

    def retrieve(self, container_id: str, file_id: str) -> ContainerFile:
        return self._client._execute(ops.retrieve_container_file(container_id, file_id))

    def delete(self, container_id: str, file_id: str) -> Deleted:
        return self._client._execute(ops.delete_container_file(container_id, file_id))

    @contextmanager
    def stream(self, container_id: str, file_id: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[ContentStream]:
        """`with files.stream(cid, fid) as body: for chunk in body: ...`"""
        with ContentStream(
            self._client._execute(ops.container_file_content(container_id, file_id)), chunk_size
        ) as body:
            yield body

    def content(self, container_id: str, file_id: str) -> bytes:
        """The whole file in memory; prefer `download` or `stream` for large files."""
        with self.stream(container_id, file_id) as body:
            return body.read()

    def download(
        self,
        container_id: str,
        file_id: str,
        to: str | os.PathLike[str],
        *,
        chunk_size: int = CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> Path:
        """Stream the file to `to`, atomically: `to` appears only once every byte has arrived.
        `progress` is called with the size of each chunk written."""
        target = Path(to)
        with self.stream(container_id, file_id, chunk_size=chunk_size) as body:
            fd, temp = _temp_beside(target)
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in body:
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
                os.replace(temp, target)
            except BaseException:
                os.unlink(temp)
                raise
        return target


class AsyncContainerFiles:
    """`client.containers.files` of an `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        container_id: str,
        file: FileSource | None = None,
        *,
        file_id: str | None = None,
        filename: str | None = None,
    ) -> ContainerFile:
        return await self._client._execute(
            ops.create_container_file(container_id, file, file_id=file_id, filename=filename)
        )

    async def list(
        self, container_id: str, *, limit: int | None = None, order: str | None = None
    ) -> AsyncIterator[ContainerFile]:
        after = None
        while True:
            page = await self.list_page(container_id, limit=limit, order=order, after=after)
            for item in page.data:
                yield item
            if (after := page.next_after) is None:
                return

    async def list_page(
        self, container_id: str, *, limit: int | None = None, order: str | None = None, after: str | None = None
    ) -> Page[ContainerFile]:
        return await self._client._execute(
            ops.list_container_files(container_id, limit=limit, order=order, after=after)
        )

    async def retrieve(self, container_id: str, file_id: str) -> ContainerFile:
        return await self._client._execute(ops.retrieve_container_file(container_id, file_id))

    async def delete(self, container_id: str, file_id: str) -> Deleted:
        return await self._client._execute(ops.delete_container_file(container_id, file_id))

    @asynccontextmanager
    async def stream(
        self, container_id: str, file_id: str, *, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[AsyncContentStream]:
        """`async with files.stream(cid, fid) as body: async for chunk in body: ...`"""
        response = await self._client._execute(ops.container_file_content(container_id, file_id))
        async with AsyncContentStream(response, chunk_size) as body:
            yield body

    async def content(self, container_id: str, file_id: str) -> bytes:
        async with self.stream(container_id, file_id) as body:
            return await body.read()

    async def download(
        self,
        container_id: str,
        file_id: str,
        to: str | os.PathLike[str],
        *,
        chunk_size: int = CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> Path:
        target = Path(to)
        async with self.stream(container_id, file_id, chunk_size=chunk_size) as body:
            fd, temp = _temp_beside(target)
            try:
                # Local disk writes are fast next to the network; a thread per chunk would cost more.
                with os.fdopen(fd, "wb") as out:
                    async for chunk in body:
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
                os.replace(temp, target)
            except BaseException:
                os.unlink(temp)
                raise
        return target


# --- files ----------------------------------------------------------------------------------------------------


class Files:
    """`client.files`: the Files API, whose ids `containers.create(file_ids=...)` accepts."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, file: FileSource, *, purpose: str = "user_data", filename: str | None = None) -> File:
        return self._client._execute(ops.create_file(file, purpose=purpose, filename=filename))

    def list(self, *, limit: int | None = None, order: str | None = None) -> Iterator[File]:
        after = None
        while True:
            page = self._client._execute(ops.list_files(limit=limit, order=order, after=after))
            yield from page.data
            if (after := page.next_after) is None:
                return

    def retrieve(self, file_id: str) -> File:
        return self._client._execute(ops.retrieve_file(file_id))

    def delete(self, file_id: str) -> Deleted:
        return self._client._execute(ops.delete_file(file_id))

    def content(self, file_id: str) -> bytes:
        with ContentStream(self._client._execute(ops.file_content(file_id))) as body:
            return body.read()


class AsyncFiles:
    """`client.files` of an `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, file: FileSource, *, purpose: str = "user_data", filename: str | None = None) -> File:
        return await self._client._execute(ops.create_file(file, purpose=purpose, filename=filename))

    async def list(self, *, limit: int | None = None, order: str | None = None) -> AsyncIterator[File]:
        after = None
        while True:
            page = await self._client._execute(ops.list_files(limit=limit, order=order, after=after))
            for item in page.data:
                yield item
            if (after := page.next_after) is None:
                return

    async def retrieve(self, file_id: str) -> File:
        return await self._client._execute(ops.retrieve_file(file_id))

    async def delete(self, file_id: str) -> Deleted:
        return await self._client._execute(ops.delete_file(file_id))

    async def content(self, file_id: str) -> bytes:
        async with AsyncContentStream(await self._client._execute(ops.file_content(file_id))) as body:
            return await body.read()


# --- responses ------------------------------------------------------------------------------------------------


class Responses:
    """`client.responses`: the Responses API, for running code with the `code_interpreter` tool."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        input: str | Sequence[Mapping[str, Any]],
        model: str | None = None,
        container: str | Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        include: Sequence[str] | None = ("code_interpreter_call.outputs",),
        instructions: str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Create a response; `container` binds the `code_interpreter` tool to a container id (or `auto`).
        `timeout` (seconds) bounds how long to wait for it; the default allows ten minutes."""
        return self._client._execute(
            ops.create_response(
                model=model or self._client.settings.model or "",
                input=input,
                container=container,
                tools=tools,
                include=include,
                instructions=instructions,
                tool_choice=tool_choice,
                extra_body=extra_body,
                timeout=timeout,
            )
        )


class AsyncResponses:
    """`client.responses` of an `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        input: str | Sequence[Mapping[str, Any]],
        model: str | None = None,
        container: str | Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        include: Sequence[str] | None = ("code_interpreter_call.outputs",),
        instructions: str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Response:
        return await self._client._execute(
            ops.create_response(
                model=model or self._client.settings.model or "",
                input=input,
                container=container,
                tools=tools,
                include=include,
                instructions=instructions,
                tool_choice=tool_choice,
                extra_body=extra_body,
                timeout=timeout,
            )
        )
