"""How requests are authorised: a Bearer API key, or OCI request signing for the four IAM kinds.

Both are `httpx.Auth` flows, so `Client` and `AsyncClient` drive the same code. OCI signing follows the OCI
HTTP-signature scheme through the `oci` SDK's own signers: `date (request-target) host` on every request, plus
`content-length content-type x-content-sha256` on requests with a body. The body is hashed in one streaming pass
before it is sent, so a multipart upload of a large file is read twice from disk and never held in memory (the
async flow hashes in a worker thread so the event loop keeps running).

Signers that read only local files (user principal, session) are made when the client is; the instance- and
resource-principal signers may talk to metadata or token services, so they are made on the first request. A
401 makes a token-based signer refresh its token once and the request is signed and sent again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio.to_thread
import httpx

from .config import Settings
from .errors import CellboxError, ConfigurationError, ValidationError

__all__ = ["BearerAuth", "OCIAuth", "auth_from_settings"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# What the signer adds to the request it is given; everything else of the request is left alone.
_SIGNED_HEADERS = ("authorization", "date")
_BODY_HEADERS = ("x-content-sha256", "content-type", "content-length")
# Off OCI the SDK's own metadata-service retries take minutes to give up; a few quick attempts are enough there.
_IMDS_MAX_ATTEMPTS = 3
_IMDS_MAX_SECONDS = 30


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


# --- OCI request signing -------------------------------------------------------------------------------------


class _SigningView:
    """The small part of a `requests.PreparedRequest` that the `oci` SDK's signers read and write.

    `url` is rebuilt from the Host header httpx will send, so the signed `host` is exactly what the server sees
    (the SDK takes it from the URL's netloc); `path_url` is the raw path and query as they go on the wire.
    `headers` only needs to be a case-insensitive mutable mapping (the signers `setdefault`, `pop` and `update`
    it): httpx's own, rather than the SDK's vendored copy of requests.
    """

    def __init__(self, request: httpx.Request, headers: dict[str, str]) -> None:
        self.method = request.method
        self.path_url = request.url.raw_path.decode("ascii")
        self.url = f"{request.url.scheme}://{headers['host']}{self.path_url}"
        self.headers = httpx.Headers(headers)
        self.body = None  # x-content-sha256 is already set, so the signer never reads it


def _rereadable(stream: Any) -> bool:
    """Whether sending `stream` after hashing it sends the same bytes: in-memory bodies and seekable files."""
    if isinstance(stream, httpx.ByteStream):
        return True
    fields = getattr(stream, "fields", None)  # httpx's multipart stream, which rewinds each file it sends
    if not isinstance(stream, httpx.SyncByteStream) or not isinstance(fields, list):
        return False
    for field in fields:
        file = getattr(field, "file", None)
        if file is not None and not isinstance(file, (str, bytes)):
            seekable = getattr(file, "seekable", None)
            if seekable is None or not seekable():
                return False
    return True


def _body_digest(request: httpx.Request) -> tuple[str, int]:
    """sha256 (base64) and length of the body, in one streamed pass (httpx rewinds files before sending)."""
    stream = request.stream
    if not _rereadable(stream):
        raise ValidationError(
            "OCI request signing hashes the body before sending it, so it must be readable twice: upload a file "
            "path, bytes or a seekable binary file, not a pipe or a generator."
        )
    assert isinstance(stream, httpx.SyncByteStream)
    digest = hashlib.sha256()
    length = 0
    for chunk in stream:
        digest.update(chunk)
        length += len(chunk)
    return base64.b64encode(digest.digest()).decode("ascii"), length


_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_MAX_DETAIL = 400


def _describe(exc: BaseException) -> str:
    """An SDK exception as text a user may see: the file, profile or setting it names, never key material."""
    certificate_type = getattr(exc, "certificate_type", None)
    if type(exc).__name__ == "InvalidCertificateFromInstanceMetadataError":
        return f"the instance metadata service returned an invalid {certificate_type or 'certificate'}"
    text = " ".join(str(arg) for arg in exc.args) if exc.args else ""
    text = _JWT.sub("<token>", _PEM.sub("<PEM>", text))
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OCIAuth(httpx.Auth):
    """OCI HTTP-signature auth over an `oci` SDK signer (user, session, instance or resource principal).

    `make_signer` is called on first use, not at construction: the instance-principal signer talks to the
    instance metadata service when it is made, and a client should be cheap to create anywhere
    (`auth_from_settings` makes the file-only kinds right away so that a wrong profile fails early).
    Errors setting up or signing are `ConfigurationError`s that name the file, profile or setting, never
    key material or tokens.
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
                try:
                    self._signer = self._make_signer()
                except CellboxError:
                    raise
                except Exception as exc:
                    raise ConfigurationError(f"{self.kind} auth could not be set up: {_describe(exc)}") from None
            return self._signer

    def sign(self, request: httpx.Request) -> None:
        """Hash the body (if any) and add the signature headers to `request`. Blocking: may read a file."""
        signer = self._get_signer()
        headers = {"host": request.headers.get("host") or request.url.netloc.decode("ascii")}
        if "date" in request.headers:
            headers["date"] = request.headers["date"]
        has_body = request.method in _BODY_METHODS
        if has_body:
            sha, length = _body_digest(request)
            headers["x-content-sha256"] = sha
            headers["content-length"] = str(length)
            headers["content-type"] = request.headers.get("content-type", "application/json")
            # The signature covers content-length, so the body goes out with that length, never chunked.
            request.headers.pop("transfer-encoding", None)
        view = _SigningView(request, headers)
        try:
            signer(view)
        except CellboxError:
            raise
        except Exception as exc:
            raise ConfigurationError(f"{self.kind} auth could not sign the request: {_describe(exc)}") from None
        for name in _SIGNED_HEADERS + (_BODY_HEADERS if has_body else ()):
            request.headers[name] = view.headers[name]

    def refresh(self) -> bool:
        """Ask a token-based signer for a new token (after a 401). True when there is one to try."""
        signer = self._signer
        refresh = getattr(signer, "refresh_security_token", None)
        if refresh is None:
            return False
        try:
            return refresh() is not False
        except Exception:
            return False  # the 401 reaches the caller as it is

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        response = yield request
        if response.status_code == 401 and self.refresh():
            self.sign(request)
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # Hashing a large upload, or fetching a token, must not stall the event loop.
        await anyio.to_thread.run_sync(self.sign, request)
        response = yield request
        if response.status_code == 401 and await anyio.to_thread.run_sync(self.refresh):
            await anyio.to_thread.run_sync(self.sign, request)
            yield request


class _SessionSigner:
    """A `SecurityTokenSigner` for an `oci session authenticate` profile.

    `oci session refresh` rewrites the token file; the file is checked on every request (one stat) and read
    again when it has changed, so a long-lived client keeps working across refreshes.
    """

    def __init__(self, oci: Any, token_file: str, key_file: str, pass_phrase: str | None) -> None:
        self._oci = oci
        self._token_file = token_file
        self._key = oci.signer.load_private_key_from_file(key_file, pass_phrase)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._signer: Any = None
        self._load()

    def _load(self) -> bool:
        try:
            stat = os.stat(self._token_file)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return False
            with open(self._token_file) as f:
                token = f.read().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"can't read the session token file {self._token_file} ({exc.strerror or type(exc).__name__}); "
                "run `oci session authenticate` or `oci session refresh`."
            ) from None
        if not token:
            raise ConfigurationError(
                f"the session token file {self._token_file} is empty; run `oci session authenticate`."
            )
        self._signer = self._oci.auth.signers.SecurityTokenSigner(token, self._key)
        self._stamp = stamp
        return True

    def refresh_security_token(self) -> bool:
        with self._lock:
            return self._load()

    def __call__(self, request: Any) -> Any:
        with self._lock:
            self._load()
            signer = self._signer
        return signer(request)


