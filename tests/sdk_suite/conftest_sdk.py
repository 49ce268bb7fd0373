"""The conftest under which the openai SDK's own resource tests run against a real local server.

tests/local/test_local_sdk_suite.py copies this file in as `tests/conftest.py` next to the SDK's test files
(taken from the sdist of the installed openai at test time), in place of the SDK's own conftest, which points
its clients at a Prism mock. Here:

- one real local server runs for the session, its data in the session's temp dir;
- `client` and `async_client` are the fixtures the SDK's tests expect (same names, same parameters), always
  validating answers strictly; the `loose` variants are deselected, since they would send the same requests
  and validate less;
- the placeholder ids in the paths the SDK's tests request (`container_id`, `file_id`, `resp_…`,
  `response_id`) are rewritten to real ids, so every request reaches a real container, file or stored response;
- the tests that mock the HTTP layer with respx2 (container file content) get an inert router instead, so
  they read a real file's bytes from the server;
- each test's outcome is written as JSON to $CELLBOX_SDK_SUITE_REPORT, for the runner to compare with its list
  of expected failures.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpx2Client, DefaultHttpx2Client, OpenAI

from cellbox.local.testing import RunningServer, running_server

# Its failed assertions explain themselves (as under the SDK's own conftest).
pytest.register_assert_rewrite("tests.utils")

# What the content tests' respx2 mock would have answered: the file a `file_id` placeholder stands for holds
# exactly these bytes, so their `content.json() == {"foo": "bar"}` holds against the real server too.
FILE_BYTES = b'{"foo": "bar"}'
# A response id shaped like OpenAI's examples (`resp_` + 32 hex) cannot be one this server issued (48 hex).
RESPONSE_PLACEHOLDER = re.compile(r"resp_[0-9a-f]{32}|response_id")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "respx2(**kwargs): the SDK's HTTP mock, inert here")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # As under the SDK's conftest, async tests run in the session's event loop, where the async clients live.
    session_loop = pytest.mark.asyncio(loop_scope="session")
    kept, loose = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if params.get("client") is False or params.get("async_client") is False:
            loose.append(item)
            continue
        if inspect.iscoroutinefunction(getattr(item, "obj", None)):
            item.add_marker(session_loop, append=False)
        kept.append(item)
    if loose:
        config.hook.pytest_deselected(items=loose)
        items[:] = kept


# -- the server and the ids that stand for the placeholders -----------------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("local-data"), pool_size=2, exec_timeout=30) as srv:
        yield srv


class Placeholders:
    """Real ids for the placeholders, made on first use through a client of their own (so making them never
    passes through the rewriting hook).

    What a request may destroy (the target of a DELETE) is made for that request; everything else is shared by
    the session, since starting a container's kernel is what takes time here."""

    def __init__(self, server: RunningServer) -> None:
        self.http = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60)
        self.shared: dict[str, str] = {}
        self.files_made = 0

    def container(self, fresh: bool = False) -> str:
        if fresh or "container" not in self.shared:
            made = self._json(self.http.post("/containers", json={"name": "sdk-suite"}))["id"]
            if fresh:
                return made
            self.shared["container"] = made
        return self.shared["container"]

    def container_file(self, fresh: bool = False) -> str:
        if fresh or "file" not in self.shared:
            # Writing a path anew makes a new file (the old id is gone): each file gets a path of its own.
            self.files_made += 1
            upload = {"file": (f"data-{self.files_made}.json", FILE_BYTES)}
            made = self._json(self.http.post(f"/containers/{self.container()}/files", files=upload))["id"]
            if fresh:
                return made
            self.shared["file"] = made
        return self.shared["file"]

    def response(self, fresh: bool = False) -> str:
        """A stored response of a real run, made in the background: only those can be cancelled or streamed
        again, and a finished one answers everything else as a synchronous one does."""
        if fresh or "response" not in self.shared:
            body = {
                "model": "cellbox-local",
                "input": "print('sdk suite')",
                "tools": [{"type": "code_interpreter", "container": self.container()}],
                "background": True,
            }
            made = self._json(self.http.post("/responses", json=body))["id"]
            deadline = time.monotonic() + 30
            while self._json(self.http.get(f"/responses/{made}"))["status"] in ("queued", "in_progress"):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the response {made} standing for a placeholder did not finish")
                time.sleep(0.02)
            if fresh:
                return made
            self.shared["response"] = made
        return self.shared["response"]

    def rewrite(self, method: str, path: str) -> str:
        segments = path.split("/")
        for i, segment in enumerate(segments):
            before = segments[i - 1] if i else ""
            fresh = method == "DELETE" and i == len(segments) - 1  # what a DELETE deletes
            if segment == "container_id" and before == "containers":
                segments[i] = self.container(fresh)
            elif segment == "file_id" and before == "files" and "containers" in segments[:i]:
                segments[i] = self.container_file(fresh)
            elif before == "responses" and RESPONSE_PLACEHOLDER.fullmatch(segment):
                segments[i] = self.response(fresh)
        return "/".join(segments)

    def sweep(self) -> None:
        """Deletes the containers the tests made (all but the shared one), so their kernels don't pile up."""
        listed = self._json(self.http.get("/containers", params={"limit": 100}))["data"]
        for container in listed:
            if container["id"] != self.shared.get("container") and container["status"] == "running":
                self.http.delete(f"/containers/{container['id']}")

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.is_error:
            raise AssertionError(f"making a real id failed: {response.status_code} {response.text}")
        return response.json()


