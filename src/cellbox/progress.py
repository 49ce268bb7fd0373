"""Progress of pushes and pulls: bytes moved out of a total, reported from the transfer threads.

`Sandbox` reports to whatever `Tracker` factory it is given (the magics give it a progress view); by default,
nothing is shown. Transfers smaller than `MIN_BYTES` report nothing: a bar that flashes by is noise.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import IO, Protocol

MIN_BYTES = 8 * 1024 * 1024


class Tracker(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


TrackerFactory = Callable[[str, int], Tracker]  # (label, total bytes) -> tracker


class Counter:
    """A thread-safe running total shared by the workers of one transfer."""

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self._tracker.update(n)


def start(factory: TrackerFactory | None, label: str, total: int) -> Counter | None:
    if factory is None or total < MIN_BYTES:
        return None
    return Counter(factory(label, total))


def finish(counter: Counter | None) -> None:
    if counter is not None:
        counter._tracker.close()


class CountingReader(io.RawIOBase):
    """A binary file that reports how far it has been read; seek, tell and fileno pass through (httpx sizes the
    body by them). Seeking back reports a negative step, so a re-read (a retry, a signing pass) isn't counted
    twice."""

    def __init__(self, raw: IO[bytes], report: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._report = report
        self.name = getattr(raw, "name", None)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._report(len(data))
        return data

    def _moved(self, before: int) -> None:
        step = self._raw.tell() - before
        if step:
            self._report(step)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        before = self._raw.tell()
        position = self._raw.seek(offset, whence)
        self._moved(before)
        return position

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()
