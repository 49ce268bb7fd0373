"""Fixtures for the sidebar's server extension: a real jupyter_server (pytest-jupyter's `jp_fetch`) with the
cellbox extension enabled, talking to the suite's real local server.

pytest-jupyter ships no pytest entry point; its fixtures and its hooks for coroutine tests are imported here so
they apply to this folder only (pytest-asyncio stays strict for the rest of the suite).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPResponse

from cellbox.local.testing import RunningServer

if TYPE_CHECKING:
    from browserhelp import Lab

Call = Callable[..., Awaitable["Reply"]]


@pytest.fixture
def jp_server_config(starts_processes: None) -> dict[str, Any]:
    """A Jupyter server, started in this process by pytest-jupyter's `jp_serverapp`, with the cellbox extension."""
    return {
        "ServerApp": {"jpserver_extensions": {"cellbox.jupyter": True}},
        # Never start a detached local server from a test: a backend is always configured explicitly.
        "CellboxSidebar": {"autostart": False},
    }


@pytest.fixture
def workspace(jp_root_dir: Path) -> Path:
    return jp_root_dir


@dataclass
class Reply:
    code: int
    json: Any
    text: str


@pytest.fixture
def api(jp_fetch: Any) -> Call:
    """`await api("GET", "containers")`: a call to /cellbox/api/…, a JSON body in, a `Reply` whatever the status."""

    async def call(method: str, *path: str, body: Any = None, **kwargs: Any) -> Reply:
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        response: HTTPResponse = await jp_fetch("cellbox", "api", *path, method=method, raise_error=False, **kwargs)
        text = response.body.decode() if response.body else ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        return Reply(response.code, data, text)

    return call


@pytest.fixture
def backend(use_local_server: RunningServer) -> RunningServer:
    """The suite's local server, configured through the environment as a user would."""
    return use_local_server


# The browser tests' fixtures. `browserhelp` is imported here only when a test asks for one: the browser test
# modules import it themselves first, which skips them when Chromium is missing, so the other tests never need it.


@pytest.fixture
def lab(use_local_server: RunningServer, tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab configured for the suite's local server as a user would, kernels included (they run code with
    the model the local server answers as)."""
    import browserhelp

    server = use_local_server
    with browserhelp.running_lab(tmp_path, server.base_url, server.token, model=os.environ["CELLBOX_MODEL"]) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path, starts_processes: None) -> Iterator[Any]:
    """A headless Chromium page."""
    import browserhelp

    with browserhelp.browser_page(tmp_path) as opened:
        yield opened
