"""Credentials that an upstream echoes back never reach the user: `cellbox.common.redact`, and `cellbox.api`'s errors
built from a careless proxy's answers (a real server on loopback that repeats the Authorization header)."""

from __future__ import annotations

import json

import httpx
import pytest
from echoproxy import SHAPES, EchoProxy, leaks

from cellbox.api import APIError, APIResponseValidationError, APIStatusError, AsyncClient, Client
from cellbox.api.errors import error_from_response
from cellbox.common.redact import REDACTED, redact, redact_json, secrets_in_authorization

KEY = "sk-proj-Zq81vT0xLmN4pQ7rS2uV9wXyA3bC5dE6"
OCI_AUTH = (
    'Signature version="1",headers="date (request-target) host",'
    'keyId="ocid1.tenancy.oc1..aaaatenancy/ocid1.user.oc1..aaaauser/3f:aa:01:9c",algorithm="rsa-sha256",'
    'signature="TmV2ZXIgc2hvdyB0aGlzIHNpZ25hdHVyZSB0byBhbnlvbmU="'
)


# --- the filter -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        (f"Authorization: Bearer {KEY}", [KEY, "Bearer sk"], ["Authorization: [redacted]"]),
        (f'{{"authorization": "Bearer {KEY}", "x": 1}}', [KEY], ['"x": 1']),
        (f"headers {{'Authorization': 'Bearer {KEY}'}}", [KEY], ["headers"]),
        ("token: Bearer abc123.def456-ghi", ["abc123"], ["Bearer [redacted]"]),
        (f"your key {KEY} is invalid", [KEY], ["your key [redacted] is invalid"]),
        ("old key sk-Ab12Cd34Ef56Gh78Ij90 expired", ["sk-Ab12"], ["old key [redacted] expired"]),
        (f"Authorization: {OCI_AUTH}", ["ocid1.user", "TmV2ZXIg", "3f:aa"], ["Authorization: [redacted]"]),
        (OCI_AUTH, ["ocid1.user", "TmV2ZXIg", "3f:aa"], ['keyId="[redacted]"', 'signature="[redacted]"']),
        ("keyId=ocid1.tenancy.oc1..x/ocid1.user.oc1..y/aa:bb, then", ["ocid1.user"], ["keyId=[redacted], then"]),
    ],
)
def test_credentials_are_taken_out(text: str, gone: list[str], kept: list[str]) -> None:
    shown = redact(text)
    for secret in gone:
        assert secret not in shown
    for piece in kept:
        assert piece in shown


def test_a_configured_secret_goes_wherever_it_appears() -> None:
    secret = "local-token-0f9e8d7c"  # not shaped like any known key
    assert redact(f"a{secret}b and {secret}", [secret]) == f"a{REDACTED}b and {REDACTED}"
    assert redact("nothing here", [secret, None, ""]) == "nothing here"


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "Missing bearer token.",
        "A bearer token is needed; see the docs.",
        "Invalid signature in request",
        "the task-runner uses sk-learn",
        "404 Not Found: No container found with id 'cntr_abc' (GET /v1/containers/cntr_abc)",
    ):
        assert redact(text) == text


def test_json_values_and_keys_are_filtered() -> None:
    body = {"error": {"message": f"bad key {KEY}", "code": KEY, "n": 3, "list": [KEY, None]}, KEY: True}
    shown = redact_json(body)
    assert KEY not in json.dumps(shown)
    assert shown["error"]["n"] == 3 and shown["error"]["list"][1] is None


def test_what_an_authorization_header_holds() -> None:
    assert secrets_in_authorization(f"Bearer {KEY}") == [KEY]
    held = secrets_in_authorization(OCI_AUTH)
    assert "TmV2ZXIgc2hvdyB0aGlzIHNpZ25hdHVyZSB0byBhbnlvbmU=" in held
    assert "ocid1.tenancy.oc1..aaaatenancy/ocid1.user.oc1..aaaauser/3f:aa:01:9c" in held
    assert secrets_in_authorization(None) == []


# --- cellbox.api's errors -------------------------------------------------------------------------------------

# A key that looks like no known kind of key: only knowing what was sent takes it out.
PLAIN_KEY = "cellbox0local0token0abcdef123456"


def _shown(exc: APIError) -> str:
    """Everything of the error a user sees: its message, str, repr and the parsed body it carries."""
    parts = [exc.message, str(exc), repr(exc)]
    if isinstance(exc, APIStatusError):
        parts += [json.dumps(exc.body), str(exc.code), str(exc.param)]
    return "\n".join(parts)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("key", [KEY, PLAIN_KEY])
def test_an_echoing_proxy_never_gets_the_key_into_an_error(shape: str, key: str) -> None:
    with (
        EchoProxy(status=401, shape=shape) as proxy,
        Client(proxy.base_url, api_key=key, max_retries=0) as client,
        pytest.raises(APIStatusError) as caught,
    ):
        client.containers.list_page()
    assert proxy.seen == [f"Bearer {key}"]  # it did echo it
    assert caught.value.status_code == 401
    assert list(leaks(_shown(caught.value), key)) == []
    assert REDACTED in caught.value.message


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["html", "text"])
async def test_an_echoing_proxy_answering_200_never_gets_the_key_into_an_error(shape: str) -> None:
    with EchoProxy(status=200, shape=shape) as proxy:
        async with AsyncClient(proxy.base_url, api_key=PLAIN_KEY, max_retries=0) as client:
            with pytest.raises(APIResponseValidationError) as caught:
                await client.containers.list_page()
    assert list(leaks(_shown(caught.value), PLAIN_KEY)) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 403, 404, 500])
async def test_every_status_is_filtered_from_the_async_client_too(status: int) -> None:
    with EchoProxy(status=status, shape="json") as proxy:
        async with AsyncClient(proxy.base_url, api_key=PLAIN_KEY, max_retries=0) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.containers.retrieve("cntr_x")
    assert list(leaks(_shown(caught.value), PLAIN_KEY)) == []


def test_an_oci_signature_echoed_back_is_taken_out() -> None:
    request = httpx.Request("GET", "https://inference.example/v1/containers", headers={"authorization": OCI_AUTH})
    body = {"code": "NotAuthenticated", "message": f"bad header {OCI_AUTH}"}
    error = error_from_response(httpx.Response(401, json=body, request=request))
    for piece in ("ocid1.user", "TmV2ZXIg", "3f:aa:01"):
        assert piece not in _shown(error)
    assert error.status_code == 401 and "NotAuthenticated" in error.message
