"""`cellbox.Pool` and `cellbox.concat` against the real local server with real kernels: results equal the whole
frame's, a failing part keeps the others and is retried alone, a pool past --max-containers runs with what it got,
an interrupt stops every part; and the splitting itself, without a server."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import cellbox
from cellbox.api import CellboxError
from cellbox.local.testing import RunningServer, running_server
from cellbox.pool.parts import by_column, by_rows, make_parts
from cellbox.session.errors import Interrupted
from cellbox.session.liveness import container_state


def sales_frame(n: int = 90) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": [("north", "south", "east", "west", "east")[i % 5] for i in range(n)],
            "price": [1.5 + i for i in range(n)],
            "qty": [i % 7 for i in range(n)],
        },
        index=pd.RangeIndex(100, 100 + n, name="order"),
    )


@pytest.fixture
def pool(use_local_server: RunningServer) -> Iterator[cellbox.Pool]:
    with cellbox.Pool(3, show=False) as made:
        yield made


# --- splitting --------------------------------------------------------------------------------------------------


def test_rows_are_cut_in_contiguous_blocks_within_one_row() -> None:
    frame = sales_frame(10)
    parts = by_rows(frame, 3)
    assert [len(p) for p in parts] == [3, 3, 4]
    pd.testing.assert_frame_equal(pd.concat(parts), frame)
    assert len(by_rows(frame.head(2), 8)) == 2  # never empty parts


def test_column_split_keeps_groups_whole_and_balances_them() -> None:
    frame = sales_frame(100)  # east has 40 rows, the others 20 each
    parts = by_column(frame, "region", 8)  # fewer groups than sandboxes: one part per group
    assert sorted(p.region.unique().tolist()[0] for p in parts) == ["east", "north", "south", "west"]
    packed = by_column(frame, "region", 2)  # more groups than sandboxes: whole groups, balanced by rows
    assert sorted(len(p) for p in packed) == [40, 60]
    assert all(len(set(p.region) & set(q.region)) == 0 for p in packed for q in packed if p is not q)


def test_split_variables_must_agree_on_the_number_of_parts() -> None:
    frame = sales_frame(9)
    parts = make_parts({"a": frame, "b": frame.price}, 3)
    assert len(parts) == 3 and list(parts[0]) == ["a", "b"]
    with pytest.raises(CellboxError, match="same number of parts"):
        make_parts({"a": frame, "b": [1, 2]}, 3)
    with pytest.raises(CellboxError, match="column 'nope'"):
        make_parts({"a": ("nope", frame)}, 3)


# --- running ----------------------------------------------------------------------------------------------------

CODE = "sales['total'] = sales.price * sales.qty * rate\nsummary = sales.groupby('region').total.sum().reset_index()"


def test_results_equal_the_whole_frame_computed_locally(pool: cellbox.Pool) -> None:
    frame = sales_frame()
    runs = pool.map(CODE, split={"sales": frame}, inputs={"rate": 2}, outputs=["sales", "summary"])
    assert runs.ok and [p.state for p in runs] == ["done"] * 3
    assert [p.rows for p in runs] == [30, 30, 30]
    expected = frame.assign(total=frame.price * frame.qty * 2)
    pd.testing.assert_frame_equal(cellbox.concat(runs, "sales"), expected)
    summed = cellbox.concat(runs, "summary").groupby("region").total.sum()
    pd.testing.assert_series_equal(summed, expected.groupby("region").total.sum())

    # By column: one part per region (each region whole in one part), any part's summary is final for it.
    runs = pool.map(CODE, split={"sales": ("region", frame)}, inputs={"rate": 2}, outputs=["summary"])
    assert len(runs) == 3  # 4 regions packed into 3 sandboxes
    by_region = cellbox.concat(runs, "summary").set_index("region").total.sort_index()
    pd.testing.assert_series_equal(by_region, expected.groupby("region").total.sum(), check_names=False)

    # The user's own parts: more parts than sandboxes queue up; the unsplit input was not sent again.
    parts = [frame.iloc[i : i + 18] for i in range(0, 90, 18)]
    runs = pool.map("n = [len(sales), rate]", split={"sales": parts}, inputs={"rate": 2}, outputs=["n"])
    assert cellbox.concat(runs, "n") == [18, 2] * 5
    assert [p.member for p in runs] == [0, 1, 2, 0, 1]
    assert "5 parts on 3 sandboxes: 5 done" in repr(runs)
    assert "<table" in runs._repr_html_()


def test_run_sends_the_same_code_everywhere(pool: cellbox.Pool) -> None:
    runs = pool.run("import math\nprint('ready')\nmath.tau > 6")
    assert [p.value for p in runs] == [True] * 3 and [p.stdout for p in runs] == ["ready\n"] * 3


def test_a_failing_part_keeps_the_others_and_is_retried_alone(pool: cellbox.Pool) -> None:
    frame = sales_frame(30)
    code = (
        "tries = globals().get('tries', 0) + 1\n"
        "if 'east' in set(sales.region) and sales.index[0] == 110 and tries == 1:\n"
        "    raise ValueError('bad part on first try')\n"
        "n = len(sales)"
    )
    runs = pool.map(code, split={"sales": frame}, outputs=["n"])
    assert [p.state for p in runs] == ["done", "failed", "done"]
    failed = runs[1]
    assert isinstance(failed.error, cellbox.RemoteError) and "bad part on first try" in failed.traceback
    assert "bad part on first try" in repr(runs) and "bad part on first try" in runs._repr_html_()
    with pytest.raises(CellboxError, match="part 1 failed"):
        cellbox.concat(runs, "n")
    assert cellbox.concat(runs, "n", skip_failed=True) == [10, 10]
    kept = runs[0].run
    again = pool.retry_failed()
    assert again is runs and runs.ok and runs[0].run is kept  # only the failed part ran again
    assert cellbox.concat(runs, "n") == [10, 10, 10]


@pytest.mark.integration
def test_a_pool_past_the_servers_limit_runs_with_what_it_got(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server(tmp_path / "server", max_containers=2, pool_size=0, exec_timeout=60) as server:
        monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
        monkeypatch.setenv("CELLBOX_API_KEY", server.token)
        monkeypatch.setenv("CELLBOX_MODEL", "cellbox-local")
        with cellbox.Pool(4, show=False) as pool:
            assert len(pool) == 2 and pool.size == 4
            assert pool.shortfall is not None and "asked for 4 sandboxes, got 2" in pool.shortfall
            runs = pool.map("n = len(xs)", split={"xs": [[1], [2, 3], [4, 5, 6]]}, outputs=["n"])
            assert cellbox.concat(runs, "n") == [1, 2, 3]
            ids = [m.id for m in pool.members]
        client = cellbox.Sandbox.default_client()
        assert [container_state(client, i) for i in ids] == ["gone", "gone"]  # leaving `with` deleted them
        client.close()


def test_an_interrupt_stops_every_part(pool: cellbox.Pool) -> None:
    pool.run("import time")
    timer = threading.Timer(3.0, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(Interrupted, match="3 part"):
            pool.map("time.sleep(60)")
    finally:
        timer.cancel()
    assert time.monotonic() - started < 20
    assert [p.state for p in pool.last or []] == ["stopped"] * 3
    # Every kernel is free again at once: nothing is still sleeping.
    quick = time.monotonic()
    assert [p.value for p in pool.run("1 + 1", timeout=20)] == [2, 2, 2]
    assert time.monotonic() - quick < 10


def test_a_gone_sandbox_is_revived_for_its_part(pool: cellbox.Pool) -> None:
    pool.run("x = 1")
    pool.members[1].client.containers.delete(pool.members[1].id)
    runs = pool.map("y = len(sales)", split={"sales": sales_frame(6)}, outputs=["y"])
    assert runs.ok and cellbox.concat(runs, "y") == [2, 2, 2]
    assert any("a new one was made" in note for note in runs[1].notes)


def test_each_parts_files_are_pulled_into_a_folder_of_its_own(pool: cellbox.Pool, tmp_path: Path) -> None:
    # Five parts on three sandboxes: a sandbox's second part overwrites its first one's file, so each part's
    # file is pulled right after that part ran.
    frames = [pd.DataFrame({"x": [n]}) for n in range(5)]
    code = "open('part.txt', 'w').write(f'part {int(frames.x[0])}')\nopen('skip.log', 'w').write('no')"
    runs = pool.map(code, split={"frames": frames}, pull=["*.txt"], to=tmp_path / "out")
    assert runs.ok
    for part in runs:
        assert part.pulled == [tmp_path / "out" / f"part-{part.index}" / "part.txt"]
        assert part.pulled[0].read_text() == f"part {part.index}"
    assert not list((tmp_path / "out").rglob("*.log"))


def test_magics_fan_a_cell_out_over_the_notebooks_pool(use_local_server: RunningServer, tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    manager, kernel = start_new_kernel(kernel_name="python3")

    def run(code: str) -> tuple[str, str]:
        said: list[str] = []

        def keep(msg: dict) -> None:
            content = msg["content"]
            said.append(content.get("text") or content.get("evalue") or str(content.get("data", "")))

        reply = kernel.execute_interactive(code, output_hook=keep, timeout=120)
        return reply["content"]["status"], "".join(said)

    try:
        assert (
            run("%load_ext cellbox\nimport pandas as pd\ndf = pd.DataFrame({'g': list('aabbc'), 'x': range(5)})")[0]
            == "ok"
        )
        status, said = run("%container pool 2")
        assert status == "ok" and "Pool(2 sandboxes" in said
        status, said = run("%%container --pool --split df -o out\nout = df.assign(y=df.x * 2)\nprint(len(df))")
        assert status == "ok", said
        assert "[0] 2\n" in said and "[1] 3\n" in said and "2 parts on 2 sandboxes: 2 done" in said
        status, said = run("out.y.tolist(), out.index.tolist()")
        assert "([0, 2, 4, 6, 8], [0, 1, 2, 3, 4])" in said
        status, said = run("%%container --pool --split df --by g -o n\nn = [sorted(set(df.g))]")
        assert status == "ok"
        assert run("n")[1].count("'") >= 6  # whole groups per part: [['a', 'b'], ['c']] or similar
        code = (
            "%%container --pool --split df -o z\nt = globals().get('t', 0) + 1\n"
            "if len(df) == 2 and t == 1:\n    1/0\nz = df"
        )
        status, said = run(code)
        assert status == "error" and "1 of 2 parts failed (parts 0)" in said and "ZeroDivisionError" in said
        status, said = run("%container pool --retry")
        assert status == "ok"
        assert run("len(z)")[1] == "{'text/plain': '5'}"
        status, said = run(
            f"%%container --pool --split df --pull rows.txt --to {tmp_path}\nopen('rows.txt', 'w').write(str(len(df)))"
        )
        assert status == "ok" and f"pulled 2 file(s) into {tmp_path}/part-N" in said
        assert [(tmp_path / f"part-{i}" / "rows.txt").read_text() for i in (0, 1)] == ["2", "3"]
        assert run("%container pool --delete")[1].startswith("cellbox: deleted the pool's 2 container(s)")
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
