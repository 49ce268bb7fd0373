"""Fixtures for the whole suite: a clean configuration for every test, and one real local server per session
for the tests of the layers above `cellbox.api` (CLI, sandboxes, magics)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.local.testing import RunningServer, running_server


@pytest.fixture(autouse=True)
def clean_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CELLBOX_* / OCI_* variables, and config and state in empty tmp dirs: the user's files never leak in."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("CELLBOX_", "OCI_")) or name == "XDG_STATE_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("CELLBOX_STATE_DIR", str(home / "state"))
    return home


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("local-server"), pool_size=2, exec_timeout=60) as server:
        yield server


@pytest.fixture
def use_local_server(local_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """Configure cellbox (through the environment, as a user would) to use the session's local server."""
    monkeypatch.setenv("CELLBOX_BASE_URL", local_server.base_url)
    monkeypatch.setenv("CELLBOX_API_KEY", local_server.token)
    monkeypatch.setenv("CELLBOX_MODEL", "cellbox-local")
    return local_server
