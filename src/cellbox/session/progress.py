"""Progress of what the user asked for — a cell, a push, a pull — as one line of phases: serializing, uploading,
running, downloading, reading.

An `Operation` is one such action. The steps inside it (pushing each value, reading each output back) are handed
the operation in progress and report their phases to it (`step` joins it), so a cell with inputs and outputs shows
one line from the first row serialized to the last row read, and says "done" only once all of it is; a step handed
none (a push from Python) makes its own. Nothing is shown until a phase moves at least `MIN_BYTES` (a line
that flashes by is noise) or the operation is asked to (`indicate`: the "running in NAME" line of a quiet cell).

How it looks is the tracker's business (`views.TransferProgress` in a notebook): the operation makes one with the
factory it was given when it is first shown, calls `refresh(operation)` on each change worth showing (at most
every `REFRESH` seconds for byte counts; uploads and downloads count on worker threads) and `close(operation)`
once, at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Protocol

from ..common import text

MIN_BYTES = 8 * 1024 * 1024
REFRESH = 0.1  # seconds between refreshes for byte counts; a new phase shows at once

# Phases that are said once done only when they took this long: hashing files to see what changed is usually
# instant, and then not worth a word.
BRIEF = {"checking": 0.5}
PAST = {
    "checking": "checked",
    "serializing": "serialized",
    "uploading": "uploaded",
    "running": "ran",
    "downloading": "downloaded",
    "reading": "read",
}


class Tracker(Protocol):
    def refresh(self, operation: Operation) -> None: ...

    def close(self, operation: Operation) -> None: ...


TrackerFactory = Callable[["Operation"], Tracker]


@dataclasses.dataclass
class Phase:
    """One kind of work in an operation. Steps that do the same kind of work (two values serialized) add to one
    phase, so the line names each kind once."""

    name: str
    unit: str  # "B", "rows", or "" for work measured in time only
    total: int = 0
    done: int = 0
    size: int = 0  # bytes it moves (or, serializing, holds in memory): what makes it worth showing
    seconds: float = 0.0  # time spent in it, over every time it was the current phase
    since: float | None = None  # when it last became the current phase
    items: list[str] = dataclasses.field(default_factory=list)  # what it worked on (variable names)

    def elapsed(self, now: float) -> float:
        return self.seconds + (now - self.since if self.since is not None else 0.0)

    def describe(self, now: float) -> str:
        """`uploading 45.0 MB of 135.1 MB, 120.3 MB/s` while current; `uploaded 135.1 MB in 1.1 s` once not."""
        current = self.since is not None
        elapsed = self.elapsed(now)
        verb = self.name if current else PAST.get(self.name, self.name)
        if self.unit == "":
            return f"{verb} {elapsed:.0f} s" if current else f"{verb} {elapsed:.1f} s"
        what = self._amount(current)
        if current:
            rate = f", {text.size(int(self.done / elapsed))}/s" if self.unit == "B" and elapsed > 0.2 else ""
            return f"{verb} {what}{rate}"
        return f"{verb} {what} in {elapsed:.1f} s"

    def _amount(self, current: bool) -> str:
        named = ", ".join(self.items) if len(self.items) <= 3 else f"{len(self.items)} values"
        if self.unit == "B":  # a listing may not say a file's size: then only what has come so far
            known = current and self.total >= self.done and self.total > 0
            amount = f"{text.size(self.done)} of {text.size(self.total)}" if known else text.size(self.done)
        elif current and 0 < self.done < self.total:  # none done yet: work that reports only when it ends
            amount = f"{self.done:,} of {self.total:,} {self.unit}"
        else:
            amount = f"{self.total:,} {self.unit}"
        return f"{named} ({amount})" if named else amount


class Operation:
    """One action of the user's, as phases. Thread-safe: `update` is called from transfer threads."""

    def __init__(self, factory: TrackerFactory | None, label: str) -> None:
        self.factory = factory
        self.label = label
        self.phases: list[Phase] = []
        self.big = False  # a phase moved MIN_BYTES or more: the line shows, and stays once done
        self.indicator: str | None = None  # what shows while nothing big happened (a quiet cell's running line)
        self.outcome: str | None = None  # once closed: "done", "stopped", "failed" or "unchanged, nothing sent"
        self.started = time.monotonic()
        self.ended: float | None = None
        self._lock = threading.RLock()
        self._tracker: Tracker | None = None
        self._shown_at = 0.0

    # --- what steps report ------------------------------------------------------------------------------------

    def phase(
        self, name: str, total: int = 0, unit: str = "B", *, size: int | None = None, items: Sequence[str] = ()
    ) -> None:
        """Start phase `name` (ending the current one); `total` is in `unit`, `items` name what it works on. The
        phase is big enough to show when `size` (bytes; `total` for a phase counted in bytes) is MIN_BYTES or
        more."""
        with self._lock:
            now = time.monotonic()
            self._stop_current(now)
            found = next((p for p in self.phases if p.name == name), None)
            if found is None:
                found = Phase(name, unit)
                self.phases.append(found)
            found.total += total
            found.size += size if size is not None else (total if unit == "B" else 0)
            found.since = now
            found.items.extend(item for item in items if item not in found.items)
            self.big = self.big or found.size >= MIN_BYTES
            self._refresh(force=True)

    def update(self, n: int) -> None:
        """`n` more of the current phase's unit done (negative: a re-read going back)."""
        with self._lock:
            current = self.current
            if current is None:
                return
            current.done = max(0, current.done + n)
            self._refresh()

    def end_phase(self) -> None:
        """The current phase is finished and nothing follows yet."""
        with self._lock:
            self._stop_current(time.monotonic())
            self._refresh(force=True)

    def retract(self, total: int, size: int = 0, item: str = "") -> None:
        """Take back what the current phase was started with, which turned out to need no work (a value that had
        not changed since it was last sent): the phase goes when nothing else is left in it, and the line with it
        when nothing else made it worth showing."""
        with self._lock:
            current = self.current
            if current is None:
                return
            current.total -= total
            current.size -= size
            if item in current.items:
                current.items.remove(item)
            current.since = None
            if current.total <= 0 and not current.items and not current.seconds:
                self.phases.remove(current)
            self.big = any(p.size >= MIN_BYTES for p in self.phases)
            self._refresh(force=True)

    def tick(self) -> None:
        """Show the time going by in a phase that counts nothing (running)."""
        with self._lock:
            self._refresh()

    def indicate(self, line: str) -> None:
        """Show `line` while nothing big is under way (the running line of a quiet cell)."""
        with self._lock:
            self.indicator = line
            self._refresh(force=True)

    @property
    def current(self) -> Phase | None:
        return next((p for p in self.phases if p.since is not None), None)

    def _stop_current(self, now: float) -> None:
        for p in self.phases:
            if p.since is not None:
                p.seconds += now - p.since
                p.since = None

    # --- the end ----------------------------------------------------------------------------------------------

    def close(self, error: BaseException | None = None) -> None:
        """The action ended: `error` is what stopped it, if anything did."""
        with self._lock:
            if self.outcome is not None:
                return
            now = time.monotonic()
            if error is not None:  # the phase it stopped in stays current: the line says where it stopped
                self.outcome = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
            else:
                self._stop_current(now)
                self.outcome = "done" if self.phases else "unchanged, nothing sent"
            self.ended = now
            if self._tracker is not None:
                self._tracker.close(self)

    # --- how it reads -----------------------------------------------------------------------------------------

    def describe(self) -> str:
        """The line: `LABEL: serialized big (5,000,000 rows) in 0.8 s · uploading 45.0 MB of 135.1 MB, 120.3 MB/s`,
        ending `· done in 2.1 s` (or where it stopped)."""
        with self._lock:
            now = self.ended or time.monotonic()
            done = [
                p.describe(now) for p in self.phases if p.since is None and p.elapsed(now) >= BRIEF.get(p.name, 0.0)
            ]
            current = [p.describe(now) for p in self.phases if p.since is not None]
            parts = done + current
            if self.outcome == "done":
                parts.append(f"done in {now - self.started:.1f} s")
            elif self.outcome is not None:
                parts.append(self.outcome)
            return f"{self.label}: {' · '.join(parts)}"

    def fraction(self) -> float | None:
        """How far the current phase is (None: it can't say, e.g. running); 1.0 once the operation is done."""
        with self._lock:
            if self.outcome == "done":
                return 1.0
            current = self.current
            if current is None:
                return 1.0 if self.phases else None
            if not current.unit or not current.total or (current.unit != "B" and not current.done):
                return None
            return min(1.0, current.done / current.total)

    @property
    def shown(self) -> bool:
        return self._tracker is not None

    def _refresh(self, force: bool = False) -> None:
        if self.factory is None or not (self.big or self.indicator is not None or self._tracker is not None):
            return
        now = time.monotonic()
        if self._tracker is None:
            self._shown_at = now
            self._tracker = self.factory(self)  # shows the operation as it is now
        elif force or now - self._shown_at >= REFRESH:
            self._shown_at = now
            self._tracker.refresh(self)


@contextlib.contextmanager
def step(factory: TrackerFactory | None, label: str, within: Operation | None = None) -> Iterator[Operation]:
    """`within`, the operation in progress, while it goes on; else a new one labelled `label` (shown through
    `factory`) for this block, closed at its end."""
    if within is not None and within.outcome is None:
        yield within
        return
    operation = Operation(factory, label)
    try:
        yield operation
    except BaseException as exc:
        operation.close(exc)
        raise
    operation.close()


def names(items: list[str], most: int = 3) -> str:
    """`a, b` or `a, b, c and 4 more`: what a label names."""
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most} more"


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
