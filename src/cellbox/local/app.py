"""The HTTP API under /v1: containers, container files, files and responses, declared as a route table.

Handlers validate the request, call the store or the live containers, and shape the answer like the cloud's.
Every error leaves as `{"error": {...}}` through errors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import errors, ids, responses, safepath
from .containers import Containers
from .download import FileStream
from .errors import APIError
from .middleware import BearerAuth, Faults, Latency, RequestId
from .sandbox import MEMORY_LIMITS
from .uploads import ensure, read_multipart

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_EXPIRY_MINUTES = 24 * 60


@dataclass
class Settings:
    token: str
    max_upload_bytes: int = 512 * 1024 * 1024
    latency_ms: float = 0.0
    error_rate: float = 0.0


# -- shaping records ----------------------------------------------------------------------------------------


def container_json(row: dict) -> dict:
    return {
        "id": row["id"],
        "object": "container",
        "name": row["name"],
        "created_at": row["created_at"],
        "status": row["status"],
        "last_active_at": int(row["last_active"]),
        "expires_after": {"anchor": "last_active_at", "minutes": row["expires_minutes"]},
        "memory_limit": row["memory_limit"],
        "network_policy": {"type": "disabled"},
    }


def container_file_json(row: dict) -> dict:
    return {
        "id": row["id"],
        "object": "container.file",
        "container_id": row["container_id"],
        "created_at": row["created_at"],
        "bytes": row["bytes"],
        "path": f"{safepath.MOUNT}/{row['path']}",
        "source": row["source"],
    }


def file_json(row: dict) -> dict:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": row["created_at"],
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def page_json(page, shape) -> dict:
    data = [shape(row) for row in page.rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": page.has_more,
    }


# -- request helpers ----------------------------------------------------------------------------------------


async def read_json(request: Request) -> dict:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise APIError(413, f"The request body is larger than {MAX_JSON_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise APIError(413, f"The request body is larger than {MAX_JSON_BYTES} bytes.")
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
        # Escaped lone surrogates ("\udc80") parse, but no text column or JSON answer can hold them.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise errors.invalid(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise errors.invalid("The request body must be a JSON object.")
    return value


def list_params(request: Request, max_limit: int = 100) -> tuple[int, str, str | None]:
    query = request.query_params
    raw = query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise errors.invalid(f"Invalid 'limit': expected an integer, got '{raw}'.", "limit") from None
    if not 1 <= limit <= max_limit:
        raise errors.invalid(f"Invalid 'limit': it must be between 1 and {max_limit}.", "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.invalid("Invalid 'order': expected 'asc' or 'desc'.", "order")
    return limit, order, query.get("after") or None


def containers_of(request: Request) -> Containers:
    return request.app.state.containers


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


_ISSUED = {
    "container_id": ("container", ids.is_container_id),
    "file_id": ("file", ids.is_file_id),
}


def path_param(request: Request, name: str) -> str:
    """An id from the URL, refused with a 404 unless it has the shape of the ids this server issues."""
    value = request.path_params[name]
    kind, issued = _ISSUED[name]
    if name == "file_id" and "container_id" in request.path_params:
        kind, issued = "container file", ids.is_container_file_id
    if not issued(value):
        raise errors.not_found(kind, value, param=name)
    return value


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


# -- containers -----------------------------------------------------------------------------------------------


def _memory_limit(value: object) -> str:
    if value is None:
        return "1g"
    if not isinstance(value, str) or value not in MEMORY_LIMITS:
        raise errors.invalid("Invalid 'memory_limit': expected one of 1g, 4g, 16g, 64g.", "memory_limit")
    return value


def _create_params(body: dict) -> tuple[str, int, str, list[str]]:
    name = body.get("name")
    if name is None:
        raise errors.missing("name")
    if not isinstance(name, str):
        raise errors.invalid("Invalid 'name': expected a string.", "name")
    if len(name) > 1024:
        raise errors.invalid("Invalid 'name': longer than 1024 characters.", "name")
    minutes = 20
    expires = body.get("expires_after")
    if expires is not None:
        if not isinstance(expires, dict):
            raise errors.invalid("Invalid 'expires_after': expected an object.", "expires_after")
        if expires.get("anchor") != "last_active_at":
            raise errors.invalid("Invalid 'expires_after.anchor': expected 'last_active_at'.", "expires_after.anchor")
        minutes = expires.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_EXPIRY_MINUTES:
            raise errors.invalid(
                f"Invalid 'expires_after.minutes': expected an integer from 1 to {MAX_EXPIRY_MINUTES}.",
                "expires_after.minutes",
            )
    memory_limit = _memory_limit(body.get("memory_limit"))
    file_ids = body.get("file_ids") or []
    if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
        raise errors.invalid("Invalid 'file_ids': expected a list of file ids.", "file_ids")
    policy = body.get("network_policy")
    if policy is not None:
        if not isinstance(policy, dict) or policy.get("type") not in ("disabled", "allowlist"):
            raise errors.invalid("Invalid 'network_policy'.", "network_policy")
        if policy["type"] == "allowlist":
            raise errors.invalid(
                "Network access is not available in local containers; use network_policy type 'disabled'.",
                "network_policy",
            )
    skills = body.get("skills")
    if skills:
        raise errors.invalid("Skills are not supported by the local server.", "skills")
    return name, minutes, memory_limit, file_ids


async def create_container(request: Request) -> JSONResponse:
    name, minutes, memory_limit, file_ids = _create_params(await read_json(request))
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
        upload = await read_multipart(request, store.temp_path(), settings_of(request).max_upload_bytes)
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
    upload = await read_multipart(request, store.temp_path(), settings_of(request).max_upload_bytes)
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


async def create_response(request: Request) -> JSONResponse | EventStream:
    parsed = responses.parse(await read_json(request))
    containers = containers_of(request)
    if isinstance(parsed.container, dict):
        spec = parsed.container
        memory_limit = _memory_limit(spec.get("memory_limit"))
        file_ids = spec.get("file_ids") or []
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise errors.invalid("Invalid 'file_ids': expected a list of file ids.", "file_ids")
        row = await containers.create("code-interpreter", 20, memory_limit, file_ids)
        container_id = row["id"]
    else:
        container_id = parsed.container
    if parsed.stream:
        events = responses.stream(parsed, container_id, lambda: containers.execute(container_id, parsed.code))
        containers.use(container_id)  # fail before the stream starts for an unknown or expired container
        return EventStream(request, events)
    result, changed = await until_disconnect(request, containers.execute(container_id, parsed.code))
    return JSONResponse(responses.build(parsed, container_id, result, changed))


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


class EventStream:
    """Server-sent events; the client going away cancels the producer (and so interrupts the code)."""

    def __init__(self, request: Request, events: AsyncIterator[bytes]) -> None:
        self.request = request
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> None:
            headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for chunk in self.events:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except APIError as exc:  # too late for a status code: the stream ends with an error event
                data = json.dumps({"type": "error", **exc.body()["error"]})
                await send({"type": "http.response.body", "body": f"event: error\ndata: {data}\n\n".encode()})
            await send({"type": "http.response.body", "body": b""})

        with contextlib.suppress(ClientGone):
            await until_disconnect(self.request, produce())


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


def build_app(containers: Containers, settings: Settings, lifespan=None) -> Starlette:
    middleware = [
        Middleware(Latency, delay_ms=settings.latency_ms),
        Middleware(RequestId),
        Middleware(BearerAuth, token=settings.token),
        Middleware(Faults, rate=settings.error_rate),
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
    app.state.settings = settings
    return app
