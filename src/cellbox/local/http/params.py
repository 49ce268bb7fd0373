"""Reading requests: JSON bodies, list parameters, ids from the URL and the container-create body, validated
into plain values or refused with the OpenAI-shaped error that names the parameter.

Every documented field of a request body is known (the OpenAPI document, the SDK's `*_create_params.py`); any
other answers 400 `unknown_parameter` naming it ("Unknown parameter: 'foo'."), as OpenAI does, so a typo is
never silently ignored.
"""

from __future__ import annotations

import json

from starlette.requests import Request

from .. import errors
from ..errors import APIError, refuse_unknown
from ..jail.launcher import MEMORY_LIMITS
from ..store import ids

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_EXPIRY_MINUTES = 24 * 60

CONTAINER_CREATE_FIELDS = ("name", "expires_after", "file_ids", "memory_limit", "network_policy", "skills")
CONTAINER_FILE_FIELDS = ("file", "file_id")  # JSON body (file_id) or multipart (file, file_id)
FILE_FIELDS = ("file", "purpose", "expires_after[anchor]", "expires_after[seconds]")  # multipart


async def read_json(request: Request) -> dict:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise APIError(413, f"The request body is larger than {MAX_JSON_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise APIError(413, f"The request body is larger than {MAX_JSON_BYTES} bytes.")
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
        # Escaped lone surrogates ("\udc80") parse, but no text column or JSON answer can hold them.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise errors.invalid("The request body is nested too deeply to be a request.") from None
    except (ValueError, UnicodeError) as exc:
        raise errors.invalid(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise errors.invalid("The request body must be a JSON object.")
    return value


def list_params(request: Request, max_limit: int = 100) -> tuple[int, str, str | None]:
    query = request.query_params
    raw = query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise errors.invalid(f"Invalid 'limit': expected an integer, got '{raw}'.", "limit") from None
    if not 1 <= limit <= max_limit:
        raise errors.invalid(f"Invalid 'limit': it must be between 1 and {max_limit}.", "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.invalid("Invalid 'order': expected 'asc' or 'desc'.", "order")
    return limit, order, query.get("after") or None


_ISSUED = {
    "container_id": ("container", ids.is_container_id),
    "file_id": ("file", ids.is_file_id),
    "response_id": ("response", ids.is_response_id),
}


def path_param(request: Request, name: str) -> str:
    """An id from the URL, refused with a 404 unless it has the shape of the ids this server issues."""
    value = request.path_params[name]
    kind, issued = _ISSUED[name]
    if name == "file_id" and "container_id" in request.path_params:
        kind, issued = "container file", ids.is_container_file_id
    if not issued(value):
        raise errors.not_found(kind, value, param=name)
    return value


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


# -- container creation ---------------------------------------------------------------------------------------


def memory_limit_of(value: object) -> str:
    if value is None:
        return "1g"
    if not isinstance(value, str) or value not in MEMORY_LIMITS:
        raise errors.invalid("Invalid 'memory_limit': expected one of 1g, 4g, 16g, 64g.", "memory_limit")
    return value


def create_params(body: dict) -> tuple[str, int, str, list[str]]:
    refuse_unknown(body, CONTAINER_CREATE_FIELDS)
    name = body.get("name")
    if name is None:
        raise errors.missing("name")
    if not isinstance(name, str):
        raise errors.invalid("Invalid 'name': expected a string.", "name")
    if len(name) > 1024:
        raise errors.invalid("Invalid 'name': longer than 1024 characters.", "name")
    minutes = 20
    expires = body.get("expires_after")
    if expires is not None:
        if not isinstance(expires, dict):
            raise errors.invalid("Invalid 'expires_after': expected an object.", "expires_after")
        refuse_unknown(expires, ("anchor", "minutes"), "expires_after.")
        if expires.get("anchor") != "last_active_at":
            raise errors.invalid("Invalid 'expires_after.anchor': expected 'last_active_at'.", "expires_after.anchor")
        given = expires.get("minutes")
        if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= MAX_EXPIRY_MINUTES:
            raise errors.invalid(
                f"Invalid 'expires_after.minutes': expected an integer from 1 to {MAX_EXPIRY_MINUTES}.",
                "expires_after.minutes",
            )
        minutes = given
    memory_limit = memory_limit_of(body.get("memory_limit"))
    file_ids = body.get("file_ids") or []
    if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
        raise errors.invalid("Invalid 'file_ids': expected a list of file ids.", "file_ids")
    policy = body.get("network_policy")
    if policy is not None:
        if not isinstance(policy, dict) or policy.get("type") not in ("disabled", "allowlist"):
            raise errors.invalid("Invalid 'network_policy'.", "network_policy")
        if policy["type"] == "allowlist":
            raise errors.invalid(
                "Network access is not available in local containers; use network_policy type 'disabled'.",
                "network_policy",
            )
    skills = body.get("skills")
    if skills:
        raise errors.invalid("Skills are not supported by the local server.", "skills")
    return name, minutes, memory_limit, file_ids
