"""An operation's progress as the user reads it: phases in order, one line, shown only when worth it, and an end
that says done (or where it stopped)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

import cellbox
from cellbox.runtime import values
from cellbox.session import progress
from cellbox.session.progress import MIN_BYTES, Operation


class Recorder:
    """A tracker that keeps every line it was shown."""

    made: list[Recorder] = []

    def __init__(self, operation: Operation) -> None:
        self.lines = [operation.describe()]
        self.closed = False
        Recorder.made.append(self)

    def refresh(self, operation: Operation) -> None:
        self.lines.append(operation.describe())

    def close(self, operation: Operation) -> None:
        self.closed = True
        self.lines.append(operation.describe())


@pytest.fixture(autouse=True)
def fresh() -> None:
    Recorder.made.clear()


def test_a_push_reads_as_its_phases_in_order_and_ends_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "REFRESH", 0.0)  # every update shown
    with progress.step(Recorder, "push big to demo") as operation:
        operation.phase("serializing", 2_000_000, "rows", size=50 * MIN_BYTES, items=["big"])
        operation.update(1_048_576)
        operation.update(951_424)
        operation.end_phase()
        operation.phase("uploading", 30_000_000)
        operation.update(30_000_000)
        operation.end_phase()
    (shown,) = Recorder.made
    assert shown.lines[0] == "push big to demo: serializing big (2,000,000 rows)"  # nothing done yet: no "0 of"
    assert "push big to demo: serializing big (1,048,576 of 2,000,000 rows)" in shown.lines
    final = shown.lines[-1]
    assert final.startswith("push big to demo: serialized big (2,000,000 rows) in ")
    assert " · uploaded 30.0 MB in " in final and " · done in " in final and shown.closed
    assert operation.fraction() == 1.0


def test_small_transfers_show_nothing_and_a_big_one_shows_what_came_before() -> None:
    with progress.step(Recorder, "cell in demo") as operation:
        operation.phase("uploading", 1000)
        operation.update(1000)
        operation.phase("running", unit="")
        assert not Recorder.made  # nothing worth a line yet
        operation.phase("downloading", MIN_BYTES, items=["out"])
        (shown,) = Recorder.made
        assert shown.lines[0].startswith("cell in demo: uploaded 1.0 kB in ")
        assert " · ran 0.0 s · downloading out (0 B of 8.4 MB)" in shown.lines[0]


def test_steps_inside_an_operation_join_it_and_one_alone_makes_its_own() -> None:
    cell = Operation(Recorder, "cell in demo")
    with progress.step(Recorder, "push a to demo", cell) as inner:
        assert inner is cell
    assert cell.outcome is None  # the cell goes on
    cell.close()
    assert cell.outcome == "unchanged, nothing sent"
    with progress.step(Recorder, "push b to demo", cell) as alone:  # a closed operation is joined no more
        assert alone is not cell
    assert alone.outcome is not None


@pytest.mark.parametrize(("error", "outcome"), [(KeyboardInterrupt(), "stopped"), (OSError("disk"), "failed")])
def test_a_line_that_stops_says_where(error: BaseException, outcome: str) -> None:
    with pytest.raises(type(error)), progress.step(Recorder, "push big to demo") as operation:
        operation.phase("uploading", 2 * MIN_BYTES)
        operation.update(MIN_BYTES)
        raise error
    assert Recorder.made[-1].lines[-1] == f"push big to demo: uploading 8.4 MB of 16.8 MB · {outcome}"


def test_a_value_that_had_not_changed_takes_its_line_back() -> None:
    with progress.step(Recorder, "push big to demo") as operation:
        operation.phase("serializing", 5_000_000, "rows", size=20 * MIN_BYTES, items=["big"])
        assert operation.big
        operation.retract(5_000_000, 20 * MIN_BYTES, "big")
        assert not operation.big and operation.phases == []
    assert operation.outcome == "unchanged, nothing sent"


def test_updates_from_many_threads_add_up() -> None:
    operation = Operation(None, "pull")
    operation.phase("downloading", 8 * 10_000)
    workers = [threading.Thread(target=lambda: [operation.update(10) for _ in range(1000)]) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert operation.phases[0].done == 80_000 and operation.fraction() == 1.0


def test_a_quiet_cell_says_it_is_running_until_something_big_moves() -> None:
    operation = Operation(Recorder, "cell in demo")
    operation.phase("running", unit="")
    operation.indicate("running in demo · 1 s")
    (shown,) = Recorder.made
    assert not operation.big and operation.indicator == "running in demo · 1 s"
    operation.phase("downloading", MIN_BYTES)
    assert operation.big and shown.lines[-1].startswith("cell in demo: ran ")


def test_a_frame_written_in_parts_is_the_file_to_parquet_writes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"a": range(values.PART_ROWS + 10), "c": pd.Categorical(["x", "y"] * ((values.PART_ROWS + 10) // 2))},
        index=pd.RangeIndex(5, values.PART_ROWS + 15),
    )
    frame.attrs = {"source": "test"}
    parts: list[int] = []
    values.write_frame(frame, str(tmp_path / "parts"), "dataframe", parts.append)
    values.write_frame(frame, str(tmp_path / "whole"), "dataframe")
    assert parts == [values.PART_ROWS, 10]
    assert (tmp_path / "parts.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.cloud_profiles("plain")
def test_a_runs_values_read_back_from_python_show_through_the_sandboxs_progress(use_cloud_server: str) -> None:
    with cellbox.Sandbox.create(name="progress") as sandbox:
        sandbox.progress = Recorder
        run = sandbox.run(
            "import numpy as np, pandas as pd\nbig = pd.DataFrame({'x': np.random.default_rng(1).random(2_000_000)})",
            outputs=["big"],
        )
        sandbox.delete()
    assert len(run.variables["big"]) == 2_000_000
    (shown,) = Recorder.made  # its own line: no cell around it
    final = shown.lines[-1]
    assert final.startswith(f"read big from {sandbox.name}: downloaded ") and shown.closed
    assert " · read big (2,000,000 rows) in " in final and " · done in " in final
