"""Fixtures for the `cellbox.api` tests: a real fake Containers API on loopback, and clients pointed at it.

The user's own configuration never leaks in: tests/conftest.py gives every test of the suite a clean
environment.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(0, os.path.dirname(__file__))

from fakeserver import TOKEN, FakeServer

from cellbox.api import AsyncClient, Client, RetryPolicy

FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="session")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("fakeserver")).start()
    yield server
    server.stop()


@pytest.fixture
def server(fake_server: FakeServer) -> FakeServer:
    """The session's fake server, emptied of containers, files, faults and log."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def client(server: FakeServer) -> Iterator[Client]:
    with Client(base_url=server.base_url, api_key=TOKEN, max_retries=2) as c:
        c.retry = FAST_RETRY
        yield c


@pytest_asyncio.fixture
async def aclient(server: FakeServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url=server.base_url, api_key=TOKEN, max_retries=2) as c:
        c.retry = FAST_RETRY
        yield c


class Both:
    """Runs a call on a sync or an async client alike: `both(lambda c: c.containers.retrieve(cid))`.

    Awaitables are awaited and iterators (sync or async) collected into lists, on a private event loop.
    """

    def __init__(self, kind: str, server: FakeServer, **options: Any) -> None:
        self.kind = kind
        self.server = server
        self._loop = asyncio.new_event_loop() if kind == "async" else None
        self.client = self.make(**options)

    def make(self, **options: Any) -> Client | AsyncClient:
        options.setdefault("base_url", self.server.base_url)
        options.setdefault("api_key", TOKEN)
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


@pytest.fixture(params=["sync", "async"])
def both(request: pytest.FixtureRequest, server: FakeServer) -> Iterator[Both]:
    """A client of each kind (the test runs twice) against the fake server, with fast retries."""
    runner = Both(request.param, server)
    yield runner
    runner.finish()