def _import_oci() -> Any:
    try:
        import oci
    except ImportError:
        raise ConfigurationError(
            "OCI IAM auth needs the oci package: pip install 'cellbox[oci]'. "
            "Or use CELLBOX_AUTH=api_key with an OCI Generative AI API key."
        ) from None
    return oci


def _oci_config(oci: Any, settings: Settings) -> dict[str, Any]:
    path = os.path.expanduser(settings.oci_config_file)
    if not os.path.isfile(path):
        raise ConfigurationError(
            f"no OCI config file at {path}: create one with `oci setup config`, or point OCI_CONFIG_FILE at it."
        )
    config: dict[str, Any] = oci.config.from_file(path, settings.oci_profile)
    return config


def _user_principal(settings: Settings) -> Any:
    oci = _import_oci()
    return oci.signer.Signer.from_config(_oci_config(oci, settings))


def _session(settings: Settings) -> Any:
    oci = _import_oci()
    config = _oci_config(oci, settings)
    where = f"profile {settings.oci_profile} in {settings.oci_config_file}"
    token_file = config.get("security_token_file")
    if not token_file:
        raise ConfigurationError(
            f"{where} has no security_token_file; create a session with `oci session authenticate`, or use "
            "CELLBOX_AUTH=oci_user_principal for an API-key profile."
        )
    if not config.get("key_file"):
        raise ConfigurationError(f"{where} has no key_file; run `oci session authenticate` again.")
    return _SessionSigner(
        oci, os.path.expanduser(token_file), os.path.expanduser(config["key_file"]), config.get("pass_phrase")
    )


