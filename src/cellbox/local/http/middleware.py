"""The server's own ASGI middleware: the endpoint proof, request ids, bearer-token auth on every request, and a
handler's unexpected exception as a 500. What makes it behave like a given cloud (latency, faults, OCI's gateway)
wraps these from emulation/."""

from __future__ import annotations

import hmac
import json
import secrets
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...common import endpoint
from .. import errors


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
            await errors.send_json(send, 400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        proof = {"proof": endpoint.proof(self._token, nonce)}
        await errors.send_json(send, 200, proof, [(b"cache-control", b"no-store")])


class BearerAuth:
    """401 in the OpenAI shape unless `Authorization: Bearer <token>` matches (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

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
        if given:
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
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="cellbox"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestId:
    """`x-request-id` on every response, as the cloud sends it (clients show it in their errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


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
            await errors.send_json(send, 500, errors.INTERNAL.body())
