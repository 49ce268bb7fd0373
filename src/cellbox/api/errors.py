"""Every error the Containers API client raises, in one tree.

    CellboxError
     ├── ConfigurationError            nothing usable configured, or a bad setting
     ├── ValidationError (ValueError)  a bad argument, caught before anything is sent
     └── APIError                      something went wrong talking to the API
          ├── APIConnectionError        no response: refused, reset, dropped mid-stream
          │    └── APITimeoutError
          ├── APIResponseValidationError  a response that is not what the API sends (HTML, bad JSON)
          └── APIStatusError            the API answered 4xx/5xx
               ├── BadRequestError            400
               ├── AuthenticationError        401
               ├── PermissionDeniedError      403
               ├── NotFoundError              404
               ├── ConflictError              409
               ├── UnprocessableEntityError   422
               ├── RateLimitError             429
               └── InternalServerError        5xx

Names follow the official `openai` SDK so code written against it reads the same. Responses are turned
into these errors in exactly one place, `error_from_response`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

import httpx

from ..common.redact import redact, redact_json, secrets_in_authorization

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CellboxError",
    "ConfigurationError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "ValidationError",
    "error_from_response",
]


class CellboxError(Exception):
    """Base of every cellbox error."""


class ConfigurationError(CellboxError):
    """The configuration can't be used as it is; the message says which setting to change."""


class ValidationError(CellboxError, ValueError):
    """An argument the API would reject, caught before any request is sent."""


class APIError(CellboxError):
    """A request to the API failed."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    """No (complete) response arrived: the connection was refused, reset or dropped."""


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's timeout."""


class APIResponseValidationError(APIError):
    """The server answered with something the API never sends (an HTML page, malformed JSON)."""

    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status_code = response.status_code


class APIStatusError(APIError):
    """The API answered with an error status. Carries what the API said and the request id."""

    status_code: int = 0
    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: Any = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.type = type
        self.code = code
        self.param = param
        self.request_id = response.headers.get("x-request-id") or response.headers.get("opc-request-id")


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401
    hint = "Check the credentials: CELLBOX_API_KEY for api_key auth, or the OCI config for the IAM kinds."


class PermissionDeniedError(APIStatusError):
    status_code = 403
    hint = "The credentials work but lack permission for this; check the policy or the project (CELLBOX_PROJECT)."


class NotFoundError(APIStatusError):
    status_code = 404
    hint = "Check the id; `cellbox ls` lists the containers this backend knows."


class ConflictError(APIStatusError):
    status_code = 409


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429
    hint = "Too many requests; wait a moment and try again, or raise max_retries."


class InternalServerError(APIStatusError):
    status_code = 500
    hint = "The service failed; try again later. Quote the request id when reporting it."


_BY_STATUS: dict[int, type[APIStatusError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        UnprocessableEntityError,
        RateLimitError,
    )
}

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MAX_SNIPPET = 200


def _status_class(status: int) -> type[APIStatusError]:
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIStatusError)


def _where(request: httpx.Request) -> str:
    # The path only: a query string or host could carry something the user would rather not see echoed.
    return f"{request.method} {request.url.raw_path.split(b'?')[0].decode('ascii', 'replace')}"


def _snippet(content: bytes) -> str:
    title = _TITLE.search(content)
    text = title.group(1) if title else content
    decoded = text.decode("utf-8", "replace")
    collapsed = " ".join(decoded.split())
    return collapsed[:_MAX_SNIPPET] + ("…" if len(collapsed) > _MAX_SNIPPET else "")


def looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def error_from_response(response: httpx.Response) -> APIStatusError:
    """Turn an error response (already read) into the matching typed error, with a message a person can act on."""
    status = response.status_code
    cls = _status_class(status)
    reason = response.reason_phrase or "error"
    where = _where(response.request)
    body: Any = None
    api_message = type_ = code = param = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    # What the backend (or a proxy) says is shown to people: credentials it echoes are taken out first.
    secrets = _sent_secrets(response.request)
    body = redact_json(body, secrets)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        api_message = error.get("message")
        type_, code, param = error.get("type"), error.get("code"), error.get("param")
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        # OCI gateways answer {"code": ..., "message": ...} rather than the OpenAI shape.
        api_message, code = body["message"], body.get("code")
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        api_message = body["detail"]

    if api_message:
        text = f"{status} {reason}: {api_message}"
    elif looks_like_html(response):
        text = (
            f"{status} {reason}: the server answered with an HTML page ({_snippet(response.content)!r}), "
            "not the API's JSON; a proxy or gateway in front of the API, or a wrong base URL?"
        )
    elif response.content:
        text = f"{status} {reason}: {_snippet(response.content)}"
    else:
        text = f"{status} {reason}"
    details = [where]
    if type_:
        details.append(f"type={type_}")
    if code:
        details.append(f"code={code}")
    if param:
        details.append(f"param={param}")
    request_id = response.headers.get("x-request-id") or response.headers.get("opc-request-id")
    if request_id:
        details.append(f"request id {request_id}")
    text = redact(text + f" ({', '.join(details)})", secrets)
    hint = _hint(cls, response.request, code)
    if hint:
        text += f" {hint}"
    return cls(text, response=response, body=body, type=type_, code=code, param=param)


