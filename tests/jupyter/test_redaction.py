"""A backend (or a proxy in front of it) that echoes the request's credentials in its errors: the sidebar's JSON
answers and the Jupyter log never repeat them. Against a real jupyter_server and a careless proxy on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from echoproxy import SHAPES, EchoProxy, leaks

KEY = "sk-proj-Hq2vT0xLmN4pQ7rS2uV9wXyA3bC5dE6f"
PLAIN_KEY = "sidebar0token0abcdef0123456789"  # shaped like no known key: only knowing the configured one helps


@pytest.fixture
def logs(jp_serverapp: Any, caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the server (its own logger may not propagate to the root) from INFO up: what a
    server's log holds unless a library's wire-level tracing (httpcore's DEBUG) is turned on."""
    caplog.set_level(logging.INFO)
    jp_serverapp.log.addHandler(caplog.handler)
    yield caplog
    jp_serverapp.log.removeHandler(caplog.handler)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("status", "answer"), [(401, 502), (403, 502), (404, 404), (500, 502)])
@pytest.mark.parametrize("key", [KEY, PLAIN_KEY])
async def test_the_browser_and_the_log_never_see_an_echoed_key(
    api, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, shape: str, status: int, answer: int, key: str
) -> None:
    with EchoProxy(status=status, shape=shape) as proxy:
        monkeypatch.setenv("CELLBOX_BASE_URL", proxy.base_url)
        monkeypatch.setenv("CELLBOX_API_KEY", key)
        reply = await api("DELETE", "containers", "cntr_abc")
    assert proxy.seen and all(seen == f"Bearer {key}" for seen in proxy.seen)  # the key was sent, and echoed
    assert reply.code == answer, reply.text
    assert reply.json["upstream_status"] == status
    assert "[redacted]" in reply.json["message"]
    assert list(leaks(reply.text, key)) == []
    logged = "\n".join(record.getMessage() for record in logs.records)
    assert "cellbox: DELETE" in logged  # the failure was logged, on one line
    assert list(leaks(logged, key)) == []


async def test_each_request_of_a_session_is_filtered(
    api, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EchoProxy(status=400, shape="text") as proxy:
        monkeypatch.setenv("CELLBOX_BASE_URL", proxy.base_url)
        monkeypatch.setenv("CELLBOX_API_KEY", PLAIN_KEY)
        replies = [
            await api("GET", "containers"),
            await api("POST", "containers", body={"name": "x"}),
            await api("GET", "containers", "cntr_abc", "files"),
        ]
    for reply in replies:
        assert reply.code == 400 and list(leaks(reply.text, PLAIN_KEY)) == []
    assert list(leaks("\n".join(r.getMessage() for r in logs.records), PLAIN_KEY)) == []
