"""The background tidy-up: jobs in order, off the caller's thread, errors kept from the caller, `wait` to finish."""

from __future__ import annotations

import threading
import time

from cellbox import tidy
from cellbox.tidy import Tidy


def test_jobs_run_in_order_off_the_callers_thread_and_wait_sees_them_done() -> None:
    done: list[tuple[int, str]] = []
    gate = threading.Event()
    work = Tidy()
    work.later(gate.wait)
    for n in range(5):
        work.later(lambda n=n: done.append((n, threading.current_thread().name)))
    assert done == [] and not work.wait(timeout=0.05)  # the caller didn't wait for them
    gate.set()
    assert work.wait(timeout=5)
    assert [n for n, _ in done] == [0, 1, 2, 3, 4] and {name for _, name in done} == {"cellbox-tidy"}


def test_a_failing_job_is_not_raised_and_the_next_still_runs() -> None:
    done: list[str] = []
    work = Tidy()
    work.later(lambda: 1 / 0)
    work.later(lambda: done.append("after"))
    assert work.wait(timeout=5) and done == ["after"]


def test_the_thread_ends_when_idle_and_comes_back_for_new_work(monkeypatch) -> None:
    monkeypatch.setattr(tidy, "IDLE", 0.05)
    work = Tidy()
    work.later(lambda: None)
    assert work.wait(timeout=5)
    deadline = time.monotonic() + 5
    while work._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert work._thread is None  # no thread left behind by an idle sandbox
    done: list[int] = []
    work.later(lambda: done.append(1))
    assert work.wait(timeout=5) and done == [1]
