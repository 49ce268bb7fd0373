"""Fixtures: one real local server (real kernels, real sandboxes) shared by the tests of a session."""

from __future__ import annotations

import contextlib

import httpx
import openai
import pytest

from cellbox.local.testing import RunningServer, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, starts_processes: None):
    # 90 s a run: writing 100k files (test_attack_scan.py) takes 20-40 s on a loaded 2-core host.
    with running_server(tmp_path_factory.mktemp("local-data"), pool_size=2, exec_timeout=90) as srv:
        yield srv


def sdk(server: RunningServer, **options) -> openai.OpenAI:
    """The official SDK against a local server, validating every answer strictly against its types."""
    return openai.OpenAI(
        base_url=server.base_url, api_key=server.token, max_retries=0, _strict_response_validation=True, **options
    )


@pytest.fixture
def client(server: RunningServer):
    with sdk(server) as c:
        yield c


# Test modules cannot import conftest (--import-mode=importlib): they get `sdk` as a fixture.
@pytest.fixture(name="sdk")
def sdk_fixture():
    return sdk


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


def _run(client: openai.OpenAI, container_id: str, code: str, include: bool = True):
    """Runs code through /v1/responses; returns (code_interpreter_call, message)."""
    response = client.responses.create(
        model="cellbox-local",
        input=code,
        tools=[{"type": "code_interpreter", "container": container_id}],
        include=["code_interpreter_call.outputs"] if include else [],
    )
    call, message = response.output
    return call, message


def _logs(call) -> str:
    return "".join(o.logs for o in call.outputs or [] if o.type == "logs")


# Helpers as fixtures: test modules cannot import conftest or each other under --import-mode=importlib.
@pytest.fixture
def run():
    return _run


@pytest.fixture
def logs():
    return _logs
