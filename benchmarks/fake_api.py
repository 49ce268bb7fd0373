"""A minimal Containers API for the `api_*` benchmarks: as fast as a server can be, so what is measured is the client.

    python benchmarks/fake_api.py          # prints its base URL, serves until stdin closes

Just what the benchmarks call: `POST/GET /v1/containers[/{id}]`, `POST /v1/containers/{id}/files` (multipart
parsed as it streams in and counted, never stored), and `GET …/files/{id}/content` (zeros of the uploaded
size, in 1 MiB blocks). Every request needs `Authorization: Bearer <TOKEN>`. Nothing here is a test fixture:
the tests have their own fakes in tests/api/.
"""

from __future__ import annotations

import itertools
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cellbox.local.testing import wait_until

TOKEN = "sk-bench-fake-0123456789"
_BLOCK = bytes(1024 * 1024)


class _Counter:
    """Multipart callbacks that only count the bytes of file parts (and note the file name)."""

    def __init__(self) -> None:
        self.size = 0
        self.filename = "upload.bin"
        self._in_file = False
        self._disposition = b""
        self._header = b""

    def on_part_begin(self) -> None:
        self._in_file = False
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition += data[start:end]

    def on_header_end(self) -> None:
        self._header = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" in options:
            self._in_file = True
            self.filename = options[b"filename"].decode()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.size += end - start

    def callbacks(self) -> dict[str, Any]:
        names = ("on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished")
        return {name: getattr(self, name) for name in (*names, "on_part_data")}


class BenchAPI:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.sizes: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/v1/containers", self.create_container, methods=["POST"]),
                Route("/v1/containers/{cid}", self.retrieve_container, methods=["GET"]),
                Route("/v1/containers/{cid}/files", self.create_file, methods=["POST"]),
                Route("/v1/containers/{cid}/files/{fid}/content", self.content, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"authorization", f"Bearer {TOKEN}".encode()) not in scope["headers"]:
            await JSONResponse({"error": {"message": "Incorrect API key provided."}}, 401)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def create_container(self, request: Request) -> Response:
        body = await request.json()
        cid = f"cntr_{next(self._ids):08d}"
        self.containers[cid] = {
            "id": cid,
            "object": "container",
            "name": body["name"],
            "status": "running",
            "created_at": int(time.time()),
            "memory_limit": body.get("memory_limit", "1g"),
        }
        return JSONResponse(self.containers[cid])

    async def retrieve_container(self, request: Request) -> Response:
        found = self.containers.get(request.path_params["cid"])
        return JSONResponse(found) if found else JSONResponse({"error": {"message": "not found"}}, 404)

    async def create_file(self, request: Request) -> Response:
        _, options = parse_options_header(request.headers.get("content-type", ""))
        counter = _Counter()
        parser = MultipartParser(options[b"boundary"], callbacks=counter.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        fid = f"cfile_{next(self._ids):08d}"
        self.sizes[fid] = counter.size
        meta = {"id": fid, "object": "container.file", "container_id": request.path_params["cid"]}
        return JSONResponse({**meta, "path": f"/mnt/data/{counter.filename}", "bytes": counter.size})

    async def content(self, request: Request) -> Response:
        size = self.sizes.get(request.path_params["fid"])
        if size is None:
            return JSONResponse({"error": {"message": "not found"}}, 404)

        async def zeros() -> AsyncIterator[bytes]:
            left = size
            while left > 0:
                yield _BLOCK[: min(left, len(_BLOCK))]
                left -= len(_BLOCK)

        headers = {"content-length": str(size)}
        return StreamingResponse(zeros(), media_type="application/octet-stream", headers=headers)


def serve() -> tuple[str, uvicorn.Server, threading.Thread]:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so (else +40 ms per answer)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(BenchAPI(), log_level="critical", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=30, what="the benchmark server to start")
    if not server.started:
        raise RuntimeError("the benchmark server did not start")
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1", server, thread


def main() -> None:
    base_url, server, thread = serve()
    print(base_url, flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin
    finally:
        server.should_exit = True
        thread.join(5)


if __name__ == "__main__":
    main()
