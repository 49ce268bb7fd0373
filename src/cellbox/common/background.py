"""Work beside a cell (its request's upload, the reading of its response's events, a pool's parts, the tidy-up) on
daemon threads kept between cells: the one executor of the client. Starting a thread makes the caller wait until it
runs, about a millisecond on a busy host, twice a cell; a thread kept idle takes the next job at once. Threads are
made as more jobs run at once than ever before (a pool running many sandboxes), and stay; they are daemons, so a job
blocked on the network never holds up the process's exit.

`Bounded` and `parallel` run work a few at a time (transfers, a pool's creates and deletes) on those same threads:
the bound is how many jobs run at once, not how many threads exist."""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]

_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_idle = threading.Semaphore(0)  # threads waiting for a job
_numbers = itertools.count(1)


def in_background(work: Callable[..., T], *args: Any) -> Future[T]:
    """`work(*args)` on a kept thread; its future (errors are set on it, never raised in the thread)."""
    future: Future[T] = Future()
    _jobs.put((future, work, args))
    if not _idle.acquire(blocking=False):
        threading.Thread(target=_serve, name=f"cellbox-background-{next(_numbers)}", daemon=True).start()
    return future


class Bounded:
    """Jobs on the kept threads, at most `most` of them running at once; the others wait their turn, in order. A
    waiting job's future can be cancelled: it never starts."""

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Job] = collections.deque()
        self._running = 0  # kept threads taking this one's jobs

    def submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._waiting.append((future, work, args))
            if self._running >= self.most:
                return future
            self._running += 1
        in_background(self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._running -= 1
                    return
                future, work, args = self._waiting.popleft()
            _settle(future, work, args)
            del future, work, args


def parallel(work: Callable[[T], R], items: Iterable[T], most: int) -> list[R]:
    """`work(item)` for every item, at most `most` at once, on kept threads; the results in the items' order. On the
    first error (in the items' order) or an interrupt, the items not started never are, those running are waited
    for, and the error is raised."""
    bounded = Bounded(most)
    futures = [bounded.submit(work, item) for item in items]
    try:
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.cancel()
        wait(futures)


def _serve() -> None:
    while True:
        future, work, args = _jobs.get()
        if not future.set_running_or_notify_cancel():
            _idle.release()
            continue
        result, error = _call(work, args)
        # Idle before the caller hears: a job it sends on hearing finds this thread, not a new one.
        _idle.release()
        _set(future, result, error)
        del future, work, args, result, error  # a finished job's values are not kept alive by an idle thread


def _settle(future: Future[Any], work: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if future.set_running_or_notify_cancel():
        _set(future, *_call(work, args))


def _call(work: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, BaseException | None]:
    try:
        return work(*args), None
    except BaseException as exc:  # set on the future, never raised in a kept thread
        return None, exc


def _set(future: Future[Any], result: Any, error: BaseException | None) -> None:
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
