"""EventStream a background response by its event stream: the run's end is known the moment it happens.

Polling learns that a quick cell ended only at its next look, milliseconds to a second late; the stream says so
at once. Its events are read in a daemon thread, because the cell's own thread must stay free meanwhile: to show
the live output, keep the time limit and take an interrupt (a run may also be quiet for hours). A stream that
ends before the response does (a proxy cutting an idle connection, a backend that answered with JSON) only
leaves the caller to poll, as it would have without one.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from ..api import CellboxError, Response
from ..api.events import ResponseEvents
from ..common.background import in_background

log = logging.getLogger("cellbox")

PENDING_STATUSES = ("queued", "in_progress")
# Seconds the last bytes of a stream whose response has ended are waited for: a stream read to its end leaves its
# connection free for the next request (over TLS, a handshake saved per cell); one closed early takes it down.
# A backend (or a proxy before it) that kept a finished stream open past DRAIN is not waited for again.
DRAIN = 0.05
_lingering: set[str] = set()  # such backends, by host and port


class EventStream:
    """The events of one streamed response: `first()` in the caller's thread, then the rest in a thread of
    their own (`follow()`); `wait()` until the response ends or the stream does, `latest` is the last response an
    event carried; `stop()` when done with it."""

    def __init__(self, events: ResponseEvents) -> None:
        self._events = events
        self._iterator = iter(events)
        self._over = threading.Event()  # the response ended, or the stream did: the caller goes on
        self._ended = threading.Event()  # the stream was read to its end, or closed

    @property
    def latest(self) -> Response | None:
        return self._events.response  # the events keep the last response any of them carried

    def first(self) -> Response:
        """The response as the backend first tells of it (its id and status): the events up to the first that
        carries it. An `error` event before it is said in the exception."""
        said = ""
        try:
            for event in self._iterator:
                if event.response is not None:
                    return event.response
                if event.type == "error":
                    said = f": {getattr(event, 'message', None) or 'an error event'}"
        except BaseException:
            self._close()
            raise
        self._close()
        raise CellboxError(f"the backend's event stream ended before it named the response{said}")

    def follow(self) -> None:
        """Read the rest of the events in a daemon thread, unless the stream has nothing more to say."""
        if self.latest is not None and self.latest.status not in PENDING_STATUSES:
            self._close()
            return
        in_background(self._read)

    def _read(self) -> None:
        try:
            for event in self._iterator:
                if event.response is not None and event.response.status not in PENDING_STATUSES:
                    self._over.set()  # and on to the stream's end, which follows
        except Exception as exc:  # broken off (or closed by `stop`): the caller polls from here
            log.debug("cellbox: the response's event stream broke off: %s", exc)
        finally:
            self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._events.close()
        self._ended.set()
        self._over.set()

    def stop(self) -> None:
        """The caller is done with the response: a stream still open (gone quiet, say) is closed, not left to a
        thread waiting on it for good; one whose response has ended gets DRAIN seconds to end first."""
        where = self._events.http_response.request.url.netloc.decode("ascii", "replace")
        if self._over.is_set() and where not in _lingering and not self._ended.wait(DRAIN):
            _lingering.add(where)
        self._close()

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the response, or the stream, to end; whether one has."""
        return self._over.wait(seconds)
