"""With nothing configured, the sidebar starts the local server itself, as a first-time user's JupyterLab does.

(Coroutine tests here are run by pytest-jupyter on the server's own loop: no asyncio mark.)"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from cellbox.common import endpoint, paths
from cellbox.local.testing import wait_until_async


@pytest.fixture
def jp_server_config(starts_processes: None) -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"cellbox.jupyter": True}}, "CellboxSidebar": {"autostart": True}}


async def test_nothing_configured_starts_the_local_server(api) -> None:
    assert endpoint.read(paths.endpoint_file()) is None
    reply = await api("POST", "containers", body={"name": "first-steps", "memory_limit": "1g"})
    running = endpoint.read(paths.endpoint_file())
    assert running is not None and running.pid is not None
    try:
        assert reply.code in (200, 201), reply.text
        listed = await api("GET", "containers")
        assert any(box["name"] == "first-steps" for box in listed.json["data"])
        status = await api("GET", "status")
        assert status.json["backend"] == "local" and running.token not in status.text
    finally:
        os.kill(running.pid, signal.SIGTERM)
    await wait_until_async(
        lambda: endpoint.read(paths.endpoint_file()) is None, timeout=30, what="the stopped server's endpoint to go"
    )
