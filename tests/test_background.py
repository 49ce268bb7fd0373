"""Work beside a cell: on kept daemon threads, results and errors through the future, no thread made per job."""

from __future__ import annotations

import threading

import pytest

from cellbox.common.background import in_background


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
