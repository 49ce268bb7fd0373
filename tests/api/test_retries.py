"""Retries: which failures are retried and how often, the POST rule, Retry-After, and the backoff's bounds."""

from __future__ import annotations

import email.utils
import socket
import threading
import time

import httpx
import pytest
from fakeserver import TOKEN
from runboth import Both

from cellbox.api import (
    APIConnectionError,
    Client,
    ConfigurationError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from cellbox.api.base import parse_retry_after
from cellbox.api.operations import Operation

CID = "cntr_retry"
PATH = f"/v1/containers/{CID}"


@pytest.fixture
def box(both: Both) -> str:
    return both.server.add_container("retry")["id"]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_a_get_is_retried_then_succeeds(both: Both, box: str, status: int) -> None:
    both.server.fail(f"/v1/containers/{box}", status=status, times=2)
    assert both(lambda c: c.containers.retrieve(box)).id == box
    assert both.server.count("GET", f"/v1/containers/{box}") == 3


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_get_gives_up_after_max_retries(both: Both, status: int) -> None:
    both.server.fail(PATH, status=status, times=10)
    with pytest.raises((InternalServerError, RateLimitError)):
        both(lambda c: c.containers.retrieve(CID))
    assert both.server.count("GET", PATH) == 3  # max_retries=2: three attempts


def test_a_get_is_retried_after_a_drop(both: Both, box: str) -> None:
    both.server.drop(f"/v1/containers/{box}", times=2)
    assert both(lambda c: c.containers.retrieve(box)).id == box
    assert both.server.count("GET", f"/v1/containers/{box}") == 3


def test_max_retries_zero_means_one_attempt(both: Both) -> None:
    client = both.make(max_retries=0, retry=None)
    try:
        assert client.retry.max_retries == 0
        both.server.fail(PATH, status=503, times=5)
        with pytest.raises(InternalServerError):
            both(lambda c: c.containers.retrieve(CID), client)
    finally:
        both.close(client)
    assert both.server.count() == 1


def test_max_retries_is_configurable(both: Both) -> None:
    client = both.make(max_retries=4, retry=None)
    client.retry = RetryPolicy(max_retries=client.retry.max_retries, initial_delay=0.001)
    try:
        both.server.fail(PATH, status=500, times=10)
        with pytest.raises(InternalServerError):
            both(lambda c: c.containers.retrieve(CID), client)
    finally:
        both.close(client)
    assert both.server.count() == 5


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_max_retries_must_be_a_count(bad) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        Client(base_url="http://127.0.0.1:1/v1", api_key="k", max_retries=bad)


# --- the POST rule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_post_is_not_resent_after_a_server_error(both: Both, status: int) -> None:
    both.server.fail("/v1/containers", status=status, method="POST", times=3)
    with pytest.raises(InternalServerError):
        both(lambda c: c.containers.create("once"))
    assert both.server.count("POST", "/v1/containers") == 1


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
def test_a_post_is_resent_when_the_server_did_nothing(both: Both, status: int) -> None:
    both.server.fail("/v1/containers", status=status, method="POST", times=2)
    box = both(lambda c: c.containers.create("eventually"))
    assert both.server.count("POST", "/v1/containers") == 3
    assert list(both.server.containers) == [box.id]


def test_a_post_is_resent_after_connection_refused(both: Both) -> None:
    """The first connection is refused (nothing listens yet); the retry reaches the server that came up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: list[bytes] = []

    def serve_later() -> None:
        time.sleep(0.3)
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
    client = both.make(base_url=f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(max_retries=5, initial_delay=0.2))
    try:
        box = both(lambda c: c.containers.create("late"), client)
    finally:
        both.close(client)
        thread.join(10)
    assert box.id == "cntr_late" and len(seen) == 1 and seen[0].startswith(b"POST /v1/containers ")


# --- Retry-After ----------------------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(both: Both, box: str) -> None:
    both.server.fail(f"/v1/containers/{box}", status=429, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert both(lambda c: c.containers.retrieve(box)).id == box
    assert 1.0 <= time.monotonic() - started < 2.5
    assert both.server.count() == 2


def test_retry_after_ms_is_honoured(both: Both, box: str) -> None:
    both.server.fail(f"/v1/containers/{box}", status=503, headers={"retry-after-ms": "600", "Retry-After": "30"})
    started = time.monotonic()
    both(lambda c: c.containers.retrieve(box))
    assert 0.6 <= time.monotonic() - started < 2


def test_retry_after_on_a_post(both: Both) -> None:
    both.server.fail("/v1/containers", status=429, method="POST", headers={"Retry-After": "0.5"})
    started = time.monotonic()
    both(lambda c: c.containers.create("patient"))
    assert time.monotonic() - started >= 0.5 and both.server.count("POST") == 2


def test_a_huge_retry_after_is_not_waited_out(both: Both) -> None:
    both.server.fail(PATH, status=429, headers={"Retry-After": "3600"}, times=3)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        both(lambda c: c.containers.retrieve(CID))
    assert time.monotonic() - started < 2 and both.server.count() == 1
    assert info.value.response.headers["retry-after"] == "3600"


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


# --- backoff --------------------------------------------------------------------------------------------------


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


def test_a_delete_is_retried_like_a_get(both: Both, box: str) -> None:
    both.server.fail(f"/v1/containers/{box}", status=502, method="DELETE")
    assert both(lambda c: c.containers.delete(box)).deleted
    assert both.server.count("DELETE") == 2


def test_the_retry_sleeps_are_the_policy_s(both: Both, box: str) -> None:
    client = both.make(retry=RetryPolicy(max_retries=2, initial_delay=0.4, max_delay=0.4))
    both.server.fail(f"/v1/containers/{box}", status=503, times=2)
    started = time.monotonic()
    try:
        both(lambda c: c.containers.retrieve(box), client)
    finally:
        both.close(client)
    assert 0.4 <= time.monotonic() - started < 2.0  # two sleeps, each 0.2 to 0.4 s


def test_the_token_is_sent_on_every_attempt(both: Both, box: str) -> None:
    both.server.fail(f"/v1/containers/{box}", status=500, times=2)
    both(lambda c: c.containers.retrieve(box))
    assert [r.headers["authorization"] for r in both.server.requests()] == [f"Bearer {TOKEN}"] * 3
