"""What `Client` and `AsyncClient` share: everything except moving bytes and sleeping.

An operation runs as a generator, `BaseClient.flow`: it yields a request to send (the shell answers with the
response, body read unless streamed, or the transport error) or a `Sleep` between attempts, and returns the parsed
result. Retries, backoff, Retry-After, the POST rule and error translation live here, once.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import random
import time
from collections.abc import Callable, Generator, Mapping
from contextlib import ExitStack
from typing import Any, TypeVar, Union

import httpx

from .._version import __version__
from ..common import endpoint
from .auth import auth_from_settings
from .budget import RequestBudget, default_per_minute
from .config import Settings, load_settings
from .errors import CellboxError, ConfigurationError, connection_error, error_from_response, refused_parameter
from .operation import Operation

T = TypeVar("T")

__all__ = ["DEFAULT_MAX_RETRIES", "DEFAULT_TIMEOUT", "BaseClient", "RetryPolicy", "Sleep", "Unauthenticated"]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2
# Transfers are streamed in chunks this big: large enough for ~2 GB/s on loopback, small enough to stay flat.
CHUNK_SIZE = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Unauthenticated:
    """A request the shell sends without the client's credentials: the endpoint proof."""

    request: httpx.Request


Step = Union[httpx.Request, Unauthenticated, Sleep]  # noqa: UP007 (runtime aliases on 3.10)
Outcome = Union[httpx.Response, httpx.TransportError, None]  # noqa: UP007

