"""What cellbox's own HTTP client keeps between requests: no cookies (the API authenticates each request by its
key or signature), whatever a server or a proxy in front of it sets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from cellbox.api import AsyncClient, Client

CONTAINER = {"id": "cntr_1", "object": "container", "name": "c", "status": "running"}


@pytest.fixture
def cookie_setter() -> Iterator[tuple[str, list[str | None]]]:
    """A server answering every GET with a container and a cookie; the Cookie header of each request it got."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Cookie"))
            body = json.dumps(CONTAINER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "__cf_bm=tracker; Path=/; HttpOnly")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()
    server.server_close()


def test_a_cookie_a_server_sets_is_never_sent_back(cookie_setter: tuple[str, list[str | None]]) -> None:
    base_url, seen = cookie_setter
    with Client(base_url=base_url, api_key="k") as client:
        for _ in range(2):
            assert client.containers.retrieve("cntr_1").id == "cntr_1"
        assert len(client._http.cookies) == 0
    assert seen == [None, None]


def test_the_async_client_keeps_none_either(cookie_setter: tuple[str, list[str | None]]) -> None:
    base_url, seen = cookie_setter

    async def main() -> None:
        async with AsyncClient(base_url=base_url, api_key="k") as client:
            for _ in range(2):
                assert (await client.containers.retrieve("cntr_1")).id == "cntr_1"

    anyio.run(main)
    assert seen == [None, None]
