"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}` with the right status.

Handlers, and the rooms below them, raise `APIError` (or one of the helpers below); the app turns it into a JSON
response in one place, and middleware answers with `send_json`. With `--error-shape oci` (`--profile oci`) every
error answer leaves in OCI's gateway shape `{"code", "message"}` instead (emulation/gateway.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Send

log = logging.getLogger("cellbox.local")


class APIError(Exception):
    """An error the client should see, with the HTTP status and the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def missing(param: str) -> APIError:
    return APIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def unknown_parameter(param: str) -> APIError:
    # OpenAI's words for a field it does not know, e.g. "Unknown parameter: 'parent_id'."
    return APIError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def refuse_unknown(body: dict, known: Collection[str], prefix: str = "") -> None:
    """400 `unknown_parameter` for the first field of `body` that is not in `known` (`prefix` for nested ones)."""
    for name in body:
        if name not in known:
            raise unknown_parameter(f"{prefix}{name}")


def unsupported_parameter(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="unsupported_parameter")


def not_found(kind: str, object_id: str, param: str | None = None) -> APIError:
    return APIError(404, f"No {kind} found with id '{object_id}'.", param=param, code="not_found")


def expired() -> APIError:
    # The cloud answers exactly this for any use of an expired container.
    return APIError(400, "Container is expired.", code="container_expired")


def insufficient_storage(why: str) -> APIError:
    # 507: the request was fine, there is no room for it; only the writer is refused.
    return APIError(
        507, f"Not enough storage for this upload: {why}. Delete files to make room.", code="insufficient_storage"
    )


def too_large(limit: int) -> APIError:
    return APIError(413, f"File too large: the limit is {limit} bytes.", param="file", code="file_too_large")


async def send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON answer sent by ASGI middleware itself, before any handler (`headers` first, then its own)."""
    data = json.dumps(body).encode()
    fixed = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*(headers or []), *fixed]})
    await send({"type": "http.response.body", "body": data})


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404/405 (unknown route, wrong method) in the OpenAI shape."""
    status = getattr(exc, "status_code", 500)
    if status == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif status == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    else:
        message = str(getattr(exc, "detail", "")) or "Request failed"
    return error_response(APIError(status, message))


INTERNAL = APIError(500, "The local server had an internal error.", type="server_error")


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The client learns only that it failed; the operator's log gets the traceback.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(INTERNAL)
