"""The client's resources: `client.containers`, `client.containers.files`, `client.files`, `client.responses`.

A resource method is made from the `operations` function that describes its call, and takes exactly that
function's parameters: `retrieve = _call(ops.retrieve_container)` in `Containers`, `_acall(...)` in
`AsyncContainers`. `_pages` / `_apages` make `list()`, which follows `after` from page to page. What moves
bytes for a download (`stream`, `content`, `download`) is written out once per shell over streams.py. The sync and async
classes are twins with identical signatures (tests/api/test_twins.py keeps them so).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import httpx

from . import operations as ops
from .base import CHUNK_SIZE
from .events import AsyncResponseEvents, ResponseEvents
from .objects import APIObject, Page
from .operation import Operation
from .streams import AsyncContentStream, AtomicFile, ContentStream

if TYPE_CHECKING:
    from .base import BaseClient
    from .client import AsyncClient, Client

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound=APIObject)
M = TypeVar("M", bound=Callable[..., Any])

__all__ = [
    "AsyncContainerFiles",
    "AsyncContainers",
    "AsyncContentStream",
    "AsyncFiles",
    "AsyncResponseEvents",
    "AsyncResponses",
    "ContainerFiles",
    "Containers",
    "ContentStream",
    "Files",
    "ResponseEvents",
    "Responses",
]


# --- resource methods, made from the operations --------------------------------------------------------------

# Keyword arguments that, left out (or empty), come from the client: name -> how to find it there.
Defaults = dict[str, Callable[["BaseClient"], Any]]


class _Resource:
    """Base of the resources of one client kind: names the methods made for the subclass by `_shell`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in vars(cls).items():
            if getattr(member, "_made_from", None) is not None:
                member.__name__ = name
                member.__qualname__ = f"{cls.__qualname__}.{name}"


class _SyncResource(_Resource):
    def __init__(self, client: Client) -> None:
        self._client = client


class _AsyncResource(_Resource):
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


def _shell(method: M, build: Callable[..., Any], *, iterator: str | None = None, answer: str | None = None) -> M:
    """Give `method` the parameters and docstring of `build` (help(), IDEs and the twin test read them), and
    as its answer what `build`'s operation answers: `Operation[Container]` -> `Container`, or for `list()`
    the `iterator` of its page's items, or `answer` when the method makes something else of it."""
    signature = inspect.signature(build)
    answer = answer or str(signature.return_annotation).removeprefix("Operation[").removesuffix("]")
    doc = build.__doc__ or ""
    if iterator is not None:
        answer = f"{iterator}[{answer.removeprefix('Page[').removesuffix(']')}]"
        doc = f"Every item from the first page on, following `after` from page to page. {doc}"
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    shell: Any = method  # given attributes a plain function type does not declare
    shell.__signature__ = signature.replace(parameters=[self, *signature.parameters.values()], return_annotation=answer)
    shell.__doc__ = doc
    shell._made_from = build
    return method


def _arguments(client: BaseClient, kwargs: dict[str, Any], defaults: Defaults | None) -> dict[str, Any]:
    for name, default in (defaults or {}).items():
        if not kwargs.get(name):
            kwargs[name] = default(client)
    return kwargs


