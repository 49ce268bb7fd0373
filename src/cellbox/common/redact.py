"""Credentials taken out of text that came from elsewhere before a person sees it.

An upstream error body, a proxy's error page or an exception message can carry what was sent with the request:
a proxy that echoes the `Authorization` header puts the key in the error. Everything that shows such text to a
user (`cellbox.api`'s errors, the sidebar's JSON errors and log lines, the CLI, the magics) passes it through
`redact` first:

    redact("proxy said: Authorization: Bearer sk-abc…", ["sk-abc…"]) == "proxy said: Authorization: [redacted]"

Taken out: the given secrets wherever they appear (the configured API key, the local server's token), bearer
tokens, `Authorization` header values, OCI request-signature fields (`keyId="…"`, `signature="…"`) and anything
shaped like an OpenAI key (`sk-…`, `sk-proj-…`). This module imports nothing of cellbox at load time, so every
layer can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "redact", "redact_json", "secrets_in_authorization"]

REDACTED = "[redacted]"
# Shorter "secrets" would blank out ordinary words; nothing that short is a credential.
MIN_SECRET_LENGTH = 6

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # `Authorization: …`, `"authorization": "…"`, `authorization='…'`: the value up to its closing quote or the
    # end of the line (an OCI signature header holds spaces and commas).
    (re.compile(r"""(authorization\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\r\n]+""", re.IGNORECASE), rf"\1{REDACTED}"),
    # OCI request signing: Signature version="1",keyId="<tenancy>/<user>/<fingerprint>",…,signature="<base64>"
    (re.compile(r"""\b(keyId|signature)(\s*=\s*\\?["']?)[^"'\\\s,]+""", re.IGNORECASE), rf"\1\2{REDACTED}"),
    (re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"), REDACTED),
]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with `secrets` (exact matches, wherever they appear) and anything that looks like a credential
    replaced by `[redacted]`."""
    known = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _BEARER.sub(_bearer, text)


_BEARER = re.compile(r"(bearer\s+)([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


def _bearer(match: re.Match[str]) -> str:
    # "Bearer <token>", but not prose ("a bearer token is needed."): a token has a digit or a sign in it, or is
    # long; a word of letters (and a full stop after it) is left alone.
    token = match.group(2).rstrip(".")
    tail = match.group(2)[len(token) :]
    looks_random = len(token) >= 20 or (len(token) >= 8 and not token.isalpha())
    return f"{match.group(1)}{REDACTED}{tail}" if looks_random else match.group(0)


def redact_json(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A parsed JSON value with every string in it (keys included) passed through `redact`."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(str(k), secrets): redact_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, secrets) for v in value]
    return value


def secrets_in_authorization(header: str | None) -> list[str]:
    """What an `Authorization` header value holds that must never be shown: the bearer token, or an OCI
    signature's key id and signature."""
    if not header:
        return []
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return [rest.strip()]
    fields = [m.group(2) for m in re.finditer(r"""\b(keyId|signature)="([^"]*)\"""", header)]
    return [*fields, rest.strip(), header]
