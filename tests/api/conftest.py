"""Fixtures for the `cellbox.api` tests: the mock API (an httpx `MockTransport`) for answers a server can be
told to give, the fake Containers API on loopback for what needs a socket, and clients pointed at them.

The user's own configuration never leaks in: tests/conftest.py gives every test of the suite a clean
environment. Helpers live in modules of their own (tests/api is on the pythonpath): `fakeserver`, `mockapi`,
`runboth`, `ocisigning`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from fakeserver import TOKEN, FakeServer
from mockapi import MockAPI
from runboth import FAST_RETRY, Both

from cellbox.api import AsyncClient, Client


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


@pytest.fixture(params=["sync", "async"])
def both(request: pytest.FixtureRequest, server: FakeServer) -> Iterator[Both]:
    """A client of each kind (the test runs twice) against the fake server on loopback, with fast retries."""
    runner = Both(request.param, server)
    yield runner
    runner.finish()


@pytest.fixture(params=["sync", "async"])
def mocked(request: pytest.FixtureRequest) -> Iterator[Both]:
    """A client of each kind (the test runs twice) over a fresh `MockAPI`, with fast retries."""
    runner = Both(request.param, MockAPI())
    yield runner
    runner.finish()
