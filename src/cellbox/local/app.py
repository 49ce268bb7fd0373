"""The HTTP API under /v1: containers, container files, files and responses, declared as a route table.

Handlers validate the request, call the store or the live containers, and shape the answer like the cloud's.
Every error leaves as `{"error": {...}}` through errors.py (or in OCI's shape, see middleware.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from . import disk, errors, ids, responses, safepath
from .containers import Containers
from .download import FileStream
from .errors import APIError
from .listing import ListingLag
from .middleware import BearerAuth, Faults, Latency, OciErrors, RequestId, RequireProject
from .model import RequestCounter
from .options import ServerOptions
from .params import (
    CONTAINER_FILE_FIELDS,
    FILE_FIELDS,
    create_params,
    is_multipart,
    list_params,
    memory_limit_of,
    path_param,
    read_json,
    refuse_unknown,
)
from .records import container_file_json, container_json, file_json, page_json
from .stored import StoredResponses, sse
from .uploads import ensure, read_multipart


def containers_of(request: Request) -> Containers:
    return request.app.state.containers


def options_of(request: Request) -> ServerOptions:
    return request.app.state.options


def lag_of(request: Request) -> ListingLag:
    return request.app.state.listing_lag


def stored_of(request: Request) -> StoredResponses:
    return request.app.state.stored


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
        upload = await _read_upload(request, containers, container_id)
        try:
            refuse_unknown(upload.fields, CONTAINER_FILE_FIELDS)
            if upload.path is None and upload.fields.get("file_id"):
                return await _container_file_from_id(containers, container_id, upload.fields["file_id"])
            ensure(upload)
            assert upload.path is not None and upload.filename is not None
            name = _stored_name(upload.filename, options_of(request))
            async with containers.lock(container_id):
                containers.use(container_id)
                row = _add(store, container_id, name, upload.path)
            if containers.quota is not None:
                containers.quota.wrote(container_id, upload.size)
        finally:
            upload.discard()
        return JSONResponse(container_file_json(row))
    body = await read_json(request)
    refuse_unknown(body, CONTAINER_FILE_FIELDS)
    file_id = body.get("file_id")
    if not file_id:
        raise errors.missing("file_id")
    if not isinstance(file_id, str):
        raise errors.invalid("Invalid 'file_id': expected a string.", "file_id")
    return await _container_file_from_id(containers, container_id, file_id)


async def _container_file_from_id(containers: Containers, container_id: str, file_id: str) -> JSONResponse:
    store = containers.store
    found = store.get_file(file_id)
    if found is None:
        raise errors.not_found("file", file_id, param="file_id")
    if containers.quota is not None:
        room, why = await containers.quota.room(container_id)
        if found["bytes"] > room:
            raise errors.insufficient_storage(why)
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


async def _read_upload(request: Request, containers: Containers, container_id: str | None):
    """The multipart body, refused with 507 as soon as it would pass the container's disk quota (or eat into the
    server's reserve, for the Files API) rather than at the end."""
    limit = options_of(request).max_upload_bytes
    room, why = limit, ""
    quota = containers.quota
    if quota is not None:
        if container_id is not None:
            room, why = await quota.room(container_id)
        else:
            room, why = disk.free_bytes(containers.store.files_dir) - quota.reserve.size, "the server's disk is full"
    if room >= limit:
        return await read_multipart(request, containers.store.temp_path(), limit)
    try:
        return await read_multipart(request, containers.store.temp_path(), max(0, room))
    except APIError as exc:
        if exc.status == 413:
            raise errors.insufficient_storage(why) from None
        raise


def _stored_name(filename: str, options: ServerOptions) -> str:
    """Where an upload lands under /mnt/data: its name, or (`--upload-names prefixed`, as OpenAI's example
    answers "/mnt/data/<32 hex>-<name>") 32 random hex digits, a dash and its basename: folders are dropped."""
    if options.upload_names != "prefixed":
        return filename
    return f"{secrets.token_hex(16)}-{filename.rsplit('/', 1)[-1]}"


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
    page.rows = lag_of(request).shown(page.rows)
    return JSONResponse(page_json(page, container_file_json))


