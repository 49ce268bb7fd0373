"""Retries: which failures are retried and how often, the POST rule, Retry-After, and the backoff's bounds.

How long the client waits is read off the flow (`BaseClient.flow` yields a `Sleep` between attempts), never off
a clock; that the shells sleep exactly what the flow says is tested once per shell. Statuses come from the mock
API (`mocked`), dropped and refused connections and timeouts from real sockets (`both`).
"""

from __future__ import annotations

import email.utils
import random
import socket
import threading
import time

import anyio
import httpx
import pytest
from mockapi import BASE_URL, Driven, drive
from runboth import Both

from cellbox.api import (
    APIConnectionError,
    Client,
    ConfigurationError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from cellbox.api import operations as ops
from cellbox.api.base import Sleep, parse_retry_after
from cellbox.api.operations import Operation

CID = "cntr_retry"
PATH = f"/v1/containers/{CID}"


@pytest.fixture
def box(mocked: Both) -> str:
    return mocked.server.add_container("retry")["id"]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_a_get_is_retried_then_succeeds(mocked: Both, box: str, status: int) -> None:
    mocked.server.fail(f"/v1/containers/{box}", status=status, times=2)
    assert mocked(lambda c: c.containers.retrieve(box)).id == box
    assert mocked.server.count("GET", f"/v1/containers/{box}") == 3


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_get_gives_up_after_max_retries(mocked: Both, status: int) -> None:
    mocked.server.fail(PATH, status=status, times=10)
    with pytest.raises((InternalServerError, RateLimitError)):
        mocked(lambda c: c.containers.retrieve(CID))
    assert mocked.server.count("GET", PATH) == 3  # max_retries=2: three attempts


def test_a_get_is_retried_after_a_drop(both: Both) -> None:
    box = both.server.add_container("retry")["id"]
    both.server.drop(f"/v1/containers/{box}", times=2)
    assert both(lambda c: c.containers.retrieve(box)).id == box
    assert both.server.count("GET", f"/v1/containers/{box}") == 3


def test_max_retries_zero_means_one_attempt(mocked: Both) -> None:
    client = mocked.make(max_retries=0, retry=None)
    try:
        assert client.retry.max_retries == 0
        mocked.server.fail(PATH, status=503, times=5)
        with pytest.raises(InternalServerError):
            mocked(lambda c: c.containers.retrieve(CID), client)
    finally:
        mocked.close(client)
    assert mocked.server.count() == 1


def test_max_retries_is_configurable(mocked: Both) -> None:
    client = mocked.make(max_retries=4, retry=None)
    client.retry = RetryPolicy(max_retries=client.retry.max_retries, initial_delay=0.001)
    try:
        mocked.server.fail(PATH, status=500, times=10)
        with pytest.raises(InternalServerError):
            mocked(lambda c: c.containers.retrieve(CID), client)
    finally:
        mocked.close(client)
    assert mocked.server.count() == 5


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_max_retries_must_be_a_count(bad) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        Client(base_url="http://127.0.0.1:1/v1", api_key="k", max_retries=bad)


# --- the POST rule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_post_is_not_resent_after_a_server_error(mocked: Both, status: int) -> None:
    mocked.server.fail("/v1/containers", status=status, method="POST", times=3)
    with pytest.raises(InternalServerError):
        mocked(lambda c: c.containers.create("once"))
    assert mocked.server.count("POST", "/v1/containers") == 1


def test_a_post_is_not_resent_after_a_dropped_connection(both: Both) -> None:
    both.server.drop("/v1/containers", method="POST", times=3)
    with pytest.raises(APIConnectionError):
        both(lambda c: c.containers.create("once"))
    assert both.server.count("POST", "/v1/containers") == 1
    assert both.server.containers == {}


def test_a_post_is_not_resent_after_a_timeout(both: Both) -> None:
    both.server.delay("/v1/containers", 2, method="POST", times=3)
    client = both.make(timeout=0.3)
    try:
        with pytest.raises(APIConnectionError, match="timed out"):
            both(lambda c: c.containers.create("once"), client)
    finally:
        both.close(client)
    assert both.server.count("POST", "/v1/containers") == 1


@pytest.mark.parametrize("status", [429, 503, 408])
def test_a_post_is_resent_when_the_server_did_nothing(mocked: Both, status: int) -> None:
    mocked.server.fail("/v1/containers", status=status, method="POST", times=2)
    box = mocked(lambda c: c.containers.create("eventually"))
    assert mocked.server.count("POST", "/v1/containers") == 3
    assert list(mocked.server.containers) == [box.id]


def test_a_post_is_resent_after_connection_refused(both: Both) -> None:
    """The first connection is refused (nothing listens yet); the retry reaches the server that came up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: list[bytes] = []
    refused = threading.Event()

    def serve_later() -> None:
        refused.wait(30)  # nothing listens until the client has been turned away once
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(1)
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                    data += conn.recv(65536)
                seen.append(data)
                body = b'{"id": "cntr_late", "name": "late"}'
                head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                conn.sendall(head % len(body))
                conn.sendall(body)

    thread = threading.Thread(target=serve_later)
    thread.start()
    if both.kind == "sync":
        http = httpx.Client(transport=_Refusals(refused))
    else:
        http = httpx.AsyncClient(transport=_AsyncRefusals(refused))
    client = both.make(
        base_url=f"http://127.0.0.1:{port}/v1", http_client=http, retry=RetryPolicy(max_retries=5, initial_delay=0.2)
    )
    try:
        box = both(lambda c: c.containers.create("late"), client)
    finally:
        both.close(client)
        refused.set()  # lets the thread end, had the client failed before trying at all
        thread.join(10)
    assert box.id == "cntr_late" and len(seen) == 1 and seen[0].startswith(b"POST /v1/containers ")


class _Refusals(httpx.HTTPTransport):
    """Sets `refused` when a connection is refused."""

    def __init__(self, refused: threading.Event) -> None:
        super().__init__()
        self.refused = refused

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.ConnectError:
            self.refused.set()
            raise


class _AsyncRefusals(httpx.AsyncHTTPTransport):
    """Sets `refused` when a connection is refused."""

    def __init__(self, refused: threading.Event) -> None:
        super().__init__()
        self.refused = refused

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectError:
            self.refused.set()
            raise


def test_a_delete_is_retried_like_a_get(mocked: Both, box: str) -> None:
    mocked.server.fail(f"/v1/containers/{box}", status=502, method="DELETE")
    assert mocked(lambda c: c.containers.delete(box)).deleted
    assert mocked.server.count("DELETE") == 2


def test_the_token_is_sent_on_every_attempt(mocked: Both, box: str) -> None:
    mocked.server.fail(f"/v1/containers/{box}", status=500, times=2)
    mocked(lambda c: c.containers.retrieve(box))
    assert [r.headers["authorization"] for r in mocked.server.requests()] == [f"Bearer {mocked.server.token}"] * 3


# --- how long: the flow's steps -------------------------------------------------------------------------------

CONTAINER = {"id": CID, "object": "container", "name": "retry"}


def _run(
    op: Operation, answers: list[httpx.Response | httpx.TransportError], policy: RetryPolicy | None = None
) -> Driven:
    """Drive one operation's flow, answering its requests in turn from `answers`."""
    with Client(base_url=BASE_URL, api_key="k") as client:
        if policy is not None:
            client.retry = policy
        left = list(answers)
        driven = drive(client.flow(client._http, op), lambda request: left.pop(0))
    assert left == [], f"{len(left)} answers were never asked for"
    return driven


def _status(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {"message": "scripted", "type": "x"}})