# OCI's 404 when authorization fails, as when the resource is missing: it can't tell which ([Obs], docs/CLOUD.md).
OCI_NOT_AUTHORIZED_OR_NOT_FOUND = "NotAuthorizedOrNotFound"
_COLLECTIONS = ("containers", "files", "responses")


def _hint(cls: type[APIStatusError], request: httpx.Request, code: object) -> str:
    """What to check after an error of this kind on this request: a 404 on a list or create is not a wrong id."""
    if cls is NotFoundError:
        if code == OCI_NOT_AUTHORIZED_OR_NOT_FOUND:
            return (
                "OCI answers this when authorization fails as well as when nothing is there: check the key or IAM "
                "identity, the policy allowing it `generative-ai-family`, and that CELLBOX_PROJECT is a project of "
                "the region in the URL."
            )
        if request.url.path.rstrip("/").rsplit("/", 1)[-1] in _COLLECTIONS:
            return "Nothing serves this path there: check CELLBOX_BASE_URL (it ends in /v1; OCI's in /openai/v1)."
    return cls.hint


def _sent_secrets(request: httpx.Request) -> list[str]:
    """The credentials this request carried (the key it sent, an OCI signature), to take out of what the
    answer says."""
    return secrets_in_authorization(request.headers.get("authorization"))


_REFUSAL = re.compile(
    r"unknown|unsupported|unrecognized|not supported|not allowed|not permitted|extra (?:inputs|fields)|"
    r"does not support|isn't supported|is not available",
    re.IGNORECASE,
)


# gpt-5 at `minimal` effort refuses hosted tools: "The following tools cannot be used with reasoning.effort
# 'minimal': code_interpreter." (param: "tools").
_EFFORT_WITH_TOOLS = re.compile(r"cannot be used with reasoning\.effort", re.IGNORECASE)


def refused_parameter(response: httpx.Response, candidates: Collection[str]) -> str | None:
    """Which of `candidates` (top-level body fields) a 400 answer refuses, if it refuses one of them.

    Read from the error's `param` (`reasoning.effort` names `reasoning`), or, when the backend gives none, from a
    message that says the parameter is unknown or unsupported and names it ("Unknown parameter: 'store'."); a
    reasoning effort refused with the request's tools is `reasoning`'s refusal, whatever the `param`."""
    if response.status_code != 400 or not candidates:
        return None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = body if isinstance(body, dict) else {}
    param = error.get("param")
    if isinstance(param, str) and param:
        top = re.split(r"[.\[]", param, maxsplit=1)[0]
        if top in candidates:
            return top
    message = error.get("message") or error.get("detail")
    if not isinstance(message, str):
        return None
    if "reasoning" in candidates and _EFFORT_WITH_TOOLS.search(message):
        return "reasoning"  # names `tools` as its param, but the effort is what can go
    if not _REFUSAL.search(message):
        return None
    for name in sorted(candidates):
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", message):
            return name
    return None


def malformed_response(response: httpx.Response, problem: str) -> APIResponseValidationError:
    """A 2xx whose body is not what the API sends."""
    kind = "an HTML page" if looks_like_html(response) else "a body"
    snippet = redact(_snippet(response.content), _sent_secrets(response.request))
    return APIResponseValidationError(
        f"{_where(response.request)} answered {response.status_code} with {kind} that is not the API's JSON "
        f"({problem}): {snippet!r}. Is the base URL right, and is a proxy in the way?",
        response=response,
    )


def connection_error(exc: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    """Translate an httpx transport failure, naming what to check."""
    where = _where(request)
    host = request.url.host
    port = request.url.port
    target = f"{host}:{port}" if port else host
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").replace("Pool timeout", "connection-pool timeout")
        return APITimeoutError(
            f"{where} timed out ({kind.strip().lower()}) talking to {target}; raise the timeout if the "
            "operation is slow, or check the service is reachable.",
            request=request,
        )
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(
            f"{where}: could not connect to {target} ({exc or type(exc).__name__}). Is the server running and "
            "the base URL right?",
            request=request,
        )
    return APIConnectionError(
        f"{where}: the connection to {target} failed ({type(exc).__name__}: {exc or 'no detail'}).",
        request=request,
    )
