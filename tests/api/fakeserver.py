"""An in-memory Containers API on loopback, for testing `cellbox.api` against real HTTP.

    server = FakeServer(data_dir).start()          # uvicorn in a background thread on a free port
    server.drop("/v1/containers/*")                # close the connection instead of answering
    server.delay("/v1/containers", 2, times=3)     # answer late (for timeouts)
    server.count("GET", "/v1/containers")          # attempts seen

Enough of the API to exercise the client: containers (CRUD, pagination with limit/order/after/name), container
files (multipart upload parsed as it arrives and written to disk with its sha256, JSON `file_id`, list, retrieve,
delete, content streamed from disk), the Files API, and `POST /v1/responses` answering a canned
`code_interpreter_call` plus a message with a `container_file_citation`. Every request needs
`Authorization: Bearer <token>`.

Faults are the ones that need a socket, queued per path pattern (fnmatch) and consumed in order, one per
matching request: a dropped connection (before answering, or part-way through the body) and a delay. Answers
a server can simply be told to give (statuses, HTML pages, malformed JSON) are `mockapi.py`'s, over an httpx
`MockTransport`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import hashlib
import itertools
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cellbox.local.testing import wait_until

TOKEN = "sk-test-fake-0123456789"
CHUNK = 64 * 1024


@dataclasses.dataclass
class Fault:
    pattern: str
    method: str | None
    kind: str  # drop | drop_body | delay
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(path, self.pattern)


@dataclasses.dataclass
class Logged:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    fault: str | None = None
    raw_path: str = ""


@dataclasses.dataclass
class StoredFile:
    meta: dict[str, Any]
    path: Path
    sha256: str
    content_type: str | None = None
    field: str = "file"


def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param=None):
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status
    )


class _FormSink:
    """Streaming multipart/form-data: text fields kept, file parts hashed, counted and written to disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fields: dict[str, str] = {}
        self.files: list[dict[str, Any]] = []
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._current: dict[str, Any] | None = None
        self._value = bytearray()

    def on_part_begin(self) -> None:
        self._headers = {}
        self._current = None
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode()
        if b"filename" in options:
            target = self.directory / f"up-{next(_ids):06d}"
            self._current = {
                "field": name,
                "filename": options[b"filename"].decode(),
                "content_type": self._headers.get(b"content-type", b"").decode() or None,
                "hash": hashlib.sha256(),
                "size": 0,
                "path": target,
                "handle": target.open("wb"),
            }
        else:
            self._current = {"field": name, "value": True}

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        current = self._current
        if current is None:
            return
        if "value" in current:
            self._value += data[start:end]
            return
        chunk = data[start:end]
        current["size"] += len(chunk)
        current["hash"].update(chunk)
        current["handle"].write(chunk)

    def on_part_end(self) -> None:
        current = self._current
        if current is None:
            return
        if "value" in current:
            self.fields[current["field"]] = self._value.decode()
            return
        current.pop("handle").close()
        current["sha256"] = current.pop("hash").hexdigest()
        self.files.append(current)


_ids = itertools.count(1)


