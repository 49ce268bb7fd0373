"""ASGI middleware: the endpoint proof, request ids, bearer-token auth on every request, injected latency and
faults for tests and benchmarks, and OCI's gateway manners (`--profile oci`): its error shape and its required
project."""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import secrets
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..common import endpoint
from . import errors

OCI_AUTHORIZATION_FAILED = "Authorization failed or requested resource not found"


class EndpointProof:
    """Answers `GET /cellbox/proof?nonce=N` with the HMAC of N keyed by the token, and nothing else, without
    credentials: how a client checks it talks to the server that wrote the endpoint file before it sends the token
    (endpoint.py). Outermost, so injected latency and faults never make a real server fail its proof."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != endpoint.PROOF_PATH:
            await self.app(scope, receive, send)
            return
        nonce = parse_qs(scope["query_string"].decode("latin-1")).get("nonce", [""])[0]
        if scope["method"] != "GET" or not endpoint.valid_nonce(nonce):
            message = "Send GET /cellbox/proof?nonce=N, N 16 to 128 characters of A-Z a-z 0-9 _ -."
            await _send_json(send, 400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        await _send_json(send, 200, {"proof": endpoint.proof(self._token, nonce)}, [(b"cache-control", b"no-store")])


class BearerAuth:
    """401 in the OpenAI shape unless `Authorization: Bearer <token>` matches (constant-time compare). As OCI's
    gateway (`oci`), a wrong key is an authorization failure: 404 NotAuthorizedOrNotFound."""

    def __init__(self, app: ASGIApp, token: str, oci: bool = False) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._oci = oci

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        status = 401
        if given and self._oci:
            status, message, code = 404, OCI_AUTHORIZATION_FAILED, "not_found"
        elif given:
            message, code = "Incorrect API key provided.", "invalid_api_key"
        else:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            code = None
        body = json.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="cellbox"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Latency:
    """Holds back the start of every response by a fixed delay."""

    def __init__(self, app: ASGIApp, delay_ms: float) -> None:
        self.app = app
        self.delay = delay_ms / 1000.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.delay <= 0:
            await self.app(scope, receive, send)
            return

        async def delayed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, delayed_send)


class RequestId:
    """`x-request-id` on every response, as the cloud sends it (clients show it in their errors); OCI's gateway
    sends it as `opc-request-id` (`oci`: both)."""

    def __init__(self, app: ASGIApp, oci: bool = False) -> None:
        self.app = app
        self._names = [b"x-request-id", b"opc-request-id"] if oci else [b"x-request-id"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                ids = [(name, request_id) for name in self._names]
                message = {**message, "headers": [*message.get("headers", []), *ids]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class Faults:
    """Answers a share of requests with a retryable 503, as an overloaded cloud does, before they do anything."""

    def __init__(self, app: ASGIApp, rate: float) -> None:
        self.app = app
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or random.random() >= self.rate:
            await self.app(scope, receive, send)
            return
        error = {"message": "Injected fault (--error-rate).", "type": "server_error", "param": None}
        body = json.dumps({"error": {**error, "code": "injected_fault"}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"retry-after", b"0")]})
        await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    fixed = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*(headers or []), *fixed]})
    await send({"type": "http.response.body", "body": data})


class Unexpected:
    """A handler's unexpected exception as a 500 in the API's error shape, inside the middleware that gives every
    answer its request id and (OCI) its gateway shape; Starlette's own last resort sits outside them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def noting(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting)
        except Exception as exc:
            if started or isinstance(exc, errors.APIError):
                raise
            # The client learns only that it failed; the operator's log gets the traceback.
            errors.log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            await _send_json(send, 500, errors.INTERNAL.body())


class OciErrors:
    """Every error answer in OCI's gateway shape `{"code", "message"}` (errors.oci_body), whoever made it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def reshape(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            try:
                error = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                error = {"message": body.decode("utf-8", "replace")}
            replaced = (b"content-type", b"content-length")
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in replaced]
            await _send_json(send, start["status"], errors.oci_body(start["status"], error), kept)

        await self.app(scope, receive, reshape)


class RequireProject:
    """400 unless the request names a project (`OpenAI-Project`), as OCI's OpenAI-compatible API requires."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(k == b"openai-project" and v.strip() for k, v in scope["headers"]):
            await self.app(scope, receive, send)
            return
        error = errors.missing("OpenAI-Project")
        error.message = (
            "Missing the OpenAI-Project header: OCI's OpenAI-compatible API needs a Generative AI project OCID "
            "on every request (cellbox sends CELLBOX_PROJECT)."
        )
        await _send_json(send, error.status, error.body())