def _call(
    build: Callable[P, Operation[T]], defaults: Defaults | None = None
) -> Callable[Concatenate[_SyncResource, P], T]:
    """A method of a sync resource that runs the operation `build` describes and returns its answer."""

    def method(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._client._execute(build(*args, **_arguments(self._client, kwargs, defaults)))

    return _shell(method, build)


def _acall(
    build: Callable[P, Operation[T]], defaults: Defaults | None = None
) -> Callable[Concatenate[_AsyncResource, P], Coroutine[Any, Any, T]]:
    """The async twin of `_call`."""

    async def method(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._client._execute(build(*args, **_arguments(self._client, kwargs, defaults)))

    return _shell(method, build)


def _events(
    build: Callable[P, Operation[httpx.Response]], defaults: Defaults | None = None
) -> Callable[Concatenate[_SyncResource, P], ResponseEvents]:
    """A sync method that sends the request `build` describes and answers its events as they arrive."""

    def method(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> ResponseEvents:
        return ResponseEvents(self._client._execute(build(*args, **_arguments(self._client, kwargs, defaults))))

    return _shell(method, build, answer="ResponseEvents")


def _aevents(
    build: Callable[P, Operation[httpx.Response]], defaults: Defaults | None = None
) -> Callable[Concatenate[_AsyncResource, P], Coroutine[Any, Any, AsyncResponseEvents]]:
    """The async twin of `_events`."""

    async def method(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> AsyncResponseEvents:
        response = await self._client._execute(build(*args, **_arguments(self._client, kwargs, defaults)))
        return AsyncResponseEvents(response)

    return _shell(method, build, answer="AsyncResponseEvents")


def _pages(build: Callable[P, Operation[Page[R]]]) -> Callable[Concatenate[_SyncResource, P], Iterator[R]]:
    """`list()`: every item of every page, from the page `build` describes on, following `after`."""

    def method(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        op: Operation[Page[R]] | None = build(*args, **kwargs)
        while op is not None:
            page = self._client._execute(op)
            yield from page.data
            op = ops.next_page(op, page)

    return _shell(method, build, iterator="Iterator")


def _apages(build: Callable[P, Operation[Page[R]]]) -> Callable[Concatenate[_AsyncResource, P], AsyncIterator[R]]:
    """The async twin of `_pages`."""

    async def method(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        op: Operation[Page[R]] | None = build(*args, **kwargs)
        while op is not None:
            page = await self._client._execute(op)
            for item in page.data:
                yield item
            op = ops.next_page(op, page)

    return _shell(method, build, iterator="AsyncIterator")


def _model(client: BaseClient) -> str | None:
    return client.settings.model


# --- containers -----------------------------------------------------------------------------------------------


class Containers(_SyncResource):
    """`client.containers`: create, list, retrieve and delete containers; `.files` for their files."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.files = ContainerFiles(client)

    create = _call(ops.create_container)
    list = _pages(ops.list_containers)
    list_page = _call(ops.list_containers)
    retrieve = _call(ops.retrieve_container)
    delete = _call(ops.delete_container)


class AsyncContainers(_AsyncResource):
    """`client.containers` of an `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.files = AsyncContainerFiles(client)

    create = _acall(ops.create_container)
    list = _apages(ops.list_containers)
    list_page = _acall(ops.list_containers)
    retrieve = _acall(ops.retrieve_container)
    delete = _acall(ops.delete_container)


# --- container files ------------------------------------------------------------------------------------------


class ContainerFiles(_SyncResource):
    """`client.containers.files`: upload, list, retrieve, delete and download a container's files."""

    create = _call(ops.create_container_file)
    list = _pages(ops.list_container_files)
    list_page = _call(ops.list_container_files)
    retrieve = _call(ops.retrieve_container_file)
    delete = _call(ops.delete_container_file)

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
        with self.stream(container_id, file_id, chunk_size=chunk_size) as body, AtomicFile(to, progress) as out:
            for chunk in body:
                out.write(chunk)
        return out.target


class AsyncContainerFiles(_AsyncResource):
    """`client.containers.files` of an `AsyncClient`."""

    create = _acall(ops.create_container_file)
    list = _apages(ops.list_container_files)
    list_page = _acall(ops.list_container_files)
    retrieve = _acall(ops.retrieve_container_file)
    delete = _acall(ops.delete_container_file)

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
        async with self.stream(container_id, file_id, chunk_size=chunk_size) as body:
            # Local disk writes are fast next to the network; a thread per chunk would cost more.
            with AtomicFile(to, progress) as out:
                async for chunk in body:
                    out.write(chunk)
        return out.target


# --- files ----------------------------------------------------------------------------------------------------


class Files(_SyncResource):
    """`client.files`: the Files API, whose ids `containers.create(file_ids=...)` accepts."""

    create = _call(ops.create_file)
    list = _pages(ops.list_files)
    list_page = _call(ops.list_files)
    retrieve = _call(ops.retrieve_file)
    delete = _call(ops.delete_file)

    def content(self, file_id: str) -> bytes:
        """The whole file in memory."""
        with ContentStream(self._client._execute(ops.file_content(file_id))) as body:
            return body.read()


class AsyncFiles(_AsyncResource):
    """`client.files` of an `AsyncClient`."""

    create = _acall(ops.create_file)
    list = _apages(ops.list_files)
    list_page = _acall(ops.list_files)
    retrieve = _acall(ops.retrieve_file)
    delete = _acall(ops.delete_file)

    async def content(self, file_id: str) -> bytes:
        """The whole file in memory."""
        async with AsyncContentStream(await self._client._execute(ops.file_content(file_id))) as body:
            return await body.read()


# --- models ---------------------------------------------------------------------------------------------------


class Models(_SyncResource):
    """`client.models`: whether the service offers a model."""

    retrieve = _call(ops.retrieve_model)


class AsyncModels(_AsyncResource):
    """`client.models` of an `AsyncClient`."""

    retrieve = _acall(ops.retrieve_model)


# --- responses ------------------------------------------------------------------------------------------------


class Responses(_SyncResource):
    """`client.responses`: the Responses API, for running code with the `code_interpreter` tool."""

    create = _call(ops.create_response, defaults={"model": _model})
    stream = _events(ops.stream_response, defaults={"model": _model})
    retrieve = _call(ops.retrieve_response)
    cancel = _call(ops.cancel_response)
    delete = _call(ops.delete_response)


class AsyncResponses(_AsyncResource):
    """`client.responses` of an `AsyncClient`."""

    create = _acall(ops.create_response, defaults={"model": _model})
    stream = _aevents(ops.stream_response, defaults={"model": _model})
    retrieve = _acall(ops.retrieve_response)
    cancel = _acall(ops.cancel_response)
    delete = _acall(ops.delete_response)
