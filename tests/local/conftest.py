"""Fixtures: one real local server (real kernels, real sandboxes) shared by the tests of a session."""

from __future__ import annotations

import contextlib

import httpx
import openai
import pytest

from cellbox.local.testing import RunningServer, isolation_available, running_server

requires_isolation = pytest.mark.skipif(not isolation_available(), reason="bubblewrap sandboxes unavailable here")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory.mktemp("local-data"), pool_size=2, exec_timeout=30) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer):
    with openai.OpenAI(base_url=server.base_url, api_key=server.token, max_retries=0) as c:
        yield c


@pytest.fixture
def http(server: RunningServer):
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as c:
        yield c


@pytest.fixture
def container(client: openai.OpenAI):
    created = client.containers.create(name="test")
    yield created
    with contextlib.suppress(openai.NotFoundError):
        client.containers.delete(created.id)