def _ok() -> httpx.Response:
    return httpx.Response(200, json=CONTAINER)


def test_retry_after_seconds_is_what_the_flow_waits() -> None:
    driven = _run(ops.retrieve_container(CID), [_status(429, **{"Retry-After": "1"}), _ok()])
    assert driven.sleeps == [1.0] and driven.attempts == 2 and driven.value.id == CID
    assert [type(step) for step in driven.steps] == [httpx.Request, Sleep, httpx.Request]


def test_retry_after_ms_wins_over_retry_after() -> None:
    driven = _run(ops.retrieve_container(CID), [_status(503, **{"retry-after-ms": "600", "Retry-After": "30"}), _ok()])
    assert driven.sleeps == [0.6] and driven.value.id == CID


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    driven = _run(ops.retrieve_container(CID), [_status(503, **{"Retry-After": when}), _ok()])
    [slept] = driven.sleeps
    assert 18 <= slept <= 20


def test_retry_after_on_a_post() -> None:
    driven = _run(ops.create_container("patient"), [_status(429, **{"Retry-After": "0.5"}), _ok()])
    assert driven.sleeps == [0.5] and driven.attempts == 2


def test_a_huge_retry_after_is_not_waited_out() -> None:
    driven = _run(ops.retrieve_container(CID), [_status(429, **{"Retry-After": "3600"})])
    assert driven.sleeps == [] and driven.attempts == 1
    assert isinstance(driven.error, RateLimitError)
    assert driven.error.response.headers["retry-after"] == "3600"


