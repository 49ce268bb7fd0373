"""cellbox's own leftovers (a run's stored response, a request the runtime never got to remove) deleted off the
cell's critical path: a cell returns as soon as its results are in, and the deletes follow on a thread of their
own, in order. The thread starts when there is work and ends when it has been idle a while; `wait` lets a
closing sandbox finish them first."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("cellbox")

IDLE = 5.0  # seconds without work before the thread ends


class Tidy:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None

    def later(self, job: Callable[[], object]) -> None:
        """Run `job` soon, after those queued before it; its errors are logged, never raised."""
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="cellbox-tidy", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def wait(self, timeout: float = 10.0) -> bool:
        """Until every queued job has run (True), or `timeout` seconds (False)."""
        with self._lock:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE)
            except queue.Empty:
                with self._lock:
                    if self._pending == 0:  # `later` starts a new thread for work that comes after this
                        self._thread = None
                        return
                continue
            try:
                job()
            except Exception:  # a leftover left is untidy, not wrong
                log.debug("cellbox: tidying up failed", exc_info=True)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._settled.notify_all()
