"""ASGI middleware: request ids, bearer-token auth on every request, and injected latency and faults for tests
and benchmarks."""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BearerAuth:
    """401 in the OpenAI shape unless `Authorization: Bearer <token>` matches (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        if given:
            message, code = "Incorrect API key provided.", "invalid_api_key"
        else:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            code = None
        body = json.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="cellbox"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Latency:
    """Holds back the start of every response by a fixed delay."""

    def __init__(self, app: ASGIApp, delay_ms: float) -> None:
        self.app = app
        self.delay = delay_ms / 1000.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.delay <= 0:
            await self.app(scope, receive, send)
            return

        async def delayed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, delayed_send)


class RequestId:
    """`x-request-id` on every response, as the cloud sends it (clients show it in their errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class Faults:
    """Answers a share of requests with a retryable 503, as an overloaded cloud does, before they do anything."""

    def __init__(self, app: ASGIApp, rate: float) -> None:
        self.app = app
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or random.random() >= self.rate:
            await self.app(scope, receive, send)
            return
        error = {"message": "Injected fault (--error-rate).", "type": "server_error", "param": None}
        body = json.dumps({"error": {**error, "code": "injected_fault"}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"retry-after", b"0")]})
        await send({"type": "http.response.body", "body": body})
