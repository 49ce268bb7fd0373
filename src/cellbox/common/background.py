"""Work beside a cell (its request's upload, the reading of its response's events) on daemon threads kept between
cells. Starting a thread makes the caller wait until it runs, about a millisecond on a busy host, twice a cell;
a thread kept idle takes the next job at once. Threads are made as more jobs run at once than ever before (a pool
running many sandboxes), and stay; they are daemons, so a job blocked on the network never holds up the process's
exit."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
_idle = threading.Semaphore(0)  # threads waiting for a job
_numbers = itertools.count(1)


def in_background(work: Callable[..., T], *args: Any) -> Future[T]:
    """`work(*args)` on a kept thread; its future (errors are set on it, never raised in the thread)."""
    future: Future[T] = Future()
    _jobs.put((future, work, args))
    if not _idle.acquire(blocking=False):
        threading.Thread(target=_serve, name=f"cellbox-background-{next(_numbers)}", daemon=True).start()
    return future


def _serve() -> None:
    while True:
        future, work, args = _jobs.get()
        if not future.set_running_or_notify_cancel():
            _idle.release()
            continue
        try:
            result, error = work(*args), None
        except BaseException as exc:
            result, error = None, exc
        # Idle before the caller hears: a job it sends on hearing finds this thread, not a new one.
        _idle.release()
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        del future, work, args, result, error  # a finished job's values are not kept alive by an idle thread