# Failures in which the request never reached the server, so even a POST is safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying again.

    Retried: 408, 429 and 5xx answers, and connection failures, with exponential backoff and jitter, honouring
    Retry-After. A POST is retried only when it can't have been acted on: the connection was never made, or the
    server said 408, 429 or 503 before doing anything.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this is not waited out silently; the error reaches the caller instead.
    max_retry_after: float = 60.0

    RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
    POST_RETRY_STATUSES = frozenset({408, 429, 503})

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.initial_delay * 2.0**attempt)
        jitter: float = 0.5 + random.random() / 2  # between half and all of it
        return delay * jitter

    def delay(
        self, op: Operation[Any], attempt: int, response: httpx.Response | None = None, error: Exception | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to stop and report."""
        if attempt >= self.max_retries:
            return None
        if error is not None:
            if op.may_have_side_effects and not isinstance(error, _NOT_SENT):
                return None
            return self.backoff(attempt)
        assert response is not None
        if op.upload is not None and not op.upload.rewindable:
            return None  # the body was read from a stream that can't be read again: a retry would send less
        statuses = self.POST_RETRY_STATUSES if op.may_have_side_effects else self.RETRY_STATUSES
        if response.status_code not in statuses:
            return None
        retry_after = parse_retry_after(response.headers)
        if retry_after is None:
            return self.backoff(attempt)
        if retry_after > self.max_retry_after:
            return None
        return retry_after


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class BaseClient:
    """Configuration, request building and the retry flow, shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        auth: httpx.Auth | str | None = None,
        project: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        rediscover: Callable[[], Settings | None] | None = None,
    ) -> None:
        auth_kind = auth if isinstance(auth, str) else None
        if settings is None:
            settings = load_settings(base_url=base_url, api_key=api_key, auth=auth_kind, project=project)
        if not settings.base_url:
            raise ConfigurationError(
                "no backend configured: start the local server with `cellbox serve`, or set CELLBOX_BASE_URL "
                "(or CELLBOX_OCI_REGION for OCI Generative AI)."
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be a non-negative integer; got {max_retries!r}")
        if ".oci.oraclecloud.com" in settings.base_url and not settings.project:
            raise ConfigurationError(
                "OCI Generative AI needs a project: set CELLBOX_PROJECT (or `project` in config.toml) to the OCID "
                "of a Generative AI project; it is sent as the OpenAI-Project header on every request."
            )
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        # Where the backend is now, asked when a connection is refused (a local server restarted on another port).
        self._rediscover = rediscover
        # Optional body fields this backend refused, by (path, model): never sent again by this client.
        self.refused_parameters: dict[tuple[str, str | None], set[str]] = {}
        # What the backend said when it refused each, by (path, model, field): the doctor's advice depends on why.
        self.refusal_reasons: dict[tuple[str, str | None, str], str] = {}
        # How sandboxes on this client bind code_interpreter to their container: the setting, until the backend
        # refuses an explicit container id in the tool; then `auto` for every sandbox of this client from then on.
        self.container_binding = settings.container_binding
        # The headers of the last answer: the service's clock (`Date`), which signed requests must agree with, and
        # who it took the caller for (OpenAI's `openai-organization`).
        self.answer_headers: httpx.Headers = httpx.Headers()
        self.retry = RetryPolicy(max_retries=max_retries)
        per_minute = settings.requests_per_minute or default_per_minute(settings.backend)
        # Shared by every sandbox and pool part using this client: the service counts per organisation.
        self.budget = RequestBudget(per_minute)
        self._auth: httpx.Auth = auth if isinstance(auth, httpx.Auth) else auth_from_settings(settings)
        self._auth_from_settings = not isinstance(auth, httpx.Auth)
        # The endpoint file's server, until it proves it holds the token there: nothing else is sent to it before.
        self._unproven = settings.endpoint
        headers = {"User-Agent": f"cellbox/{__version__} httpx/{httpx.__version__}", "Accept": "application/json"}
        if settings.project:
            headers["OpenAI-Project"] = settings.project
        headers.update(default_headers or {})
        self._headers = headers
        if timeout is None:
            self.timeout = DEFAULT_TIMEOUT
        elif isinstance(timeout, httpx.Timeout):
            self.timeout = timeout
        else:
            self.timeout = httpx.Timeout(timeout)

    def _moved(self) -> bool:
        """Ask `rediscover` where the backend is; True when it moved (another URL or key), and the client now
        follows it."""
        assert self._rediscover is not None
        try:
            found = self._rediscover()
        except CellboxError:  # can't be found now: the connection error stands
            return False
        if found is None or not found.base_url:
            return False
        if (found.base_url.rstrip("/"), found.api_key) == (self.base_url, self.settings.api_key):
            return False
        self.settings = found
        self.base_url = found.base_url.rstrip("/")
        self._unproven = found.endpoint
        if self._auth_from_settings:
            self._auth = auth_from_settings(found)
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, auth={self.settings.auth!r})"

    def _http_options(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "follow_redirects": False}

    def refused(self, op: Operation[Any]) -> set[str]:
        """The optional fields of `op` this backend has refused (and that are left out from now on)."""
        model = op.json.get("model") if isinstance(op.json, dict) else None
        return self.refused_parameters.setdefault((op.path, model), set())

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, op: Operation[Any], files: Any, body: Any = None
    ) -> httpx.Request:
        # An absolute URL and our own headers, so an `http_client=` given by the caller works as well as ours
        # (the shells pass `self._auth` when sending); one URL parse instead of a relative join per request.
        return http.build_request(
            op.method,
            _url(self.base_url + op.path),
            params=op.params or None,
            json=op.json if body is None else body,
            files=files,
            data=op.form or None,
            headers={**self._headers, **op.headers} if op.headers else self._headers,
            timeout=op.timeout or self.timeout,
        )

    def flow(self, http: httpx.Client | httpx.AsyncClient, op: Operation[T]) -> Generator[Step, Outcome, T]:
        """Run `op`: yields requests to send and sleeps, returns the parsed result or raises a typed error."""
        with ExitStack() as stack:
            files = op.upload.open(stack) if op.upload else None
            attempt = 0
            refused = self.refused(op) if op.optional else set()
            rediscovered = self._rediscover is None
            waited_out = False  # this request met a 429 and waits it out itself
            while True:
                if self._unproven is not None:
                    request, nonce = self._proof_request()
                    outcome = yield Unauthenticated(request)
                    if isinstance(outcome, httpx.Response):
                        self._check_proof(outcome, nonce)
                        continue
                else:
                    wait, slot = self.budget.take(held=not waited_out) if op.path.startswith(_BUDGETED) else (0.0, None)
                    if wait > 0:
                        yield Sleep(wait)
                        continue
                    body = {k: v for k, v in op.json.items() if k not in refused} if op.optional else None
                    request = self._build_request(http, op, files, body)
                    outcome = yield request
                    if slot is not None:
                        self.budget.answered(slot)
                if isinstance(outcome, httpx.TransportError):
                    if isinstance(outcome, _NOT_SENT):
                        # Nothing listened there: whatever answers next must prove itself again.
                        self._unproven = self.settings.endpoint
                    if isinstance(outcome, _NOT_SENT) and not rediscovered:
                        rediscovered = True  # once per request: a backend that moved is looked for, not chased
                        if self._moved():
                            continue  # sent again at once, to where the backend is now
                    delay = self.retry.delay(op, attempt, error=outcome)
                    if delay is None:
                        raise connection_error(outcome, request) from None
                else:
                    assert isinstance(outcome, httpx.Response)
                    self.answer_headers = outcome.headers
                    if outcome.is_success:
                        if op.stream or op.parse is None:  # the response itself, read by the caller
                            streamed: T = outcome  # type: ignore[assignment]
                            return streamed
                        return op.parse(outcome)
                    name = refused_parameter(outcome, op.optional & set(body or ()))
                    if name is not None:  # sent again at once without it; each field is dropped at most once
                        refused.add(name)
                        model = op.json.get("model") if isinstance(op.json, dict) else None
                        self.refusal_reasons[(op.path, model, name)] = error_from_response(outcome).message
                        continue
                    delay = self.retry.delay(op, attempt, response=outcome)
                    if outcome.status_code == 429 and op.path.startswith(_BUDGETED):
                        # Everyone sharing this client waits, not only this request (which waits below).
                        self.budget.hold(parse_retry_after(outcome.headers) or delay or self.retry.backoff(attempt))
                        waited_out = True
                    if delay is None:
                        raise error_from_response(outcome)
                yield Sleep(delay)
                attempt += 1

    def _proof_request(self) -> tuple[httpx.Request, str]:
        # Built bare, not by the httpx client, so no default header or cookie of one given by the caller goes along.
        nonce = endpoint.new_nonce()
        url = httpx.URL(endpoint.proof_url(self.base_url), params={"nonce": nonce})
        headers = {"User-Agent": self._headers["User-Agent"], "Accept": "application/json"}
        return httpx.Request("GET", url, headers=headers, extensions={"timeout": self.timeout.as_dict()}), nonce

    def _check_proof(self, response: httpx.Response, nonce: str) -> None:
        """Trusts the endpoint file's server from now on if `response` proves it holds the token; else raises."""
        found = self._unproven
        assert found is not None
        try:
            answer = response.json().get("proof") if response.status_code == 200 else None
        except (ValueError, AttributeError):
            answer = None
        if not endpoint.proves(found.token, nonce, answer):
            raise ConfigurationError(endpoint.not_proven(found))
        self._unproven = None


_BUDGETED = "/containers"  # the endpoints the request budget counts (budget.py)


@functools.lru_cache(maxsize=256)
def _url(text: str) -> httpx.URL:
    """A URL parsed once: httpx parses one given as text on every request, and a session asks for the same few
    (its container's files, `/responses`) every cell. URLs are immutable, so one is shared."""
    return httpx.URL(text)
