"""The HTTP API under /v1: containers, container files, files and responses, declared as a route table.

Handlers validate the request, call the store or the live containers, and shape the answer like the cloud's.
Every error leaves as `{"error": {...}}` through errors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from . import errors, responses, safepath
from .containers import Containers
from .download import FileStream
from .errors import APIError
from .middleware import BearerAuth, Faults, Latency, RequestId
from .options import ServerOptions
from .params import create_params, is_multipart, list_params, memory_limit_of, path_param, read_json
from .records import container_file_json, container_json, file_json, page_json
from .uploads import ensure, read_multipart


def containers_of(request: Request) -> Containers:
    return request.app.state.containers


def options_of(request: Request) -> ServerOptions:
    return request.app.state.options


# -- containers -----------------------------------------------------------------------------------------------


async def create_container(request: Request) -> JSONResponse:
    name, minutes, memory_limit, file_ids = create_params(await read_json(request))
    row = await containers_of(request).create(name, minutes, memory_limit, file_ids)
    return JSONResponse(container_json(row))


async def list_containers(request: Request) -> JSONResponse:
    limit, order, after = list_params(request)
    containers = containers_of(request)
    page = containers.store.list_containers(limit, order, after, request.query_params.get("name"))
    page.rows = [containers.current(row) for row in page.rows]
    return JSONResponse(page_json(page, container_json))


async def retrieve_container(request: Request) -> JSONResponse:
    return JSONResponse(container_json(containers_of(request).retrieve(path_param(request, "container_id"))))


async def delete_container(request: Request) -> JSONResponse:
    container_id = path_param(request, "container_id")
    if not await containers_of(request).delete(container_id):
        raise errors.not_found("container", container_id, param="container_id")
    return JSONResponse({"id": container_id, "object": "container.deleted", "deleted": True})


# -- container files ------------------------------------------------------------------------------------------


async def create_container_file(request: Request) -> JSONResponse:
    containers = containers_of(request)
    container_id = path_param(request, "container_id")
    containers.use(container_id)
    store = containers.store
    if is_multipart(request):
        upload = await read_multipart(request, store.temp_path(), options_of(request).max_upload_bytes)
        try:
            if upload.path is None and upload.fields.get("file_id"):
                return await _container_file_from_id(containers, container_id, upload.fields["file_id"])
            ensure(upload)
            assert upload.path is not None and upload.filename is not None
            async with containers.lock(container_id):
                containers.use(container_id)
                row = _add(store, container_id, upload.filename, upload.path)
        finally:
            upload.discard()
        return JSONResponse(container_file_json(row))
    body = await read_json(request)
    file_id = body.get("file_id")
    if not file_id:
        raise errors.missing("file_id")
    if not isinstance(file_id, str):
        raise errors.invalid("Invalid 'file_id': expected a string.", "file_id")
    return await _container_file_from_id(containers, container_id, file_id)


async def _container_file_from_id(containers: Containers, container_id: str, file_id: str) -> JSONResponse:
    store = containers.store
    if store.get_file(file_id) is None:
        raise errors.not_found("file", file_id, param="file_id")
    async with containers.lock(container_id):
        containers.use(container_id)
        try:
            row = await asyncio.to_thread(store.copy_file_to_container, file_id, container_id)
        except safepath.UnsafePath as exc:
            raise errors.invalid(f"Invalid file name: {exc}", "file_id") from None
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise errors.invalid(str(exc), "file_id") from None
        except FileNotFoundError:  # the file or the container was deleted meanwhile
            raise errors.not_found("file", file_id, param="file_id") from None
    return JSONResponse(container_file_json(row))


def _add(store, container_id: str, filename: str, path) -> dict:
    try:
        return store.add_container_file(container_id, filename, path, "user")
    except safepath.UnsafePath as exc:
        raise errors.invalid(f"Invalid file name: {exc}", "file") from None
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise errors.invalid(str(exc), "file") from None
    except FileNotFoundError:  # the container was deleted meanwhile
        raise errors.not_found("container", container_id, param="container_id") from None


async def list_container_files(request: Request) -> JSONResponse:
    containers = containers_of(request)
    container_id = path_param(request, "container_id")
    limit, order, after = list_params(request)
    containers.use(container_id)
    page = containers.store.list_container_files(container_id, limit, order, after)
    return JSONResponse(page_json(page, container_file_json))


def _container_file(request: Request) -> dict:
    containers = containers_of(request)
    container_id, file_id = path_param(request, "container_id"), path_param(request, "file_id")
    containers.use(container_id)
    row = containers.store.get_container_file(container_id, file_id)
    if row is None:
        raise errors.not_found("container file", file_id, param="file_id")
    return row


async def retrieve_container_file(request: Request) -> JSONResponse:
    return JSONResponse(container_file_json(_container_file(request)))


async def delete_container_file(request: Request) -> JSONResponse:
    containers = containers_of(request)
    container_id, file_id = path_param(request, "container_id"), path_param(request, "file_id")
    async with containers.lock(container_id):
        containers.use(container_id)
        if not containers.store.delete_container_file(container_id, file_id):
            raise errors.not_found("container file", file_id, param="file_id")
    return JSONResponse({"id": file_id, "object": "container.file.deleted", "deleted": True})


async def container_file_content(request: Request) -> FileStream:
    row = _container_file(request)
    try:
        fd = containers_of(request).store.open_container_file(row["container_id"], row)
    except OSError:
        raise errors.not_found("container file", row["id"], param="file_id") from None
    return FileStream(fd, row["path"].rsplit("/", 1)[-1])


# -- files ------------------------------------------------------------------------------------------------------


async def create_file(request: Request) -> JSONResponse:
    if not is_multipart(request):
        raise errors.invalid("Upload files as multipart/form-data with a `file` part and a `purpose` field.")
    store = containers_of(request).store
    upload = await read_multipart(request, store.temp_path(), options_of(request).max_upload_bytes)
    try:
        ensure(upload)
        purpose = upload.fields.get("purpose")
        if not purpose:
            raise errors.missing("purpose")
        assert upload.path is not None
        row = store.add_file(upload.filename or "file", purpose, upload.path)
    finally:
        upload.discard()
    return JSONResponse(file_json(row))


async def list_files(request: Request) -> JSONResponse:
    limit, order, after = list_params(request, max_limit=10_000)
    page = containers_of(request).store.list_files(limit, order, after, request.query_params.get("purpose"))
    return JSONResponse(page_json(page, file_json))


def _file(request: Request) -> dict:
    file_id = path_param(request, "file_id")
    row = containers_of(request).store.get_file(file_id)
    if row is None:
        raise errors.not_found("file", file_id, param="file_id")
    return row


async def retrieve_file(request: Request) -> JSONResponse:
    return JSONResponse(file_json(_file(request)))


async def delete_file(request: Request) -> JSONResponse:
    file_id = path_param(request, "file_id")
    if not containers_of(request).store.delete_file(file_id):
        raise errors.not_found("file", file_id, param="file_id")
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


async def file_content(request: Request) -> FileStream:
    row = _file(request)
    try:
        fd = os.open(containers_of(request).store.file_path(row["id"]), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise errors.not_found("file", row["id"], param="file_id") from None
    return FileStream(fd, row["filename"])


# -- responses --------------------------------------------------------------------------------------------------


async def create_response(request: Request) -> JSONResponse | StreamingResponse:
    parsed = responses.parse(await read_json(request))
    containers = containers_of(request)
    if isinstance(parsed.container, dict):
        spec = parsed.container
        memory_limit = memory_limit_of(spec.get("memory_limit"))
        file_ids = spec.get("file_ids") or []
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise errors.invalid("Invalid 'file_ids': expected a list of file ids.", "file_ids")
        row = await containers.create("code-interpreter", 20, memory_limit, file_ids)
        container_id = row["id"]
    else:
        container_id = parsed.container
    if parsed.stream:
        events = responses.stream(parsed, container_id, lambda: detached(containers.execute(container_id, parsed.code)))
        containers.use(container_id)  # fail before the stream starts for an unknown or expired container
        # Starlette's streaming response cancels the events when the client goes away, which interrupts the code.
        headers = {"cache-control": "no-cache"}
        return StreamingResponse(events, media_type="text/event-stream; charset=utf-8", headers=headers)
    result, changed = await until_disconnect(request, containers.execute(container_id, parsed.code))
    return JSONResponse(responses.build(parsed, container_id, result, changed))


class ClientGone(Exception):
    pass


async def detached(work):
    """Awaits `work` in a task of its own, which a cancellation of the caller cancels exactly once.

    StreamingResponse stops a stream whose client left by cancelling an anyio scope, which cancels every later
    await too; the run must get one plain cancellation instead, so it can interrupt the code and wait (holding
    the kernel) until the code has stopped.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        raise


