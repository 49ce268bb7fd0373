"""With nothing configured, the sidebar starts the local server itself, as a first-time user's JupyterLab does.

(Coroutine tests here are run by pytest-jupyter on the server's own loop: no asyncio mark.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
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


async def test_cellbox_stop_stays_stopped_until_the_user_starts_it_again(api) -> None:
    """`cellbox stop` with JupyterLab open: the sidebar's refreshes don't start another server; it says the server
    is stopped, and its Start starts one, which shows the container whose Python state went with the old one."""
    created = await api("POST", "containers", body={"name": "before-stop"})
    assert created.code == 201, created.text
    first = endpoint.read(paths.endpoint_file())
    assert first is not None and first.pid is not None
    try:
        stop = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "cellbox", "stop"], capture_output=True, text=True, timeout=60
        )
        assert stop.returncode == 0 and "stopped the local server" in stop.stdout, stop.stderr
        for _ in range(3):  # refreshes, as the panel makes them every few seconds
            listed = await api("GET", "containers")
            assert listed.code == 200 and listed.json["stopped"] is True and listed.json["data"] == []
            await asyncio.sleep(0.5)
        assert endpoint.read(paths.endpoint_file()) is None  # nothing started one
        status = await api("GET", "status")
        assert status.json["stopped"] is True and status.json["backend"] == "local"
        refused = await api("POST", "containers", body={"name": "while-stopped"})
        assert refused.code == 503 and "stopped (`cellbox stop`)" in refused.json["message"]
        assert endpoint.read(paths.endpoint_file()) is None

        started = await api("POST", "server")
        assert started.code == 200 and started.json["stopped"] is False, started.text
        second = endpoint.read(paths.endpoint_file())
        assert second is not None and second.pid not in (None, first.pid)
        listed = await api("GET", "containers")
        [box] = [b for b in listed.json["data"] if b["name"] == "before-stop"]
        assert box["status"] == "running" and box["state_lost"] == "the server restarted since its last run"
        assert "stopped" not in listed.json
    finally:
        running = endpoint.read(paths.endpoint_file())
        if running is not None and running.pid is not None:
            os.kill(running.pid, signal.SIGTERM)
    await wait_until_async(
        lambda: endpoint.read(paths.endpoint_file()) is None, timeout=30, what="the stopped server's endpoint to go"
    )
