"""Following a background response by its event stream: the run's end is known the moment it happens.

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

from .api import CellboxError, Response
from .api.events import ResponseEvents

log = logging.getLogger("cellbox")

PENDING_STATUSES = ("queued", "in_progress")


class Following:
    """The events of one streamed response: `first()` in the caller's thread, then the rest in a thread of
    their own (`follow()`); `wait()` until the stream ends, `latest` is the last response an event carried."""

    def __init__(self, events: ResponseEvents) -> None:
        self._events = events
        self._iterator = iter(events)
        self._ended = threading.Event()

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
        threading.Thread(target=self._read, name="cellbox-response-events", daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self._iterator:
                if event.response is not None and event.response.status not in PENDING_STATUSES:
                    break
        except Exception as exc:  # broken off (or closed by `stop`): the caller polls from here
            log.debug("cellbox: the response's event stream broke off: %s", exc)
        finally:
            self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._events.close()
        self._ended.set()

    def stop(self) -> None:
        """The caller is done with the response: a stream still open (gone quiet, say) is closed, not left to a
        thread waiting on it for good."""
        self._close()

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the stream to end; whether it has."""
        return self._ended.wait(seconds)