# The clients' hooks are plain functions: they find the session's placeholders here.
_placeholders: Placeholders | None = None


@pytest.fixture(scope="session")
def placeholders(server: RunningServer) -> Iterator[Placeholders]:
    global _placeholders
    _placeholders = Placeholders(server)
    try:
        yield _placeholders
    finally:
        _placeholders.http.close()
        _placeholders = None


@pytest.fixture(autouse=True)
def _sweep(placeholders: Placeholders) -> Iterator[None]:
    yield
    placeholders.sweep()


def _rewrite(request: Any) -> None:
    if _placeholders is not None:
        path = request.url.path
        rewritten = _placeholders.rewrite(request.method, path)
        if rewritten != path:
            request.url = request.url.copy_with(path=rewritten)


async def _rewrite_async(request: Any) -> None:
    # Blocking is fine here: the server runs in another process, and the test waits for this request anyway.
    _rewrite(request)


# -- the clients the SDK's tests take -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def client(request: pytest.FixtureRequest, server: RunningServer) -> Iterator[OpenAI]:
    param = getattr(request, "param", True)
    if param is not True:
        raise TypeError(f"only the strict client runs here, got the parameter {param!r}")
    http_client = DefaultHttpx2Client(event_hooks={"request": [_rewrite]})
    with OpenAI(
        base_url=server.base_url,
        api_key=server.token,
        max_retries=0,
        _strict_response_validation=True,
        http_client=http_client,
    ) as c:
        yield c


@pytest.fixture(scope="session")
async def async_client(request: pytest.FixtureRequest, server: RunningServer) -> AsyncIterator[AsyncOpenAI]:
    param = getattr(request, "param", True)
    if param is True:
        http_client = DefaultAsyncHttpx2Client(event_hooks={"request": [_rewrite_async]})
    elif param == {"http_client": "aiohttp"}:
        http_client = DefaultAioHttpClient(event_hooks={"request": [_rewrite_async]})
    else:
        raise TypeError(f"only strict clients run here, got the parameter {param!r}")
    async with AsyncOpenAI(
        base_url=server.base_url,
        api_key=server.token,
        max_retries=0,
        _strict_response_validation=True,
        http_client=http_client,
    ) as c:
        yield c


class _InertRouter:
    """Takes the routes a test declares on respx2's router (`.get(path).mock(return_value=...)`) and does
    nothing with them: the request goes to the server."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


@pytest.fixture
def respx2_mock() -> _InertRouter:
    return _InertRouter()


# -- outcomes for the runner ------------------------------------------------------------------------------------

_outcomes: dict[str, dict[str, str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _outcomes.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if report.failed:
        # A failure outside the test's body (making a real id, a fixture) is an error, never an expected failure.
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["message"] = entry["message"] or _error_line(report.longreprtext)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["message"] = str(report.longrepr)


def _error_line(text: str) -> str:
    """The raised error's line (`E   openai.BadRequestError: ...`), else the report's first line."""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (errors or lines or [""])[0][:500]


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("CELLBOX_SDK_SUITE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_outcomes, f, indent=1)
