"""The Containers API behind an httpx `MockTransport`: scripted answers, no sockets.

    api = MockAPI()
    api.fail("/v1/containers/*", status=503, headers={"Retry-After": "1"}, times=2)
    api.html("/v1/containers", status=502)                 # a proxy's error page
    api.malformed("/v1/containers/*", body=b'{"id": ')     # 200 with a body that is not the API's JSON
    with api.client() as client: ...                       # a cellbox Client whose requests end here
    api.count("GET", "/v1/containers/*")                   # attempts seen

For the faults a server can say on demand: a status with any body and headers, an HTML page, malformed JSON.
Faults that need a socket (a dropped connection, a timeout, half a body) are `fakeserver.py`'s.

Faults are queued per path pattern (fnmatch) and consumed in order, one per matching request. A request no
fault matches gets what the API would answer, from a small in-memory store of containers and their files.
Every answer carries `x-request-id: req_NNNN` unless `request_ids` is turned off.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
from collections.abc import Callable, Generator
from typing import Any

import httpx

from cellbox.api import AsyncClient, Client
from cellbox.api.base import Outcome, Sleep, Step

__all__ = ["BASE_URL", "TOKEN", "Driven", "MockAPI", "Seen", "drive"]

BASE_URL = "http://api.test/v1"
TOKEN = "sk-test-mock-0123456789"
HTML_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>nginx</body></html>"


@dataclasses.dataclass
class _Fault:
    pattern: str
    method: str | None
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(path, self.pattern)


@dataclasses.dataclass
class Seen:
    """A request as it reached the transport."""

    method: str
    path: str
    raw_path: str
    query: str
    headers: httpx.Headers
    body: bytes
    fault: bool


def _error(status: int, message: str, code: str | None = None) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return httpx.Response(status, json=body)


class MockAPI:
    """Scripted faults over a minimal, faithful Containers API; see the module docstring."""

    base_url = BASE_URL
    token = TOKEN

    def __init__(self) -> None:
        self.faults: list[_Fault] = []
        self.log: list[Seen] = []
        self.containers: dict[str, dict[str, Any]] = {}
        self.request_ids = True
        self._ids = itertools.count(1)

    # --- scripting ----------------------------------------------------------------------------------------------

    def fail(
        self,
        pattern: str,
        status: int = 500,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """The next `times` requests matching `pattern` answer `status` with `body` (JSON unless bytes or str)."""
        headers = dict(headers or {})
        if isinstance(body, (bytes, str)):
            content_type = headers.pop("content-type", "text/plain")
            content = body.encode() if isinstance(body, str) else body
        else:
            default = {"error": {"message": f"scripted {status}", "type": "server_error", "param": None}}
            content_type, content = "application/json", json.dumps(default if body is None else body).encode()
        self._queue(_Fault(pattern, method, status, content_type, content, headers), times)

    def html(self, pattern: str, status: int = 502, *, times: int = 1, method: str | None = None) -> None:
        """Answer an HTML page, as a proxy or gateway in front of the API would."""
        self._queue(_Fault(pattern, method, status, "text/html; charset=utf-8", HTML_PAGE.encode(), {}), times)

    def malformed(
        self, pattern: str, *, times: int = 1, method: str | None = None, body: bytes = b'{"id": "cntr_x", "name": '
    ) -> None:
        """Answer 200 with a body that is not valid JSON (or not the expected shape)."""
        self._queue(_Fault(pattern, method, 200, "application/json", body, {}), times)

    def _queue(self, fault: _Fault, times: int) -> None:
        self.faults.extend(dataclasses.replace(fault) for _ in range(times))

    def add_container(self, name: str, **fields: Any) -> dict[str, Any]:
        """A container made directly (no request)."""
        cid = f"cntr_{next(self._ids):06d}"
        self.containers[cid] = {"id": cid, "object": "container", "name": name, "status": "running", **fields}
        return self.containers[cid]

    # --- what was seen ------------------------------------------------------------------------------------------

    def requests(self, method: str | None = None, pattern: str = "*") -> list[Seen]:
        return [s for s in self.log if (method is None or s.method == method) and fnmatch.fnmatchcase(s.path, pattern)]

    def count(self, method: str | None = None, pattern: str = "*") -> int:
        """How many requests (attempts) matching method and path pattern arrived."""
        return len(self.requests(method, pattern))

    # --- clients ------------------------------------------------------------------------------------------------

    def http_client(self, kind: str = "sync") -> httpx.Client | httpx.AsyncClient:
        transport = httpx.MockTransport(self.handle)
        return httpx.AsyncClient(transport=transport) if kind == "async" else httpx.Client(transport=transport)

    def client(self, **options: Any) -> Client:
        options.setdefault("base_url", BASE_URL)
        options.setdefault("api_key", TOKEN)
        return Client(http_client=self.http_client("sync"), **options)

    def async_client(self, **options: Any) -> AsyncClient:
        options.setdefault("base_url", BASE_URL)
        options.setdefault("api_key", TOKEN)
        return AsyncClient(http_client=self.http_client("async"), **options)

    # --- the transport's handler --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        fault = next((f for f in self.faults if f.matches(method, path)), None)
        if fault is not None:
            self.faults.remove(fault)
        raw_path = request.url.raw_path.decode("ascii")
        self.log.append(
            Seen(
                method,
                path,
                raw_path.split("?")[0],
                request.url.query.decode(),
                request.headers,
                request.content,
                bool(fault),
            )
        )
        if fault is not None:
            headers = {"content-type": fault.content_type, **fault.headers}
            response = httpx.Response(fault.status, headers=headers, content=fault.body)
        elif request.headers.get("authorization") != f"Bearer {TOKEN}":
            response = _error(401, "Incorrect API key provided.", code="invalid_api_key")
        else:
            response = self._answer(method, path.removeprefix("/v1").strip("/").split("/"), request)
        if self.request_ids and "x-request-id" not in response.headers:
            response.headers["x-request-id"] = f"req_{len(self.log):04d}"
        return response

    def _answer(self, method: str, parts: list[str], request: httpx.Request) -> httpx.Response:
        if parts[0] != "containers":
            return _error(404, f"no route {request.url.path}")
        if len(parts) == 1:
            if method == "POST":
                return httpx.Response(200, json=self.add_container(json.loads(request.content)["name"]))
            data = list(self.containers.values())
            return httpx.Response(200, json={"object": "list", "data": data, "has_more": False})
        container = self.containers.get(parts[1])
        if container is None:
            return _error(404, f"Container with id '{parts[1]}' not found.", code="not_found")
        if len(parts) == 2:
            if method == "DELETE":
                del self.containers[parts[1]]
                return httpx.Response(200, json={"id": parts[1], "object": "container.deleted", "deleted": True})
            return httpx.Response(200, json=container)
        if parts[2:] == ["files"] and method == "POST":
            made = {"id": f"cfile_{next(self._ids):06d}", "object": "container.file", "container_id": parts[1]}
            return httpx.Response(200, json={**made, "bytes": len(request.content), "source": "user"})
        return _error(404, f"no route {request.url.path}")


@dataclasses.dataclass
class Driven:
    """What a flow did: every step it yielded (requests and sleeps, in order), and its result or error."""

    steps: list[Step]
    value: Any = None
    error: Exception | None = None

    @property
    def sleeps(self) -> list[float]:
        return [step.seconds for step in self.steps if isinstance(step, Sleep)]

    @property
    def attempts(self) -> int:
        return sum(isinstance(step, httpx.Request) for step in self.steps)


def drive(
    flow: Generator[Step, Outcome, Any], answer: Callable[[httpx.Request], httpx.Response | httpx.TransportError]
) -> Driven:
    """Run a client's `flow` by hand, with `answer` standing in for the network and nothing slept."""
    driven = Driven([])
    outcome: Outcome = None
    try:
        while True:
            step = flow.send(outcome)
            driven.steps.append(step)
            if isinstance(step, Sleep):
                outcome = None
                continue
            answered = answer(step)
            if isinstance(answered, httpx.Response):
                answered.request = step
            outcome = answered
    except StopIteration as done:
        driven.value = done.value
    except Exception as exc:
        driven.error = exc
    return driven