async def until_disconnect(request: Request, work):
    """Awaits `work`, cancelling it (which interrupts the kernel) if the client disconnects first."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server is shutting down: the work goes too
        task.cancel()
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientGone()
    return task.result()


# -- the application --------------------------------------------------------------------------------------------

ROUTES = [
    Route("/v1/containers", create_container, methods=["POST"]),
    Route("/v1/containers", list_containers, methods=["GET"]),
    Route("/v1/containers/{container_id}", retrieve_container, methods=["GET"]),
    Route("/v1/containers/{container_id}", delete_container, methods=["DELETE"]),
    Route("/v1/containers/{container_id}/files", create_container_file, methods=["POST"]),
    Route("/v1/containers/{container_id}/files", list_container_files, methods=["GET"]),
    Route("/v1/containers/{container_id}/files/{file_id}", retrieve_container_file, methods=["GET"]),
    Route("/v1/containers/{container_id}/files/{file_id}", delete_container_file, methods=["DELETE"]),
    Route("/v1/containers/{container_id}/files/{file_id}/content", container_file_content, methods=["GET"]),
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/responses", create_response, methods=["POST"]),
]


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody reads this answer; 499 is what proxies log for it.
    return JSONResponse({"error": {"message": "Client closed the request.", "type": "client_closed"}}, 499)


def build_app(containers: Containers, options: ServerOptions, token: str, lifespan=None) -> Starlette:
    middleware = [
        Middleware(Latency, delay_ms=options.latency_ms),
        Middleware(RequestId),
        Middleware(BearerAuth, token=token),
        Middleware(Faults, rate=options.error_rate),
    ]
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={
            APIError: errors.handle_api_error,
            HTTPException: errors.handle_http_exception,
            ClientGone: _client_gone,
            ClientDisconnect: _client_gone,
            Exception: errors.handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.containers = containers
    app.state.options = options
    return app
