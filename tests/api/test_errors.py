"""Every failure ends in one typed error with a message a person can act on, and nothing hangs.

Answers a server can be told to give (statuses, HTML pages, malformed JSON) come from the mock API over an
httpx `MockTransport` (`mocked`); faults that need a socket (refused, dropped, slow) from the fake server on
loopback (`both`).
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from fakeserver import TOKEN
from runboth import Both

from cellbox.api import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    CellboxError,
    Client,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    UnprocessableEntityError,
    load_settings,
)

CID = "cntr_errors"
PATH = f"/v1/containers/{CID}"


def _api_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


@pytest.mark.parametrize(
    ("status", "cls", "attempts", "hint"),
    [
        (400, BadRequestError, 1, ""),
        (401, AuthenticationError, 1, "CELLBOX_API_KEY"),
        (403, PermissionDeniedError, 1, "CELLBOX_PROJECT"),
        (404, NotFoundError, 1, "cellbox ls"),
        (409, ConflictError, 1, ""),
        (422, UnprocessableEntityError, 1, ""),
        (429, RateLimitError, 3, "raise max_retries"),
        (500, InternalServerError, 3, "request id"),
        (502, InternalServerError, 3, "try again later"),
        (503, InternalServerError, 3, "try again later"),
        (504, InternalServerError, 3, "try again later"),
        (418, APIStatusError, 1, ""),
    ],
)
def test_each_status_has_its_error(mocked: Both, status: int, cls: type[APIStatusError], attempts: int, hint: str):
    body = _api_error(f"scripted failure {status}", "invalid_request_error", code="some_code", param="name")
    mocked.server.fail(PATH, status=status, body=body, times=3)
    with pytest.raises(cls) as info:
        mocked(lambda c: c.containers.retrieve(CID))
    error = info.value
    assert type(error) is cls and isinstance(error, (APIError, CellboxError))
    assert error.status_code == status
    assert (error.type, error.code, error.param) == ("invalid_request_error", "some_code", "name")
    assert error.body == body and error.response.status_code == status
    assert error.request_id and error.request_id.startswith("req_")
    text = str(error)
    assert text.startswith(f"{status} ") and f"scripted failure {status}" in text
    assert f"GET {PATH}" in text and f"request id {error.request_id}" in text
    assert "code=some_code" in text and "param=name" in text
    assert hint in text
    assert mocked.server.count("GET", PATH) == attempts


def test_a_wrong_key_is_an_authentication_error_without_the_key(both: Both) -> None:
    secret = "sk-wrong-secret-key-98765"
    client = both.make(api_key=secret)
    try:
        with pytest.raises(AuthenticationError) as info:
            both(lambda c: c.containers.list_page(), client)
    finally:
        both.close(client)
    assert "Incorrect API key" in str(info.value) and info.value.code == "invalid_api_key"
    assert secret not in str(info.value) and TOKEN not in str(info.value) and secret not in repr(client)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"code": "NotAuthorizedOrNotFound", "message": "OCI says no"}, "OCI says no"),
        ({"detail": "starlette says no"}, "starlette says no"),
        (b"plain words from a gateway", "plain words from a gateway"),
        (b"", "409 Conflict ("),
    ],
)
def test_other_error_bodies_still_read_well(mocked: Both, body, expected: str) -> None:
    mocked.server.fail(PATH, status=409, body=body)
    with pytest.raises(ConflictError, match=expected.replace("(", r"\(")):
        mocked(lambda c: c.containers.retrieve(CID))


def test_opc_request_id_is_used(mocked: Both) -> None:
    mocked.server.request_ids = False  # an OCI gateway says only opc-request-id
    mocked.server.fail(PATH, status=404, headers={"opc-request-id": "OCI-REQ-1"}, body={"message": "gone"})
    with pytest.raises(NotFoundError) as info:
        mocked(lambda c: c.containers.retrieve(CID))
    assert info.value.request_id == "OCI-REQ-1" and "request id OCI-REQ-1" in str(info.value)
    mocked.server.request_ids = True
    mocked.server.fail(PATH, status=404, headers={"opc-request-id": "OCI-REQ-2"}, body={"message": "gone"})
    with pytest.raises(NotFoundError) as info:
        mocked(lambda c: c.containers.retrieve(CID))
    assert info.value.request_id == info.value.response.headers["x-request-id"]  # x-request-id first


def test_an_html_error_page_from_a_proxy(mocked: Both) -> None:
    mocked.server.html(PATH, status=502, times=3)
    with pytest.raises(InternalServerError) as info:
        mocked(lambda c: c.containers.retrieve(CID))
    text = str(info.value)
    assert "HTML page" in text and "502 Bad Gateway" in text and "proxy" in text and "<html>" not in text
    assert mocked.server.count("GET", PATH) == 3


def test_an_html_page_with_200_is_not_the_api(mocked: Both) -> None:
    mocked.server.html(PATH, status=200)
    with pytest.raises(APIResponseValidationError, match="HTML page") as info:
        mocked(lambda c: c.containers.retrieve(CID))
    assert info.value.status_code == 200 and "proxy" in str(info.value) and f"GET {PATH}" in str(info.value)
    assert mocked.server.count() == 1


def test_malformed_json_is_a_validation_error(mocked: Both) -> None:
    mocked.server.malformed(PATH)
    with pytest.raises(APIResponseValidationError, match="invalid JSON") as info:
        mocked(lambda c: c.containers.retrieve(CID))
    assert isinstance(info.value, APIError) and info.value.response.status_code == 200


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"name": "no id"}', b'{"data": "not a list"}'])
def test_json_of_the_wrong_shape_is_a_validation_error(mocked: Both, body: bytes) -> None:
    mocked.server.malformed("/v1/containers*", body=body)
    call = (lambda c: c.containers.list_page()) if b"data" in body else (lambda c: c.containers.retrieve(CID))
    with pytest.raises(APIResponseValidationError, match="unexpected shape"):
        mocked(call)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_quick(both: Both) -> None:
    client = both.make(base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    started = time.monotonic()
    try:
        with pytest.raises(APIConnectionError, match=r"could not connect to 127\.0\.0\.1") as info:
            both(lambda c: c.containers.retrieve(CID), client)
    finally:
        both.close(client)
    assert time.monotonic() - started < 5
    assert not isinstance(info.value, APITimeoutError) and "Is the server running" in str(info.value)


def test_a_dropped_connection(both: Both) -> None:
    both.server.drop(PATH, times=3)
    with pytest.raises(APIConnectionError, match=r"connection to 127\.0\.0\.1") as info:
        both(lambda c: c.containers.retrieve(CID))
    assert f"GET {PATH}" in str(info.value) and info.value.request is not None
    assert both.server.count("GET", PATH) == 3


def test_a_dropped_body_on_a_json_call(both: Both) -> None:
    both.server.drop(PATH, mid_body=True, times=3)
    with pytest.raises(APIConnectionError):
        both(lambda c: c.containers.retrieve(CID))


@pytest.mark.parametrize("retries", [0, 1])
def test_a_read_timeout_is_bounded(both: Both, retries: int) -> None:
    box = both.server.add_container("slow")
    both.server.delay(f"/v1/containers/{box['id']}", 3, times=retries + 1)
    client = both.make(timeout=0.5, retry=RetryPolicy(max_retries=retries, initial_delay=0.01))
    started = time.monotonic()
    try:
        with pytest.raises(APITimeoutError, match="timed out") as info:
            both(lambda c: c.containers.retrieve(box["id"]), client)
    finally:
        both.close(client)
    assert time.monotonic() - started < 0.5 * (retries + 1) + 1.5  # each attempt ends at the timeout, not the delay
    assert both.server.count("GET", f"/v1/containers/{box['id']}") == retries + 1
    assert "read timeout" in str(info.value) and "raise the timeout" in str(info.value)
    assert isinstance(info.value, APIConnectionError)


def test_a_slow_answer_within_the_timeout_is_fine(both: Both) -> None:
    box = both.server.add_container("slowish")
    both.server.delay(f"/v1/containers/{box['id']}", 0.3)
    client = both.make(timeout=2)
    try:
        assert both(lambda c: c.containers.retrieve(box["id"]), client).id == box["id"]
    finally:
        both.close(client)


def test_default_timeouts_are_finite() -> None:
    with Client(base_url="http://127.0.0.1:1/v1", api_key="k") as client:
        timeout = client.timeout
    assert all(t is not None and 0 < t <= 600 for t in (timeout.connect, timeout.read, timeout.write, timeout.pool))


# --- secrets --------------------------------------------------------------------------------------------------

SECRET = "sk-very-secret-key-0123456789abcdef"


def test_the_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key=SECRET, max_retries=0) as client:
        assert SECRET not in repr(client) and SECRET not in repr(client.settings)
        assert SECRET not in repr(client._auth)
        assert SECRET not in str(client.settings.describe())
        assert client.settings.describe()["api_key"] == "set"
        with pytest.raises(APIConnectionError) as info:
            client.containers.list_page()
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    monkeypatch.setenv("CELLBOX_API_KEY", SECRET)
    monkeypatch.setenv("CELLBOX_BASE_URL", "http://127.0.0.1:1/v1")
    settings = load_settings()
    assert SECRET not in repr(settings) and SECRET not in str(settings.describe())


def test_error_messages_name_no_query_string(mocked: Both) -> None:
    mocked.server.fail("/v1/containers", status=400, body=_api_error("bad after", "invalid_request_error"))
    with pytest.raises(BadRequestError) as info:
        mocked(lambda c: c.containers.list_page(after="cursor-value"))
    assert "GET /v1/containers," in str(info.value) and "cursor-value" not in str(info.value)


# --- faults a real server can't produce (mock transport) ------------------------------------------------------


def test_a_redirect_on_a_download_is_a_typed_error(tmp_path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://elsewhere.invalid/blob"}, content=b"moved")

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with (
        Client(base_url="http://api.invalid/v1", api_key="k", http_client=http) as client,
        pytest.raises(APIStatusError, match="302") as info,
    ):
        client.containers.files.download("cntr_1", "cfile_1", tmp_path / "x")
    assert info.value.status_code == 302 and list(tmp_path.iterdir()) == []


@pytest.mark.asyncio
async def test_a_redirect_on_a_download_is_a_typed_error_async(tmp_path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": "/v1/other"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with AsyncClient(base_url="http://api.invalid/v1", api_key="k", http_client=http) as client:
        with pytest.raises(APIStatusError, match="307"):
            await client.containers.files.content("cntr_1", "cfile_1")


def test_a_given_http_client_gets_the_url_auth_and_headers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "cntr_1", "name": "x"})

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with Client(base_url="http://api.invalid/v1/", api_key="sk-k", project="proj-1", http_client=http) as client:
        assert client.containers.retrieve("cntr_1").id == "cntr_1"
    [request] = seen
    assert str(request.url) == "http://api.invalid/v1/containers/cntr_1"
    assert request.headers["authorization"] == "Bearer sk-k"
    assert request.headers["openai-project"] == "proj-1" and request.headers["user-agent"].startswith("cellbox/")


def test_an_error_in_the_middle_of_reading_a_json_answer() -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield b'{"id": '
            raise httpx.ReadError("connection reset by peer")

    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, stream=Broken())

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with Client(base_url="http://api.invalid/v1", api_key="k", http_client=http) as client:
        client.retry = RetryPolicy(max_retries=1, initial_delay=0.001)
        with pytest.raises(APIConnectionError, match="ReadError"):
            client.containers.retrieve("cntr_1")
        assert len(calls) == 2
        calls.clear()
        with pytest.raises(APIConnectionError):
            client.containers.create("x")
        assert len(calls) == 1  # a POST whose answer was cut off may have been acted on
