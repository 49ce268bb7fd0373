"""How many requests a client sends to the container endpoints a minute: one budget for everything that shares the
client (a pool's parts, a notebook's sandboxes), since the service counts them per organisation (OpenAI: 100 a
minute for `/containers…` [Doc], docs/CLOUD.md).

A request waits for room in the last minute's window rather than meet a 429; a 429 that says when to come back
(Retry-After) holds every request to those endpoints until then, not only the one that met it. Reads that are
a courtesy (a running cell's live output) ask `spare()` first and leave the room to the calls that matter.
"""

from __future__ import annotations

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


class Slot:
    """One request's place in the window: from when it was sent until a minute after its answer came, the latest
    it can have reached the service (whose minute counts arrivals: a request held up on its way must not let the
    next one in early)."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


class RequestBudget:
    """At most `per_minute` requests in any minute (None: no bound but the service's 429s)."""

    def __init__(self, per_minute: int | None, window: float = WINDOW) -> None:
        self.per_minute = per_minute
        self.window = window  # a minute, but for tests
        self._slots: list[Slot] = []
        self._held_until = 0.0
        self._lock = threading.Lock()

    def take(self, held: bool = True) -> tuple[float, Slot | None]:
        """(seconds to wait, None) before a request may go, or (0.0, its slot) when it may go now; `answered(slot)`
        once its answer (or failure) came. A request that has itself waited out a 429 (`held=False`) is not held
        again by it."""
        with self._lock:
            now = time.monotonic()
            if held and now < self._held_until:
                return self._held_until - now, None
            self._forget(now)
            if self.per_minute is not None and len(self._slots) >= self.per_minute:
                return min(slot.at for slot in self._slots) + self.window - now, None
            slot = Slot(now)
            self._slots.append(slot)
            return 0.0, slot

    def answered(self, slot: Slot) -> None:
        with self._lock:
            slot.at = time.monotonic()

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
            return 1 << 30 if self.per_minute is None else self.per_minute - len(self._slots)

    def sent_in_last_minute(self) -> int:
        with self._lock:
            self._forget(time.monotonic())
            return len(self._slots)

    def _forget(self, now: float) -> None:
        self._slots = [slot for slot in self._slots if slot.at > now - self.window]
