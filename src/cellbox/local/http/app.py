"""The HTTP API under /v1: containers, container files, files and responses, declared as a route table.

Handlers validate the request, call the store or the live containers, and shape the answer like the cloud's.
Every error leaves as `{"error": {...}}` through errors.py (or in OCI's shape, see emulation/gateway.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import errors
from ..emulation.faults import Faults, Latency
from ..emulation.gateway import OciErrors, OciRequestId, RequireProject
from ..emulation.listing import ListingLag
from ..emulation.quirks import RequestCounter
from ..emulation.ratelimit import RateLimit
from ..errors import APIError
from ..jail.containers import Containers
from ..options import ServerOptions
from ..responses import create
from ..responses.stored import EventStream, Run, StoredResponses, sse
from ..store import disk, ids
from .appstate import containers_of, lag_of, options_of, stored_of
from .files_api import (
    container_file_content,
    create_container_file,
    create_file,
    delete_container_file,
    delete_file,
    file_content,
    list_container_files,
    list_files,
    retrieve_container_file,
    retrieve_file,
)
from .middleware import BearerAuth, EndpointProof, RequestId, Unexpected
from .objects import container_json, page_json
from .params import (
    create_params,
    list_params,
    memory_limit_of,
    path_param,
    read_json,
)

# -- containers -----------------------------------------------------------------------------------------------


def _container(containers: Containers, row: dict) -> dict:
    """The container object, and beside the API's fields `state_lost` (why) when its Python state is gone before
    its next run: the one thing about a container only this server knows, which a client shows before it runs."""
    data = container_json(row)
    lost = containers.state_lost(row)
    if lost:
        data["state_lost"] = lost
    return data


async def create_container(request: Request) -> JSONResponse:
    name, minutes, memory_limit, file_ids = create_params(await read_json(request))
    row = await containers_of(request).create(name, minutes, memory_limit, file_ids)
    return JSONResponse(container_json(row))


async def list_containers(request: Request) -> JSONResponse:
    limit, order, after = list_params(request)
    containers = containers_of(request)
    page = containers.store.list_containers(limit, order, after, request.query_params.get("name"))
    page.rows = [containers.current(row) for row in page.rows]
    return JSONResponse(page_json(page, lambda row: _container(containers, row)))


async def retrieve_container(request: Request) -> JSONResponse:
    containers = containers_of(request)
    return JSONResponse(_container(containers, containers.retrieve(path_param(request, "container_id"))))


async def delete_container(request: Request) -> JSONResponse:
    container_id = path_param(request, "container_id")
    if not await containers_of(request).delete(container_id):
        raise errors.not_found("container", container_id, param="container_id")
    return JSONResponse({"id": container_id, "object": "container.deleted", "deleted": True})


# -- responses --------------------------------------------------------------------------------------------------


async def retrieve_model(request: Request) -> JSONResponse:
    # Every name is served, as /responses takes every name (a real model's keeps its rules: emulation/models.py).
    name = request.path_params["model"]
    return JSONResponse({"id": name, "object": "model", "created": _STARTED, "owned_by": "cellbox"})


_STARTED = int(time.time())


async def create_response(request: Request) -> JSONResponse | EventStream:
    options = options_of(request)
    parsed = create.parse(
        await read_json(request),
        unstored_background=options.unstored_background,
        container_ids=not options.auto_containers_only,
    )
    streaming = options.streaming
    if parsed.stream and streaming == "refused":
        raise errors.unsupported_parameter("stream", "Streaming is not supported here: leave out 'stream'.")
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
        reused = stored.reusable(previous, functools.partial(_active, containers))
        if reused is not None:
            container_id = reused
        else:
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
        return EventStream(sse(run, False, cut=streaming == "cut"))
    if parsed.background:
        return JSONResponse(run.shown())
    await until_disconnect(request, run.task)
    if run.failure is not None:
        raise run.failure
    return JSONResponse(run.shown())


def _active(containers: Containers, container_id: str) -> bool:
    try:
        containers.use(container_id, touch=False)
    except APIError:  # deleted or expired
        return False
    return True


def _includes_outputs(request: Request) -> bool:
    return create.OUTPUTS in request.query_params.getlist("include") + request.query_params.getlist("include[]")


async def retrieve_response(request: Request) -> JSONResponse | EventStream:
    run = stored_of(request).get(path_param(request, "response_id"))
    if request.query_params.get("stream") == "true":
        if not run.keep_events:
            raise errors.invalid("Only background responses can be streamed again.", "stream")
        raw = request.query_params.get("starting_after", "-1")
        after = int(raw) if raw.lstrip("-").isdigit() else -1
        return EventStream(sse(run, _includes_outputs(request), after, cut=options_of(request).streaming == "cut"))
    return JSONResponse(run.shown(_includes_outputs(request)))


async def list_input_items(request: Request) -> JSONResponse:
    run = stored_of(request).get(path_param(request, "response_id"))
    limit, order, after = list_params(request)
    items = run.input_items if order == "asc" else run.input_items[::-1]
    if after is not None:
        at = next((n for n, item in enumerate(items) if item["id"] == after), None)
        if at is None:
            raise errors.invalid(f"Invalid 'after': no input item '{after}' in this response.", "after")
        items = items[at + 1 :]
    page = items[:limit]
    first, last = (page[0]["id"], page[-1]["id"]) if page else ("", "")
    body = {"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": len(items) > limit}
    return JSONResponse(body)


async def delete_response(request: Request) -> JSONResponse:
    response_id = path_param(request, "response_id")
    stored_of(request).delete(response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


async def cancel_response(request: Request) -> JSONResponse:
    run = await stored_of(request).cancel(path_param(request, "response_id"))
    if isinstance(run, Run) and run.record["status"] == "cancelled":
        said = containers_of(request).stopped_said(run.container_id)
        if said is not None:
            run.stopped_said(said)
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
    Route("/v1/models/{model}", retrieve_model, methods=["GET"]),
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody reads this answer; 499 is what proxies log for it.
    return JSONResponse({"error": {"message": "Client closed the request.", "type": "client_closed"}}, 499)


def _emulated(wanted: bool, middleware: Middleware) -> list[Middleware]:
    """A cloud's manner (emulation/) among the server's own middleware, when the options ask for it."""
    return [middleware] if wanted else []


def build_app(containers: Containers, options: ServerOptions, token: str, lifespan=None) -> Starlette:
    minute = options.seconds_per_minute  # a rate limit's minute is as long as an expiry's
    middleware = [
        Middleware(EndpointProof, token=token),
        *_emulated(options.latency_ms > 0, Middleware(Latency, delay_ms=options.latency_ms)),
        *_emulated(options.error_shape == "oci", Middleware(OciRequestId)),
        Middleware(RequestId),
        *_emulated(options.error_shape == "oci", Middleware(OciErrors)),
        Middleware(BearerAuth, token=token),
        *_emulated(options.require_project, Middleware(RequireProject)),
        *_emulated(options.rate_limit is not None, Middleware(RateLimit, limit=options.rate_limit or 0, window=minute)),
        *_emulated(options.error_rate > 0, Middleware(Faults, rate=options.error_rate)),
        Middleware(Unexpected),
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

    # The disk is short once free space nears the reserve the server keeps for itself (store/disk.py).
    def low_disk() -> bool:
        return disk.free_bytes(containers.store.data_dir) < 2 * disk.RESERVE_BYTES

    app.state.stored = StoredResponses(containers.store, low_disk)
    app.state.requests_per_container = RequestCounter()
    return app
