"""The background tidy-up: jobs in order, off the caller's thread, errors kept from the caller, `wait` to finish."""

from __future__ import annotations

import threading
import time

from cellbox.session import cleanup
from cellbox.session.cleanup import Cleanup


def test_jobs_run_in_order_off_the_callers_thread_and_wait_sees_them_done() -> None:
    done: list[tuple[int, str]] = []
    gate = threading.Event()
    work = Cleanup()
    work.later(gate.wait)
    for n in range(5):
        work.later(lambda n=n: done.append((n, threading.current_thread().name)))
    assert done == [] and not work.wait(timeout=0.05)  # the caller didn't wait for them
    gate.set()
    assert work.wait(timeout=5)
    assert [n for n, _ in done] == [0, 1, 2, 3, 4]
    assert len({name for _, name in done}) == 1 and done[0][1] != threading.current_thread().name


def test_a_failing_job_is_not_raised_and_the_next_still_runs() -> None:
    done: list[str] = []
    work = Cleanup()
    work.later(lambda: 1 / 0)
    work.later(lambda: done.append("after"))
    assert work.wait(timeout=5) and done == ["after"]


def test_the_worker_ends_when_idle_and_comes_back_for_new_work(monkeypatch) -> None:
    monkeypatch.setattr(cleanup, "IDLE", 0.05)
    work = Cleanup()
    work.later(lambda: None)
    assert work.wait(timeout=5)
    deadline = time.monotonic() + 5
    while work._worker is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert work._worker is None  # an idle sandbox holds no thread
    done: list[int] = []
    work.later(lambda: done.append(1))
    assert work.wait(timeout=5) and done == [1]


def test_leftovers_wait_for_a_quiet_moment_unless_asked_for_now(monkeypatch) -> None:
    monkeypatch.setattr(cleanup, "SETTLE", 0.3)
    done: list[float] = []
    work = Cleanup()
    with work.running():
        work.later(lambda: done.append(time.monotonic()))
        time.sleep(0.4)
        assert done == []  # not while a cell runs
        ended = time.monotonic()
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done and done[0] - ended >= 0.3  # and not until SETTLE seconds without a cell
    with work.running():
        work.later(lambda: done.append(time.monotonic()))
        assert work.wait(timeout=5) and len(done) == 2  # a closing sandbox has them done at once


def test_too_many_leftovers_go_one_per_new_one_while_cells_keep_running(monkeypatch) -> None:
    monkeypatch.setattr(cleanup, "MAX_PENDING", 3)
    done: list[int] = []
    work = Cleanup()
    with work.running():
        for n in range(5):
            work.later(lambda n=n: done.append(n))
        deadline = time.monotonic() + 5
        while len(done) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert done == [0, 1]  # down to MAX_PENDING waiting, in order
    assert work.wait(timeout=5) and done == [0, 1, 2, 3, 4]


def test_a_cell_ending_wakes_no_thread(monkeypatch) -> None:
    """The tidy-up thread looks again by itself: waking it as a cell ended cost a notebook kernel finishing that
    cell ~1.3 ms. Its leftovers still go once the sandbox is quiet."""
    monkeypatch.setattr(cleanup, "SETTLE", 0.2)
    work = Cleanup()
    woken: list[str] = []

    class Counted(threading.Condition):
        def notify_all(self) -> None:
            woken.append(threading.current_thread().name)
            super().notify_all()

    work._settled = Counted(work._lock)
    done: list[float] = []
    for _ in range(3):
        with work.running():
            work.later(lambda: done.append(time.monotonic()))
            time.sleep(0.05)
    ended = time.monotonic()
    assert woken == []  # three cells ended, nobody woken
    deadline = time.monotonic() + 5
    while len(done) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(done) == 3 and done[0] - ended >= 0.2 * 0.9
