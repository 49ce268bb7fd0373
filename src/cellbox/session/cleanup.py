"""cellbox's own leftovers (a run's stored response, a request the runtime never got to remove) deleted off the
cell's critical path: a cell returns as soon as its results are in, and the deletes follow on a kept thread
(`common.background`), in order, once the sandbox is quiet (no cell running, none for SETTLE seconds). Deleting
while the next cell runs, or while a notebook kernel finishes the cell just run, slows them: the kernel's own
threads and the delete's wait on each other. Cells run back to back let their leftovers wait, up to MAX_PENDING,
then one goes per new one. The worker starts when there is work and gives its thread back when it has been idle a
while; `wait` (a closing sandbox, the interpreter's exit) has them done at once."""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future

from ..common.background import in_background

log = logging.getLogger("cellbox")

IDLE = 5.0  # seconds without work before the worker gives its thread back
SETTLE = 0.5  # seconds without a cell before leftovers are deleted
MAX_PENDING = 100  # leftovers kept waiting for a quiet moment, at most
AT_EXIT = 2.0  # seconds the interpreter's exit waits for leftovers

_all: weakref.WeakSet[Cleanup] = weakref.WeakSet()


class Cleanup:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending = 0
        self._running = 0  # cells running now
        self._quiet_since = time.monotonic()  # when the last cell ended
        self._urgent = 0  # callers of `wait`: everything now
        self._worker: Future[None] | None = None
        _all.add(self)

    def later(self, job: Callable[[], object]) -> None:
        """Run `job` once the sandbox is quiet, after those queued before it; its errors are logged, never
        raised."""
        with self._lock:
            self._pending += 1
            if self._worker is None:
                self._worker = in_background(self._work)
        self._jobs.put(job)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around a cell: leftovers wait until it has ended and SETTLE seconds more have passed without a cell."""
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._quiet_since = time.monotonic()
                # Nobody is woken: the thread looks again by itself. Waking it as a cell ends cost a notebook
                # kernel finishing that cell ~1.3 ms (the two threads' turns at the interpreter).

    def wait(self, timeout: float = 10.0) -> bool:
        """Until every queued job has run (True), or `timeout` seconds (False); they run now, quiet or not."""
        with self._lock:
            self._urgent += 1
            self._settled.notify_all()
            try:
                return self._settled.wait_for(lambda: self._pending == 0, timeout)
            finally:
                self._urgent -= 1

    def _quiet(self) -> None:
        """Returns when the next job may run: the sandbox is quiet, too many wait, or `wait` wants them now. It
        looks every SETTLE seconds while a cell runs, then when the quiet would be long enough."""
        with self._lock:
            while not self._urgent and self._pending <= MAX_PENDING:
                quiet_for = time.monotonic() - self._quiet_since
                if not self._running and quiet_for >= SETTLE:
                    return
                self._settled.wait(SETTLE - quiet_for if not self._running else SETTLE)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE)
            except queue.Empty:
                with self._lock:
                    if self._pending == 0:  # `later` starts a new worker for work that comes after this
                        self._worker = None
                        return
                continue
            self._quiet()
            try:
                job()
            except Exception:  # a leftover left is untidy, not wrong
                log.debug("cellbox: tidying up failed", exc_info=True)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._settled.notify_all()


@atexit.register
def _at_exit() -> None:
    """Leftovers still waiting for a quiet moment are deleted before the interpreter goes (briefly: best effort)."""
    for tidy in list(_all):
        tidy.wait(AT_EXIT)