def test_the_retry_sleeps_are_the_policy_s_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.5)  # jitter: three quarters of the full delay
    policy = RetryPolicy(max_retries=4, initial_delay=0.5, max_delay=1.5)
    driven = _run(ops.retrieve_container(CID), [_status(503)] * 4 + [_ok()], policy)
    assert driven.sleeps == [0.375, 0.75, 1.125, 1.125]  # 0.5, 1, 2 -> capped at 1.5; each x 0.75
    assert driven.value.id == CID


def test_connection_failures_back_off_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 1.0)
    policy = RetryPolicy(max_retries=2, initial_delay=0.25)
    driven = _run(ops.retrieve_container(CID), [httpx.ReadError("reset"), httpx.ConnectError("refused"), _ok()], policy)
    assert driven.sleeps == [0.25, 0.5] and driven.value.id == CID


def test_no_sleep_after_the_last_attempt() -> None:
    driven = _run(ops.retrieve_container(CID), [_status(500)] * 3, RetryPolicy(max_retries=2, initial_delay=0.01))
    assert isinstance(driven.error, InternalServerError)
    assert [type(step) for step in driven.steps] == [httpx.Request, Sleep, httpx.Request, Sleep, httpx.Request]


def test_a_post_gets_no_sleep_after_an_answer_that_may_have_acted() -> None:
    driven = _run(ops.create_container("once"), [_status(500)])
    assert driven.sleeps == [] and isinstance(driven.error, InternalServerError)
    driven = _run(ops.create_container("once"), [httpx.ReadError("reset")])
    assert driven.sleeps == [] and isinstance(driven.error, APIConnectionError)


def test_the_client_sleeps_what_the_flow_says(mocked: Both, box: str, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    if mocked.kind == "sync":
        monkeypatch.setattr(time, "sleep", slept.append)
    else:

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        monkeypatch.setattr(anyio, "sleep", sleep)
    mocked.server.fail(f"/v1/containers/{box}", status=503, headers={"Retry-After": "7"})
    mocked.server.fail(f"/v1/containers/{box}", status=429, headers={"retry-after-ms": "1250"})
    assert mocked(lambda c: c.containers.retrieve(box)).id == box
    assert slept == [7.0, 1.25] and mocked.server.count() == 3


# --- the policy's parts ---------------------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= parse_retry_after({"retry-after": when}) <= 10.5
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0


def test_backoff_grows_with_jitter_within_bounds() -> None:
    policy = RetryPolicy(max_retries=10, initial_delay=0.5, max_delay=8.0)
    for attempt in range(10):
        full = min(8.0, 0.5 * 2**attempt)
        samples = [policy.backoff(attempt) for _ in range(300)]
        assert all(full / 2 <= s <= full for s in samples)
        assert max(samples) - min(samples) > full / 10  # jittered, not constant


def _get() -> Operation:
    return Operation("GET", "/containers/x")


def test_delay_decisions() -> None:
    policy = RetryPolicy(max_retries=2, initial_delay=1.0)
    request = httpx.Request("GET", "http://x/v1/containers/x")
    post = Operation("POST", "/containers")

    def answer(status: int, **headers: str) -> httpx.Response:
        return httpx.Response(status, headers=headers, request=request)

    assert policy.delay(_get(), 0, response=answer(500)) is not None
    assert policy.delay(_get(), 2, response=answer(500)) is None  # out of retries
    assert policy.delay(_get(), 0, response=answer(404)) is None
    assert policy.delay(_get(), 0, response=answer(400)) is None
    assert policy.delay(post, 0, response=answer(500)) is None
    assert policy.delay(post, 0, response=answer(429)) is not None
    assert policy.delay(_get(), 0, response=answer(503, **{"retry-after": "7"})) == 7.0
    assert policy.delay(_get(), 0, response=answer(503, **{"retry-after": "61"})) is None
    assert policy.delay(_get(), 0, error=httpx.ReadError("reset")) is not None
    assert policy.delay(post, 0, error=httpx.ReadError("reset")) is None
    assert policy.delay(post, 0, error=httpx.ConnectError("refused")) is not None
    assert policy.delay(post, 0, error=httpx.ConnectTimeout("slow")) is not None
    assert policy.delay(post, 0, error=httpx.ReadTimeout("slow")) is None