def _instance_principal(settings: Settings) -> Any:
    oci = _import_oci()
    retry = (
        oci.retry.RetryStrategyBuilder(
            service_error_check=True,
            service_error_retry_config={-1: [], 429: [], 404: []},
            service_error_retry_on_any_5xx=True,
        )
        .add_max_attempts(_IMDS_MAX_ATTEMPTS)
        .add_total_elapsed_time(_IMDS_MAX_SECONDS)
        .get_retry_strategy()
    )
    return oci.auth.signers.InstancePrincipalsSecurityTokenSigner(retry_strategy=retry)


def _resource_principal(settings: Settings) -> Any:
    oci = _import_oci()
    if not os.environ.get("OCI_RESOURCE_PRINCIPAL_VERSION"):
        raise ConfigurationError(
            "oci_resource_principal auth found no resource principal here (OCI_RESOURCE_PRINCIPAL_VERSION is not "
            "set); it works inside OCI services such as Functions, Data Science and Container Instances."
        )
    return oci.auth.signers.get_resource_principals_signer()


_OCI_SIGNERS: dict[str, Callable[[Settings], Any]] = {
    "oci_user_principal": _user_principal,
    "oci_session": _session,
    "oci_instance_principal": _instance_principal,
    "oci_resource_principal": _resource_principal,
}
# Made with the client: these only read local files, and a wrong profile or key should fail right away.
_EAGER = frozenset({"oci_user_principal", "oci_session"})


def auth_from_settings(settings: Settings) -> httpx.Auth:
    """The auth flow the settings ask for."""
    if settings.auth == "api_key":
        if not settings.api_key:
            raise ConfigurationError(
                "no API key: set CELLBOX_API_KEY (an OCI Generative AI or OpenAI key), or choose an OCI IAM "
                "auth kind with CELLBOX_AUTH."
            )
        return BearerAuth(settings.api_key)
    _import_oci()
    make = _OCI_SIGNERS[settings.auth]
    auth = OCIAuth(lambda: make(settings), kind=settings.auth)
    if settings.auth in _EAGER:
        auth._get_signer()
    return auth
