"""OCI's gateway manners (`--profile oci`: `--error-shape oci`, `--require-project`), as middleware around the
server's own: every error answer in its shape `{"code", "message"}`, a wrong key as its authorization failure,
the request id again as `opc-request-id`, and a Generative AI project (the `OpenAI-Project` header) required on
every request. docs/CLOUD.md has the sources."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import missing, send_json

AUTHORIZATION_FAILED = "Authorization failed or requested resource not found"

# OCI's gateway error codes by status (docs.oracle.com, API errors); the OpenAI code picks among the 400s.
_OCI_CODES = {
    400: "InvalidParameter",
    401: "NotAuthenticated",
    404: "NotAuthorizedOrNotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    416: "InvalidParameter",
    429: "TooManyRequests",
    499: "ClientClosedRequest",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def oci_body(status: int, error: dict) -> dict:
    """An OpenAI-shaped error's fields as OCI's gateway answers them: `{"code", "message"}`."""
    code = _OCI_CODES.get(status, "InvalidParameter" if status < 500 else "InternalServerError")
    if error.get("code") == "missing_required_parameter":
        code = "MissingParameter"
    return {"code": code, "message": error.get("message") or "Request failed"}


class OciRequestId:
    """The request id (RequestId's `x-request-id`, inside this) again as `opc-request-id`, as OCI's gateway names
    it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                request_id = next((v for k, v in headers if k == b"x-request-id"), None)
                if request_id is not None:
                    message = {**message, "headers": [*headers, (b"opc-request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class OciErrors:
    """Every error answer in OCI's gateway shape `{"code", "message"}` (oci_body), whoever made it; a wrong key
    (the server's 401 `invalid_api_key`) as OCI's authorization failure: 404 NotAuthorizedOrNotFound."""

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
            status = start["status"]
            if status == 401 and error.get("code") == "invalid_api_key":
                status, error = 404, {"message": AUTHORIZATION_FAILED}
            replaced = (b"content-type", b"content-length")
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in replaced]
            await send_json(send, status, oci_body(status, error), kept)

        await self.app(scope, receive, reshape)


class RequireProject:
    """400 unless the request names a project (`OpenAI-Project`), as OCI's OpenAI-compatible API requires."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(k == b"openai-project" and v.strip() for k, v in scope["headers"]):
            await self.app(scope, receive, send)
            return
        error = missing("OpenAI-Project")
        error.message = (
            "Missing the OpenAI-Project header: OCI's OpenAI-compatible API needs a Generative AI project OCID "
            "on every request (cellbox sends CELLBOX_PROJECT)."
        )
        await send_json(send, error.status, error.body())
