"""`Both`: one test body for the sync and the async client, against the fake server or the mock API."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from typing import Any

from cellbox.api import AsyncClient, Client, RetryPolicy

__all__ = ["FAST_RETRY", "Both"]

FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.05)


class Both:
    """Runs a call on a sync or an async client alike: `both(lambda c: c.containers.retrieve(cid))`.

    Awaitables are awaited, iterators (sync or async) collected into lists, and streams (context managers)
    entered and read, on a private event loop. `server` is the `FakeServer` (real sockets) or the `MockAPI`
    (an httpx `MockTransport`, whose clients get its `http_client`).
    """

    def __init__(self, kind: str, server: Any, **options: Any) -> None:
        self.kind = kind
        self.server = server
        self._loop = asyncio.new_event_loop() if kind == "async" else None
        self.client = self.make(**options)

    def make(self, **options: Any) -> Client | AsyncClient:
        options.setdefault("api_key", self.server.token)
        if "base_url" not in options and hasattr(self.server, "http_client"):
            options["http_client"] = self.server.http_client(self.kind)
        options.setdefault("base_url", self.server.base_url)
        retry = options.pop("retry", FAST_RETRY)
        cls = AsyncClient if self.kind == "async" else Client
        made = cls(**options)
        if retry is not None:
            made.retry = retry
        return made

    def __call__(self, call: Callable[[Any], Any], client: Client | AsyncClient | None = None) -> Any:
        result = call(client or self.client)
        if inspect.isawaitable(result):
            return self._run(result)
        if hasattr(result, "__aenter__"):
            return self._run(_read_async(result))
        if hasattr(result, "__enter__") and not isinstance(result, os.PathLike):  # a Path is one, deprecated
            with result as body:
                return body.read()
        if hasattr(result, "__aiter__"):
            return self._run(_collect(result))
        if inspect.isgenerator(result):
            return list(result)
        return result

    def _run(self, awaitable: Any) -> Any:
        assert self._loop is not None
        return self._loop.run_until_complete(awaitable)

    def close(self, client: Client | AsyncClient | None = None) -> None:
        target = client or self.client
        if isinstance(target, AsyncClient):
            self._run(target.aclose())
        else:
            target.close()

    def finish(self) -> None:
        self.close()
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()


async def _collect(items: Any) -> list[Any]:
    return [item async for item in items]


async def _read_async(stream: Any) -> bytes:
    async with stream as body:
        return await body.read()
