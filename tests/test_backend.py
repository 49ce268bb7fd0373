"""With nothing configured, cellbox starts the local server itself, and later sessions reuse it."""

from __future__ import annotations

import json
import os
import signal

import cellbox
from cellbox import paths
from cellbox.backend import connect, model_for
from cellbox.local.testing import wait_until


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