class FakeAPI:
    """The ASGI app: faults and the request log around a Starlette app with the API's routes."""

    def __init__(self, data_dir: str | os.PathLike[str], token: str = TOKEN) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.token = token
        self._lock = threading.Lock()
        self.app = Starlette(routes=self._routes())
        self.reset()

    # --- test controls --------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.faults: list[Fault] = []
            self.log: list[Logged] = []
            self.containers: dict[str, dict[str, Any]] = {}
            self.container_files: dict[str, dict[str, StoredFile]] = {}
            self.files: dict[str, StoredFile] = {}
            self.bodies: list[Any] = []  # JSON bodies of POSTs, in order
            self._clock = itertools.count(1_700_000_000)
        for child in self.data_dir.glob("up-*"):
            child.unlink(missing_ok=True)

    def _queue(self, fault: Fault, times: int) -> None:
        with self._lock:
            self.faults.extend(dataclasses.replace(fault) for _ in range(times))

    def drop(self, pattern, *, times=1, method=None, mid_body: bool = False) -> None:
        """Close the connection: before answering, or (mid_body) after the headers and part of the body."""
        self._queue(Fault(pattern, method, "drop_body" if mid_body else "drop"), times)

    def delay(self, pattern, seconds: float, *, times=1, method=None) -> None:
        """Wait `seconds` before handling the request normally."""
        self._queue(Fault(pattern, method, "delay", seconds), times)

    def count(self, method: str | None = None, pattern: str = "*") -> int:
        """How many requests (attempts) matching method and path pattern arrived."""
        with self._lock:
            return sum(
                1 for r in self.log if (method is None or r.method == method) and fnmatch.fnmatchcase(r.path, pattern)
            )

    def requests(self, method: str | None = None, pattern: str = "*") -> list[Logged]:
        with self._lock:
            return [
                r for r in self.log if (method is None or r.method == method) and fnmatch.fnmatchcase(r.path, pattern)
            ]

    def add_container(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create a container directly (no request), for setting up pages."""
        with self._lock:
            return self._new_container({"name": name, **fields})

    # --- ASGI -----------------------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None:
                self.faults.remove(fault)
            self.log.append(
                Logged(
                    method,
                    path,
                    scope.get("query_string", b"").decode(),
                    headers,
                    fault.kind if fault else None,
                    (scope.get("raw_path") or path.encode()).decode("latin-1"),
                )
            )
        request_id = f"req_{len(self.log):04d}"

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "drop":
            await _drain(receive)
            _abort(send)
            return
        if headers.get("authorization") != f"Bearer {self.token}":
            await _error(401, "Incorrect API key provided.", code="invalid_api_key")(scope, receive, send_with_id)
            return
        if fault is not None:  # drop_body
            await _drain(receive)
            await self._drop_mid_body(send_with_id)
            return
        await self.app(scope, receive, send_with_id)

    async def _drop_mid_body(self, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000000")]})
        await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await asyncio.sleep(0.05)
        _abort(send)

    # --- routes ---------------------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/containers", self.list_containers, methods=["GET"]),
            Route("/v1/containers", self.create_container, methods=["POST"]),
            Route("/v1/containers/{cid}", self.retrieve_container, methods=["GET"]),
            Route("/v1/containers/{cid}", self.delete_container, methods=["DELETE"]),
            Route("/v1/containers/{cid}/files", self.list_container_files, methods=["GET"]),
            Route("/v1/containers/{cid}/files", self.create_container_file, methods=["POST"]),
            Route("/v1/containers/{cid}/files/{fid}", self.retrieve_container_file, methods=["GET"]),
            Route("/v1/containers/{cid}/files/{fid}", self.delete_container_file, methods=["DELETE"]),
            Route("/v1/containers/{cid}/files/{fid}/content", self.container_file_content, methods=["GET"]),
            Route("/v1/files", self.list_files, methods=["GET"]),
            Route("/v1/files", self.create_file, methods=["POST"]),
            Route("/v1/files/{fid}", self.retrieve_file, methods=["GET"]),
            Route("/v1/files/{fid}", self.delete_file, methods=["DELETE"]),
            Route("/v1/files/{fid}/content", self.file_content, methods=["GET"]),
            Route("/v1/responses", self.create_response, methods=["POST"]),
        ]

    def _new_container(self, body: dict[str, Any]) -> dict[str, Any]:
        now = next(self._clock)
        cid = f"cntr_{now:012x}{len(self.containers):04d}"
        container = {
            "id": cid,
            "object": "container",
            "name": body["name"],
            "created_at": now,
            "status": "running",
            "last_active_at": now,
            "expires_after": body.get("expires_after") or {"anchor": "last_active_at", "minutes": 20},
            "memory_limit": body.get("memory_limit", "1g"),
            "future_field": {"kept": True},  # a field this client version doesn't know
        }
        if "network_policy" in body:
            container["network_policy"] = body["network_policy"]
        self.containers[cid] = container
        self.container_files[cid] = {}
        return container

    async def _json(self, request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None
        with self._lock:
            self.bodies.append(body)
        return body

    async def create_container(self, request: Request):
        body = await self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return _error(400, "Missing required parameter: 'name'.", param="name", code="missing_required_parameter")
        if body.get("memory_limit", "1g") not in ("1g", "4g", "16g", "64g"):
            return _error(400, "Invalid value for 'memory_limit'.", param="memory_limit", code="invalid_value")
        with self._lock:
            missing = [f for f in body.get("file_ids", []) if f not in self.files]
            if missing:
                return _error(404, f"No such File object: {missing[0]}", param="file_ids")
            container = self._new_container(body)
            for fid in body.get("file_ids", []):
                self._copy_file(container["id"], self.files[fid])
        return JSONResponse(container)

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _error(400, "Invalid 'limit'.", param="limit")
        if not 1 <= limit <= 100:
            return _error(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            return _error(400, "Invalid 'order'.", param="order")
        items = sorted(items, key=lambda x: (x["created_at"], x["id"]), reverse=order == "desc")
        after = query.get("after")
        if after is not None:
            ids = [x["id"] for x in items]
            if after not in ids:
                return _error(400, f"Invalid 'after': no object {after}.", param="after")
            items = items[ids.index(after) + 1 :]
        data = items[:limit]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(items) > limit,
            }
        )

    async def list_containers(self, request: Request):
        with self._lock:
            items = [c for c in self.containers.values() if c["status"] != "deleted"]
        name = request.query_params.get("name")
        if name is not None:
            items = [c for c in items if c["name"] == name]
        return self._page(request, items)

    def _container(self, cid: str) -> dict[str, Any] | None:
        container = self.containers.get(cid)
        return container if container is not None and container["status"] != "deleted" else None

    def _no_container(self, cid: str) -> Response:
        return _error(404, f"Container with id '{cid}' not found.", code="not_found")

    async def retrieve_container(self, request: Request):
        cid = request.path_params["cid"]
        container = self._container(cid)
        return JSONResponse(container) if container else self._no_container(cid)

    async def delete_container(self, request: Request):
        cid = request.path_params["cid"]
        with self._lock:
            container = self._container(cid)
            if container is None:
                return self._no_container(cid)
            container["status"] = "deleted"
            for stored in self.container_files.pop(cid, {}).values():
                stored.path.unlink(missing_ok=True)
        return JSONResponse({"id": cid, "object": "container.deleted", "deleted": True})

    async def _receive_form(self, request: Request) -> _FormSink | Response:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            return _error(400, "Expected multipart/form-data.")
        form = _FormSink(self.data_dir)
        parser = MultipartParser(options[b"boundary"], callbacks=_callbacks(form))
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        return form

    def _copy_file(self, cid: str, source: StoredFile) -> dict[str, Any]:
        fid = f"cfile_{next(_ids):08d}"
        target = self.data_dir / f"up-{next(_ids):06d}"
        target.write_bytes(source.path.read_bytes())
        meta = {
            "id": fid,
            "object": "container.file",
            "created_at": next(self._clock),
            "bytes": source.meta["bytes"],
            "container_id": cid,
            "path": f"/mnt/data/{source.meta.get('filename') or source.meta['path'].rsplit('/', 1)[-1]}",
            "source": "user",
        }
        self.container_files[cid][fid] = StoredFile(meta, target, source.sha256, source.content_type)
        return meta

    async def create_container_file(self, request: Request):
        cid = request.path_params["cid"]
        if self._container(cid) is None:
            return self._no_container(cid)
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await self._json(request)
            fid = body.get("file_id") if isinstance(body, dict) else None
            with self._lock:
                if fid not in self.files:
                    return _error(404, f"No such File object: {fid}", param="file_id")
                return JSONResponse(self._copy_file(cid, self.files[fid]))
        form = await self._receive_form(request)
        if isinstance(form, Response):
            return form
        if len(form.files) != 1:
            return _error(400, "Expected exactly one file part.", param="file")
        part = form.files[0]
        fid = f"cfile_{next(_ids):08d}"
        meta = {
            "id": fid,
            "object": "container.file",
            "created_at": next(self._clock),
            "bytes": part["size"],
            "container_id": cid,
            "path": f"/mnt/data/{part['filename']}",
            "source": "user",
        }
        with self._lock:
            if cid not in self.container_files:  # deleted while uploading
                return self._no_container(cid)
            self.container_files[cid][fid] = StoredFile(
                meta, part["path"], part["sha256"], part["content_type"], part["field"]
            )
        return JSONResponse(meta)

    async def list_container_files(self, request: Request):
        cid = request.path_params["cid"]
        if self._container(cid) is None:
            return self._no_container(cid)
        return self._page(request, [f.meta for f in self.container_files[cid].values()])

    def _container_file(self, request: Request) -> StoredFile | Response:
        cid, fid = request.path_params["cid"], request.path_params["fid"]
        if self._container(cid) is None:
            return self._no_container(cid)
        stored = self.container_files[cid].get(fid)
        if stored is None:
            return _error(404, f"Container file with id '{fid}' not found.", code="not_found")
        return stored

    async def retrieve_container_file(self, request: Request):
        stored = self._container_file(request)
        return stored if isinstance(stored, Response) else JSONResponse(stored.meta)

    async def delete_container_file(self, request: Request):
        stored = self._container_file(request)
        if isinstance(stored, Response):
            return stored
        with self._lock:
            self.container_files[request.path_params["cid"]].pop(stored.meta["id"], None)
        stored.path.unlink(missing_ok=True)
        return JSONResponse({"id": stored.meta["id"], "object": "container.file.deleted", "deleted": True})

    async def container_file_content(self, request: Request):
        stored = self._container_file(request)
        return stored if isinstance(stored, Response) else _stream_file(stored)

    # Files API

    async def create_file(self, request: Request):
        form = await self._receive_form(request)
        if isinstance(form, Response):
            return form
        if len(form.files) != 1:
            return _error(400, "Expected exactly one file part.", param="file")
        part = form.files[0]
        fid = f"file-{next(_ids):08d}"
        meta = {
            "id": fid,
            "object": "file",
            "bytes": part["size"],
            "created_at": next(self._clock),
            "filename": part["filename"],
            "purpose": form.fields.get("purpose"),
        }
        with self._lock:
            self.files[fid] = StoredFile(meta, part["path"], part["sha256"], part["content_type"], part["field"])
        return JSONResponse(meta)

    async def list_files(self, request: Request):
        with self._lock:
            items = [f.meta for f in self.files.values()]
        return self._page(request, items)

    async def retrieve_file(self, request: Request):
        stored = self.files.get(request.path_params["fid"])
        return JSONResponse(stored.meta) if stored else _error(404, "No such File object.", code="not_found")

    async def delete_file(self, request: Request):
        with self._lock:
            stored = self.files.pop(request.path_params["fid"], None)
        if stored is None:
            return _error(404, "No such File object.", code="not_found")
        return JSONResponse({"id": stored.meta["id"], "object": "file", "deleted": True})

    async def file_content(self, request: Request):
        stored = self.files.get(request.path_params["fid"])
        return _stream_file(stored) if stored else _error(404, "No such File object.", code="not_found")

    # Responses API

    async def create_response(self, request: Request):
        body = await self._json(request)
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "Missing required parameter: 'model'.", param="model")
        tool = next((t for t in body.get("tools", []) if t.get("type") == "code_interpreter"), None)
        if tool is None:
            return _error(400, "This fake needs the code_interpreter tool.", param="tools")
        cid = tool["container"] if isinstance(tool["container"], str) else "cntr_auto"
        code = body["input"] if isinstance(body["input"], str) else json.dumps(body["input"])
        outputs = [
            {"type": "logs", "logs": "hello\n"},
            {"type": "logs", "logs": "world\n"},
            {"type": "image", "url": "https://example.invalid/plot.png"},
        ]
        text = "Saved the result to result.csv."
        return JSONResponse(
            {
                "id": "resp_0001",
                "object": "response",
                "created_at": next(self._clock),
                "status": "completed",
                "model": body["model"],
                "output": [
                    {
                        "id": "ci_0001",
                        "type": "code_interpreter_call",
                        "status": "completed",
                        "container_id": cid,
                        "code": code,
                        "outputs": outputs if "code_interpreter_call.outputs" in body.get("include", []) else None,
                    },
                    {
                        "id": "msg_0001",
                        "type": "message",
                        "role": "assistant",
                        "status": "completed",
                        "content": [
                            {
                                "type": "output_text",
                                "text": text,
                                "annotations": [
                                    {
                                        "type": "container_file_citation",
                                        "container_id": cid,
                                        "file_id": "cfile_result",
                                        "filename": "result.csv",
                                        "start_index": text.index("result.csv"),
                                        "end_index": text.index("result.csv") + len("result.csv"),
                                    },
                                    {"type": "url_citation", "url": "https://example.invalid", "title": "x"},
                                ],
                            }
                        ],
                    },
                ],
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        )


def _callbacks(form: _FormSink) -> dict[str, Any]:
    names = (
        "on_part_begin",
        "on_part_data",
        "on_part_end",
        "on_header_field",
        "on_header_value",
        "on_header_end",
        "on_headers_finished",
    )
    return {name: getattr(form, name) for name in names}


def _stream_file(stored: StoredFile) -> Response:
    size = stored.meta["bytes"]
    headers = {"content-length": str(size)}

    async def chunks():
        with stored.path.open("rb") as f:
            while chunk := f.read(CHUNK * 4):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


async def _drain(receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _abort(send) -> None:
    """Close the client's connection without an answer (uvicorn's transport, reached through `send`)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # wrapped: find the original through the closure
        for cell in getattr(send, "__closure__", None) or ():
            inner = cell.cell_contents
            transport = getattr(getattr(inner, "__self__", None), "transport", None)
            if transport is not None:
                break
    if transport is None:
        raise RuntimeError("can't reach the transport to drop the connection")
    transport.abort()


class FakeServer:
    """`FakeAPI` served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, data_dir: str | os.PathLike[str], token: str = TOKEN) -> None:
        self.api = FakeAPI(data_dir, token=token)
        self.token = token
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so (else +40 ms per answer)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            self.api,
            log_level="critical",
            lifespan="off",
            ws="none",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), what="the fake server to start")
        if not self._server.started:
            raise RuntimeError("the fake server did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._sock.close()

    def __getattr__(self, name: str) -> Any:  # the test controls live on the app
        return getattr(self.api, name)
