"""How many requests a client sends to the container endpoints a minute: one budget for everything that shares the
client (a pool's parts, a notebook's sandboxes), since the service counts them per organisation (OpenAI: 100 a
minute for `/containers…` [Doc], docs/CLOUD.md).

A request waits for room in the last minute's window rather than meet a 429; a 429 that says when to come back
(Retry-After) holds every request to those endpoints until then, not only the one that met it. Reads that are
a courtesy (a running cell's live output) ask `spare()` first and leave the room to the calls that matter.
"""

from __future__ import annotations

import collections
import threading
import time

# What the clouds document, by backend; None: no known limit (429s are still honoured).
DOCUMENTED_PER_MINUTE = {"openai": 100}
# The share of a documented limit a client budgets for: the service's minute and ours don't start together.
SHARE = 0.9
WINDOW = 60.0


def default_per_minute(backend: str) -> int | None:
    """The budget of a client of `backend` when none is configured."""
    documented = DOCUMENTED_PER_MINUTE.get(backend)
    return None if documented is None else int(documented * SHARE)


class RequestBudget:
    """At most `per_minute` requests in any minute (None: no bound but the service's 429s)."""

    def __init__(self, per_minute: int | None, window: float = WINDOW) -> None:
        self.per_minute = per_minute
        self.window = window  # a minute, but for tests
        self._sent: collections.deque[float] = collections.deque()
        self._held_until = 0.0
        self._lock = threading.Lock()

    def take(self, held: bool = True) -> float:
        """Seconds to wait before a request may go; 0.0 when it may go now (and it is counted). A request that
        has itself waited out a 429 (`held=False`) is not held again by it."""
        with self._lock:
            now = time.monotonic()
            if held and now < self._held_until:
                return self._held_until - now
            self._forget(now)
            if self.per_minute is not None and len(self._sent) >= self.per_minute:
                return self._sent[0] + self.window - now
            self._sent.append(now)
            return 0.0

    def hold(self, seconds: float) -> None:
        """The service said to come back in `seconds` (a 429's Retry-After): every request waits until then."""
        with self._lock:
            self._held_until = max(self._held_until, time.monotonic() + seconds)

    def spare(self) -> int:
        """Requests that may still go in this minute's window (a large number when there is no bound); 0 while
        held by a 429."""
        with self._lock:
            now = time.monotonic()
            if now < self._held_until:
                return 0
            self._forget(now)
            return 1 << 30 if self.per_minute is None else self.per_minute - len(self._sent)

    def sent_in_last_minute(self) -> int:
        with self._lock:
            self._forget(time.monotonic())
            return len(self._sent)

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