def _container_file(request: Request) -> dict:
    containers = containers_of(request)
    container_id, file_id = path_param(request, "container_id"), path_param(request, "file_id")
    containers.use(container_id)
    row = containers.store.get_container_file(container_id, file_id)
    if row is None or lag_of(request).phase(file_id) == "hidden":
        raise errors.not_found("container file", file_id, param="file_id")
    return row


async def retrieve_container_file(request: Request) -> JSONResponse:
    row = _container_file(request)
    return JSONResponse(container_file_json(lag_of(request).shown([row])[0]))


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
    if lag_of(request).phase(row["id"]) is not None:  # the words a cloud was seen to answer (listing.py)
        message = f"File {row['id']} not found on container {row['container_id']}"
        raise APIError(404, message, param="file_id", code="not_found")
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
    upload = await _read_upload(request, containers_of(request), None)
    try:
        # `expires_after` is accepted and ignored: files on the local server never expire.
        refuse_unknown(upload.fields, FILE_FIELDS)
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
    containers, stored = containers_of(request), stored_of(request)
    previous = parsed.body.get("previous_response_id")
    if previous is not None and not (ids.is_response_id(previous) and stored.has(previous)):
        raise errors.not_found("previous response", previous, param="previous_response_id")
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
    containers.use(container_id)  # 404 or 400 (expired) now, before anything starts
    lag = lag_of(request)

    async def execute(code: str):
        result, changed = await containers.execute(container_id, code)
        lag.wrote(changed)
        return result, changed

    nth = request.app.state.requests_per_container.next(container_id)
    run = stored.start(parsed, container_id, execute, options_of(request).quirks, nth)
    if parsed.stream:
        # Starlette's streaming response stops the events when the client goes away, which cancels the run
        # (interrupting the code) unless it is in the background.
        headers = {"cache-control": "no-cache"}
        return StreamingResponse(sse(run, False), media_type="text/event-stream; charset=utf-8", headers=headers)
    if parsed.background:
        return JSONResponse(run.shown())
    await until_disconnect(request, run.task)
    if run.failure is not None:
        raise run.failure
    return JSONResponse(run.shown())


def _includes_outputs(request: Request) -> bool:
    return responses.OUTPUTS in request.query_params.getlist("include") + request.query_params.getlist("include[]")


async def retrieve_response(request: Request) -> JSONResponse | StreamingResponse:
    run = stored_of(request).get(path_param(request, "response_id"))
    if request.query_params.get("stream") == "true":
        if not run.keep_events:
            raise errors.invalid("Only background responses can be streamed again.", "stream")
        raw = request.query_params.get("starting_after", "-1")
        after = int(raw) if raw.lstrip("-").isdigit() else -1
        headers = {"cache-control": "no-cache"}
        events = sse(run, _includes_outputs(request), after)
        return StreamingResponse(events, media_type="text/event-stream; charset=utf-8", headers=headers)
    return JSONResponse(run.shown(_includes_outputs(request)))


async def delete_response(request: Request) -> JSONResponse:
    response_id = path_param(request, "response_id")
    stored_of(request).delete(response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


async def cancel_response(request: Request) -> JSONResponse:
    run = await stored_of(request).cancel(path_param(request, "response_id"))
    return JSONResponse(run.shown())


class ClientGone(Exception):
    pass


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
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
]


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody reads this answer; 499 is what proxies log for it.
    return JSONResponse({"error": {"message": "Client closed the request.", "type": "client_closed"}}, 499)


def build_app(containers: Containers, options: ServerOptions, token: str, lifespan=None) -> Starlette:
    oci = options.error_shape == "oci"
    middleware = [
        Middleware(Latency, delay_ms=options.latency_ms),
        Middleware(RequestId, oci=oci),
        *([Middleware(OciErrors)] if oci else []),
        Middleware(BearerAuth, token=token, oci=oci),
        *([Middleware(RequireProject)] if options.require_project else []),
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
    app.state.listing_lag = ListingLag(options.listing_lag_ms)
    app.state.stored = StoredResponses()
    app.state.requests_per_container = RequestCounter()
    return app
