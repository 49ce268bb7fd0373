"""How cellbox paces its calls and its waits: looks again that back off (or keep a fixed step) until a deadline,
and independent transfers a few at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .background import parallel as _bounded

MAX_WORKERS = 8
FIRST_DELAY = 0.1
MAX_DELAY = 2.0


class Backoff:
    """Delays that grow by half from `first` up to `most`, until `limit` seconds have passed; with `first` equal to
    `most`, a look every `first` seconds. Waiting for a condition until a deadline:

        pause = Backoff(timeout, first=0.05, most=0.05)
        while not condition():
            if not pause.wait():
                raise ...  # the time is up
    """

    def __init__(self, limit: float, first: float = FIRST_DELAY, most: float = MAX_DELAY) -> None:
        self.deadline = time.monotonic() + limit
        self.delay = first
        self.most = most

    def wait(self) -> bool:
        """Sleep before the next try; False (without sleeping) when the time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(self.delay, left))
        self.delay = min(self.most, self.delay * 1.5)
        return True


def parallel(work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """`work(item)` for each item, MAX_WORKERS at once on the kept threads (one alone on the caller's); results in
    order."""
    if len(items) <= 1:
        return [work(item) for item in items]
    return _bounded(work, items, MAX_WORKERS)
