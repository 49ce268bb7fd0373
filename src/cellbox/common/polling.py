"""How cellbox paces its calls to the backend: retries that back off within a bound, and independent transfers a
few at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MAX_WORKERS = 8
FIRST_DELAY = 0.1
MAX_DELAY = 2.0


class Backoff:
    """Delays that grow by half from `first` up to `most`, until `limit` seconds have passed."""

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
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
        return list(pool.map(work, items))
