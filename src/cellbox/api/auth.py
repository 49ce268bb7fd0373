"""How requests are authorised: a Bearer API key, or OCI request signing for the four IAM kinds.

Both are `httpx.Auth` flows, so `Client` and `AsyncClient` drive the same code. OCI signing covers the body
(`x-content-sha256`), so the body is hashed in one streaming pass before it is sent; a multipart upload of a
large file is read twice from disk and never held in memory (the async flow hashes in a worker thread so the
event loop keeps running).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio.to_thread
import httpx

from .config import Settings
from .errors import ConfigurationError

__all__ = ["BearerAuth", "OCIAuth", "auth_from_settings"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <key>`. The key never appears in a repr, a log line or an error."""

    def __init__(self, api_key: str) -> None:
        if not api_key or not api_key.strip():
            raise ConfigurationError("the API key is empty; set CELLBOX_API_KEY.")
        self._header = f"Bearer {api_key.strip()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(api_key=***)"


class _SigningView:
    """The small part of a `requests.PreparedRequest` that the `oci` SDK's signers read and write."""

    def __init__(self, request: httpx.Request, headers: dict[str, str]) -> None:
        from oci._vendor.requests.structures import CaseInsensitiveDict

        self.method = request.method
        self.url = str(request.url)
        self.path_url = request.url.raw_path.decode("ascii")
        self.headers = CaseInsensitiveDict(headers)
        self.body = None  # x-content-sha256 is already set, so the signer never reads it


def _body_digest(request: httpx.Request) -> tuple[str, int]:
    """sha256 (base64) and length of the body, streamed: re-iterable bodies (bytes, httpx multipart) only."""
    stream = request.stream
    if not isinstance(stream, httpx.SyncByteStream):
        raise ConfigurationError(
            "OCI request signing needs a body that can be read twice (bytes, a file path or a seekable file)."
        )
    digest = hashlib.sha256()
    length = 0
    for chunk in stream:
        digest.update(chunk)
        length += len(chunk)
    return base64.b64encode(digest.digest()).decode("ascii"), length


class OCIAuth(httpx.Auth):
    """OCI HTTP-signature auth over an `oci` SDK signer (user, session, instance or resource principal).

    `make_signer` is called on first use, not at construction: the instance-principal signer talks to the
    instance metadata service when it is made, and a client should be cheap to create anywhere.
    """

    def __init__(self, make_signer: Callable[[], Any], kind: str = "oci") -> None:
        self._make_signer = make_signer
        self._signer: Any = None
        self._lock = threading.Lock()
        self.kind = kind

    def __repr__(self) -> str:
        return f"OCIAuth(kind={self.kind!r})"

    def _get_signer(self) -> Any:
        with self._lock:
            if self._signer is None:
                self._signer = _make_signer_checked(self._make_signer, self.kind)
            return self._signer

    def sign(self, request: httpx.Request) -> None:
        """Hash the body (if any) and add the signature headers to `request`. Blocking: may read a file."""
        headers: dict[str, str] = {}
        if request.method in _BODY_METHODS:
            sha, length = _body_digest(request)
            headers["x-content-sha256"] = sha
            headers["content-length"] = str(length)
            headers["content-type"] = request.headers.get("content-type", "application/json")
            # The signature covers content-length, so the body goes out with that length, not chunked.
            request.headers.pop("transfer-encoding", None)
            request.headers["content-length"] = str(length)
        view = _SigningView(request, headers)
        self._get_signer()(view)
        for name in ("authorization", "date", "x-content-sha256", "content-type", "content-length"):
            if name in view.headers:
                request.headers[name] = view.headers[name]

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # Hashing a large upload, or refreshing a token, must not stall the event loop.
        await anyio.to_thread.run_sync(self.sign, request)
        yield request


def _make_signer_checked(make: Callable[[], Any], kind: str) -> Any:
    try:
        return make()
    except ConfigurationError:
        raise
    except Exception as exc:
        # The oci SDK's messages name the file, profile or key that's wrong; never a key's content.
        raise ConfigurationError(f"{kind} auth could not be set up: {type(exc).__name__}: {exc}") from None


def _import_oci() -> Any:
    try:
        import oci
    except ImportError:
        raise ConfigurationError(
            "OCI IAM auth needs the oci package: pip install 'cellbox[oci]'. "
            "Or use CELLBOX_AUTH=api_key with an OCI Generative AI API key."
        ) from None
    return oci


def _oci_config(settings: Settings) -> dict[str, Any]:
    oci = _import_oci()
    return oci.config.from_file(settings.oci_config_file, settings.oci_profile)


def _user_principal(settings: Settings) -> Any:
    oci = _import_oci()
    return oci.signer.Signer.from_config(_oci_config(settings))


def _session(settings: Settings) -> Any:
    oci = _import_oci()
    config = _oci_config(settings)
    token_file = config.get("security_token_file")
    if not token_file:
        raise ConfigurationError(
            f"profile {settings.oci_profile} in {settings.oci_config_file} has no security_token_file; "
            "create a session with `oci session authenticate`."
        )
    with open(_expand(token_file)) as f:
        token = f.read().strip()
    key = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
    return oci.auth.signers.SecurityTokenSigner(token, key)


def _instance_principal(settings: Settings) -> Any:
    oci = _import_oci()
    return oci.auth.signers.InstancePrincipalsSecurityTokenSigner()


def _resource_principal(settings: Settings) -> Any:
    oci = _import_oci()
    return oci.auth.signers.get_resource_principals_signer()


def _expand(path: str) -> str:
    import os

    return os.path.expanduser(path)


_OCI_SIGNERS: dict[str, Callable[[Settings], Any]] = {
    "oci_user_principal": _user_principal,
    "oci_session": _session,
    "oci_instance_principal": _instance_principal,
    "oci_resource_principal": _resource_principal,
}


def auth_from_settings(settings: Settings) -> httpx.Auth:
    """The auth flow the settings ask for."""
    if settings.auth == "api_key":
        if not settings.api_key:
            raise ConfigurationError(
                "no API key: set CELLBOX_API_KEY (an OCI Generative AI or OpenAI key), or choose an OCI IAM "
                "auth kind with CELLBOX_AUTH."
            )
        return BearerAuth(settings.api_key)
    make = _OCI_SIGNERS[settings.auth]
    return OCIAuth(lambda: make(settings), kind=settings.auth)
