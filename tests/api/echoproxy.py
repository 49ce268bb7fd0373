"""A careless proxy on loopback: every request is answered with an error that echoes its credentials back.

    with EchoProxy(status=401, shape="json") as proxy:
        settings = Settings(base_url=proxy.base_url, api_key="sk-proj-…")

The error body repeats the `Authorization` header and the bare key in the places a real proxy or gateway puts
them: the message, the error's `code`, the `x-request-id` header, an HTML page's title, a plain-text body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SHAPES = ("json", "oci", "html", "text")


class EchoProxy:
    def __init__(self, status: int = 401, shape: str = "json") -> None:
        assert shape in SHAPES
        self.status = status
        self.shape = shape
        self.seen: list[str] = []  # the Authorization headers received
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                header = self.headers.get("authorization") or ""
                proxy.seen.append(header)
                body, content_type = proxy.body(header)
                self.send_response(proxy.status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("x-request-id", f"req-{header.partition(' ')[2]}")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def body(self, header: str) -> tuple[bytes, str]:
        key = header.partition(" ")[2]
        headers = {"authorization": header}
        said = f"upstream rejected the request with Authorization: {header} (key {key!r}, headers {headers})"
        if self.shape == "json":
            error = {"message": said, "type": "invalid_request_error", "code": key, "param": header}
            return json.dumps({"error": error}).encode(), "application/json"
        if self.shape == "oci":
            return json.dumps({"code": "NotAuthenticated", "message": said}).encode(), "application/json"
        if self.shape == "html":
            page = f"<html><head><title>{self.status} {header}</title></head><body>{said}</body></html>"
            return page.encode(), "text/html"
        return said.encode(), "text/plain"

    def __enter__(self) -> EchoProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def leaks(text: str, key: str) -> Iterator[str]:
    """The pieces of `key` (whole, or a long part of it) found in `text`."""
    if key in text:
        yield key
    for piece in (key[: len(key) // 2], key[len(key) // 2 :]):
        if len(piece) >= 8 and piece in text:
            yield piece
