"""Injected latency and faults, for tests and benchmarks: `--latency-ms N` holds back every answer, `--error-rate R`
answers that share of authenticated requests with a retryable 503 (code `injected_fault`, `Retry-After: 0`) before
they do anything, as a distant or overloaded cloud does."""

from __future__ import annotations

import asyncio
import json
import random

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
