"""`--rate-limit N/min`: the container endpoints answer 429 past N requests a minute per API key, as OpenAI's do
(100 a minute per organisation [Doc], docs/CLOUD.md), with a Retry-After saying when there is room again, so a
client meets them in tests as it would in the cloud."""

from __future__ import annotations

import collections
import json
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the server's options parse --rate-limit with `per_minute`, and `cellbox` runs without starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

WINDOW = 60.0
_KEYS_KEPT = 1000  # API keys remembered at once (a server has one token; the bound keeps a flood of bad ones cheap)


def per_minute(text: str) -> int:
    """The number in `N/min` (or a bare N); ValueError otherwise."""
    count = text.strip().lower().removesuffix("/min").removesuffix("/m").strip()
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"expected a number of requests a minute such as 100/min, got {text!r}")
    return int(count)


class RateLimit:
    """At most `limit` requests to /v1/containers… in any minute per Authorization header; the rest get 429."""

    def __init__(self, app: ASGIApp, limit: int, window: float = WINDOW) -> None:
        self.app = app
        self.limit = limit
        self.window = window  # a minute, shortened as --seconds-per-minute shortens minutes
        self._sent: collections.OrderedDict[bytes, collections.deque[float]] = collections.OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/containers"):
            await self.app(scope, receive, send)
            return
        key = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        now = time.monotonic()
        sent = self._sent.pop(key, None) or collections.deque()
        self._sent[key] = sent
        while len(self._sent) > _KEYS_KEPT:
            self._sent.popitem(last=False)
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        if len(sent) < self.limit:
            sent.append(now)
            await self.app(scope, receive, send)
            return
        wait = max(1, math.ceil(sent[0] + self.window - now))
        message = (
            f"Rate limit reached for requests to the container endpoints: limit {self.limit} a minute, used "
            f"{len(sent)}. Please try again in {wait}s."
        )
        error = {"message": message, "type": "requests", "param": None, "code": "rate_limit_exceeded"}
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(b"retry-after", str(wait).encode()), (b"x-ratelimit-limit-requests", str(self.limit).encode())]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
