"""Work beside a cell: on kept daemon threads, results and errors through the future, no thread made per job;
a few at a time within a bound."""

from __future__ import annotations

import threading
import time

import pytest

from cellbox.common.background import Bounded, in_background, parallel


def test_jobs_run_off_the_callers_thread_and_their_errors_come_through_the_future() -> None:
    assert in_background(lambda: threading.current_thread()).result(5) is not threading.current_thread()
    assert in_background(sum, [1, 2, 3]).result(5) == 6
    with pytest.raises(ZeroDivisionError):
        in_background(lambda: 1 / 0).result(5)
    assert in_background(lambda: threading.current_thread().daemon).result(5)  # never holds up the process's exit


def test_one_job_after_another_reuses_a_thread_and_jobs_at_once_get_one_each() -> None:
    def kept() -> int:
        return sum(1 for thread in threading.enumerate() if thread.name.startswith("cellbox-background"))

    in_background(lambda: None).result(5)
    before = kept()
    names = set()
    for _ in range(20):  # each sent the moment the one before is heard of
        names.add(in_background(lambda: threading.current_thread().name).result(5))
    # No thread made for them: the kept ones took them (earlier tests may have left more than one idle).
    assert kept() == before and names <= {
        t.name for t in threading.enumerate() if t.name.startswith("cellbox-background")
    }
    gate = threading.Event()
    blocked = [in_background(gate.wait, 5) for _ in range(4)]  # four at once: none waits for another to end
    assert in_background(lambda: "free").result(5) == "free"
    gate.set()
    assert all(job.result(5) for job in blocked)


def test_parallel_keeps_the_order_and_its_bound_on_the_kept_threads() -> None:
    lock = threading.Lock()
    now, most, names = [0], [0], set()

    def work(n: int) -> int:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
            names.add(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return n * n

    assert parallel(work, range(12), 3) == [n * n for n in range(12)]
    assert most[0] <= 3 and all(name.startswith("cellbox-background") for name in names)
    assert parallel(work, [], 3) == []


def test_parallel_raises_the_first_error_after_those_running_ended_and_starts_no_more() -> None:
    started: list[int] = []
    ended: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("zero")
        time.sleep(0.2)
        ended.append(n)
        return n

    with pytest.raises(ValueError, match="zero"):
        parallel(work, range(10), 2)
    assert sorted(ended) == sorted(n for n in started if n != 0)  # nothing left running behind the caller
    assert len(started) <= 3  # 0 and 1 at once, perhaps one more taken before the error was seen


def test_a_bounded_job_waiting_its_turn_can_be_cancelled() -> None:
    gate = threading.Event()
    ran: list[str] = []
    bounded = Bounded(1)
    first = bounded.submit(gate.wait, 5)
    second = bounded.submit(ran.append, "second")
    assert second.cancel()
    third = bounded.submit(ran.append, "third")
    gate.set()
    assert first.result(5) and third.result(5) is None
    assert ran == ["third"]
