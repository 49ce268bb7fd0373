"""With nothing configured, cellbox starts the local server itself, and later sessions reuse it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import cellbox
from cellbox import paths
from cellbox.backend import connect, model_for
from cellbox.local.testing import isolation_available, wait_until


def test_nothing_configured_starts_the_local_server_once() -> None:
    assert not paths.endpoint_file().exists()
    sandbox = cellbox.Sandbox.create(name="autostarted")
    info = json.loads(paths.endpoint_file().read_text())
    try:
        assert sandbox.client.base_url == info["base_url"] and sandbox.model == "cellbox-local"
        assert sandbox.run("6 * 7").value == 42
        with connect() as again:  # a second session finds the running server instead of starting another
            assert again.base_url == info["base_url"]
            assert model_for(again.settings) == "cellbox-local"
            assert any(box.id == sandbox.id for box in again.containers.list())
        sandbox.delete()
    finally:
        os.kill(info["pid"], signal.SIGTERM)
    wait_until(lambda: not paths.endpoint_file().exists(), timeout=30, what="the stopped server's endpoint file to go")


def test_a_client_follows_the_local_server_when_it_restarts(tmp_path) -> None:
    """`cellbox stop`, then any use: the client reads the endpoint file again, starts a server when none runs, and
    sends the request once more. The container and its files outlive the restart; its Python state does not."""
    sandbox = cellbox.Sandbox.create(name="restarted")
    first = json.loads(paths.endpoint_file().read_text())
    try:
        assert sandbox.run("x = 41").error is None
        os.kill(first["pid"], signal.SIGTERM)
        wait_until(lambda: not paths.endpoint_file().exists(), timeout=30, what="the server to stop")
        run = sandbox.run("6 * 7")  # no server at all: one is started, and found
        assert run.value == 42
        second = json.loads(paths.endpoint_file().read_text())
        assert second["pid"] != first["pid"] and sandbox.client.base_url == second["base_url"]
        assert sandbox.run("x").error is not None  # the state was reset (the server says so in the run's logs)
        sandbox.delete()
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(json.loads(paths.endpoint_file().read_text())["pid"], signal.SIGTERM)
        wait_until(lambda: not paths.endpoint_file().exists(), timeout=30, what="the endpoint file to go")


def test_a_second_server_refuses_to_take_over_the_endpoint_file(tmp_path) -> None:
    endpoint_file = tmp_path / "server.json"
    argv = [sys.executable, "-m", "cellbox.local", "--port", "0", "--endpoint-file", str(endpoint_file)]
    if not isolation_available():
        argv.append("--unsafe-no-isolation")
    first = subprocess.Popen([*argv, "--data-dir", str(tmp_path / "one")], stderr=subprocess.DEVNULL)
    try:
        wait_until(endpoint_file.exists, timeout=30, what="the first server's endpoint file")
        written = endpoint_file.read_text()
        second = subprocess.run(
            [*argv, "--data-dir", str(tmp_path / "two")], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"another local server (pid {first.pid}) is running at" in second.stderr
        assert "cellbox stop" in second.stderr
        assert endpoint_file.read_text() == written  # still the first one's: clients keep finding it
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert not endpoint_file.exists()
