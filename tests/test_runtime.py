"""The container runtime on its own: what a run records, and the CSV fallback where pyarrow is missing."""

from __future__ import annotations

import ast
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cellbox.local.store import safepath
from cellbox.runtime import cell, values
from cellbox.runtime import container as runtime


def typed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, None, 2.5],
            "s": ["a", "b", "c"],
            "cat": pd.Categorical(["x", "y", "x"], categories=["y", "x"]),
            "when": pd.to_datetime(["2024-01-01 10:00", "2024-06-01 00:00", "2024-12-31 23:59"]).tz_localize(
                "America/New_York"
            ),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
        },
        index=pd.Index([10, 20, 30], name="row"),
    )


@pytest.mark.parametrize("pyarrow", [True, False], ids=["parquet", "csv-fallback"])
def test_frames_round_trip_with_their_dtypes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pyarrow: bool) -> None:
    monkeypatch.setattr(values, "_has_pyarrow", lambda: pyarrow)
    frame = typed_frame()
    spec = values.write_frame(frame, str(tmp_path / "f"), "dataframe")
    assert spec["format"] == ("parquet" if pyarrow else "csv")
    back = values.read_value(spec)
    pd.testing.assert_frame_equal(back, frame)
    assert back["cat"].cat.categories.tolist() == ["y", "x"]


@pytest.mark.parametrize("pyarrow", [True, False], ids=["parquet", "csv-fallback"])
def test_series_round_trip_keeps_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pyarrow: bool) -> None:
    monkeypatch.setattr(values, "_has_pyarrow", lambda: pyarrow)
    series = pd.Series([1.5, 2.5], name="weight")
    back = values.read_value(values.write_frame(series, str(tmp_path / "s"), "series"))
    pd.testing.assert_series_equal(back, series)


RUN_IDS = itertools.count(2)


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, namespace: dict[str, Any], **more: Any) -> dict:
    monkeypatch.setattr(runtime, "_user_namespace", lambda: namespace)
    monkeypatch.chdir(tmp_path)
    private = tmp_path / ".cellbox"
    run_id = more.pop("run_id", None) or f"r{next(RUN_IDS)}"  # a run starts once: each run is a new one
    runs = private / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    request = {
        "run_id": run_id,
        "code": code,
        "result_path": str(runs / f"result-{run_id}.json"),
        "out_dir": str(runs / f"{run_id}.out"),
        "started": str(runs / f"{run_id}.started"),
        "private_dir": str(private),
        "watch": str(tmp_path),
        "inputs": [],
        "outputs": [],
        **more,
    }
    (runs / f"{run_id}.request.json").write_text(json.dumps(request))
    result = runtime.execute(str(runs / f"{run_id}.request.json"))
    assert json.loads((runs / f"result-{run_id}.json").read_text()) == json.loads(json.dumps(result, default=str))
    return result


def test_a_run_records_streams_value_changes_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {}
    result = run(
        tmp_path, monkeypatch, "import sys\nx = 2\nprint('out')\nprint('err', file=sys.stderr)\nx * 21", namespace
    )
    assert result["ok"] and "stdout" not in result  # the streams are written once, as events
    streams = [(e["name"], e["text"]) for e in result["events"] if e["type"] == "stream"]
    assert streams == [("stdout", "out\n"), ("stderr", "err\n")]
    assert result["value"]["kind"] == "json" and result["value"]["json"] == 42 and namespace["x"] == 2
    result = run(tmp_path, monkeypatch, "with open('made.txt', 'w') as f:\n    f.write('m')\ny = x + 1", namespace)
    assert result["changed"] == [str(tmp_path / "made.txt")] and namespace["y"] == 3
    result = run(tmp_path, monkeypatch, "def f():\n    return {}['missing']\nf()", namespace)
    assert not result["ok"] and result["error"]["ename"] == "KeyError"
    assert 'File "<cell>", line 2, in f' in result["error"]["traceback"]
    assert "container.py" not in result["error"]["traceback"]  # the runtime's own frames are not shown


@pytest.fixture
def loops_closed() -> Iterator[None]:
    """The loops awaiting cells made are the kernel's for its life; here, closed after each test."""
    yield
    if cell._loop is not None:
        cell._loop.close()
    if cell._threaded is not None:
        loop, done = cell._threaded, threading.Event()
        loop.call_soon_threadsafe(lambda: (loop.stop(), done.set()))
        done.wait(5)
        time.sleep(0.01)  # the loop's thread leaves run_forever
        loop.close()
    cell._loop = cell._threaded = None


@pytest.mark.usefixtures("loops_closed")
def test_top_level_await_runs_on_one_loop_kept_between_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {}
    code = "import asyncio\nloop = asyncio.get_running_loop()\nawait asyncio.sleep(0)\nawait asyncio.sleep(0, 'v')"
    result = run(tmp_path, monkeypatch, code, namespace)
    assert result["ok"] and result["value"]["json"] == "v", result["error"]
    first = namespace["loop"]
    same = "async def f():\n    return asyncio.get_running_loop() is loop\nawait f()"
    result = run(tmp_path, monkeypatch, same, namespace)
    assert result["value"]["json"] is True  # what one cell made on the loop serves the next
    result = run(tmp_path, monkeypatch, "async def g():\n    raise ValueError('inside')\nawait g()", namespace)
    shown = result["error"]["traceback"]
    assert result["error"]["ename"] == "ValueError" and shown.startswith("Traceback")
    assert 'File "<cell>", line 3, in <module>' in shown and 'File "<cell>", line 2, in g' in shown
    # Neither the event loop that ran it nor the runtime shows, and nothing is chained to the error.
    assert "asyncio" not in shown and "cell.py" not in shown and "During handling" not in shown
    assert namespace["loop"] is first


@pytest.mark.usefixtures("loops_closed")
def test_a_cell_that_awaits_runs_whole_on_one_loop_and_tasks_made_before_are_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace: dict[str, Any] = {}
    code = "import asyncio\ntask = asyncio.create_task(asyncio.sleep(0.01, 'x'))\nawait task\n"
    result = run(tmp_path, monkeypatch, code + "[await task, asyncio.get_running_loop() is not None]", namespace)
    assert result["ok"] and result["value"]["json"] == ["x", True], result["error"]
    assert "_cellbox_cell_value" not in namespace
    # A task made by a cell of plain code is awaited by a later cell, on the same loop.
    result = run(tmp_path, monkeypatch, "later = asyncio.ensure_future(asyncio.sleep(0.01, 5))", namespace)
    assert result["ok"], result["error"]
    result = run(tmp_path, monkeypatch, "await later", namespace)
    assert result["ok"] and result["value"]["json"] == 5, result["error"]
    result = run(tmp_path, monkeypatch, "x = await asyncio.sleep(0, 1);", namespace)  # `;`: nothing shown
    assert result["ok"] and result["value"] is None and namespace["x"] == 1


@pytest.mark.usefixtures("loops_closed")
def test_an_awaiting_cell_runs_where_a_loop_already_runs_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel that runs cells as coroutines (ipykernel) calls the runtime with its loop running: the cell's
    coroutine runs on a loop of its own, the same for every cell."""
    import asyncio

    namespace: dict[str, Any] = {}

    async def kernel_cell(code: str) -> dict:
        return run(tmp_path, monkeypatch, code, namespace)

    code = "import asyncio, threading\nawait asyncio.sleep(0)\nloop = asyncio.get_running_loop()\n21 * 2"
    result = asyncio.run(kernel_cell(code))
    assert result["ok"] and result["value"]["json"] == 42, result["error"]
    result = asyncio.run(kernel_cell("await asyncio.sleep(0, asyncio.get_running_loop() is loop)"))
    assert result["value"]["json"] is True


def test_the_cells_streams_say_they_take_utf8_as_a_notebooks_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(tmp_path, monkeypatch, "import sys\nprint(sys.stdout.encoding, sys.stderr.encoding, 'μs')", {})
    assert streams(result, "stdout") == "utf-8 utf-8 μs\n"


def test_a_cell_ending_in_a_semicolon_shows_no_value_and_bad_syntax_is_the_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(tmp_path, monkeypatch, "x = 1\nx + 1;  # hidden", {})
    assert result["ok"] and result["value"] is None
    result = run(tmp_path, monkeypatch, "x = 1\n!ls", {})  # no IPython here: not Python, and said so
    assert result["error"]["ename"] == "SyntaxError" and "line 2" in result["error"]["evalue"]
    assert "ast.py" not in result["error"]["traceback"] and "During handling" not in result["error"]["traceback"]


def test_outputs_that_cannot_travel_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(tmp_path, monkeypatch, "import threading\nlock = threading.Lock()", {}, outputs=["lock", "nope"])
    assert not result["ok"] and result["error"]["ename"] == "TypeError"
    lock, nope = result["error"]["evalue"].splitlines()  # one line for each value that could not come
    assert lock.startswith("-o lock: lock is a _thread.lock, which can't travel (frames, arrays")
    assert "convert it first, or save it to a file and pull the file" in lock
    assert nope == "-o nope: no variable 'nope' in the container after the cell ran"
    result = run(tmp_path, monkeypatch, "a = 1", {}, outputs=["missing"])
    assert result["error"]["ename"] == "NameError"
    assert result["error"]["evalue"] == "-o missing: no variable 'missing' in the container after the cell ran"


def test_outputs_that_travel_are_written_though_others_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import threading\nmetrics = {'auc': 0.9}\nmodel = {'fitted': threading.Lock()}\npreds = [1, 2]"
    result = run(tmp_path, monkeypatch, code, {}, outputs=["metrics", "model", "preds"])
    assert not result["ok"] and set(result["outputs"]) == {"metrics", "preds"}
    assert values.read_value(result["outputs"]["metrics"]) == {"auc": 0.9}
    assert values.read_value(result["outputs"]["preds"]) == [1, 2]
    line, delivered = result["error"]["evalue"].splitlines()
    assert line.startswith("-o model: model['fitted'] is a _thread.lock, which can't travel")
    assert delivered == "(brought back all the same: metrics, preds)"


def test_an_input_that_cannot_load_shows_no_runtime_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"name": "df", "kind": "dataframe", "format": "csv", "path": str(tmp_path / "gone.csv")}
    result = run(tmp_path, monkeypatch, "df", {}, inputs=[spec])
    assert result["error"]["ename"] == "FileNotFoundError"
    assert "container.py" not in result["error"]["traceback"] and "values.py" not in result["error"]["traceback"]


def test_the_runtime_finds_its_modules_under_a_service_prefix(tmp_path: Path) -> None:
    here = tmp_path / "0123abcd-cellbox_runtime_f00d.py"
    for name in (here.name, "4567ef01-cellbox_values_f00d.py", "cellbox_capture_f00d.py", "cellbox_values_beef.py"):
        (tmp_path / name).write_text("")
    assert runtime._sibling(str(here), "values") == str(tmp_path / "4567ef01-cellbox_values_f00d.py")
    assert runtime._sibling(str(here), "capture") == str(tmp_path / "cellbox_capture_f00d.py")
    assert runtime._sibling(str(tmp_path / "container.py"), "values") is None


def test_big_frames_shown_as_values_are_cut_and_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "MAX_VALUE_ROWS", 10)
    result = run(tmp_path, monkeypatch, "import pandas as pd\npd.DataFrame({'v': range(25)})", {})
    assert result["value"]["truncated_from"] == 25 and result["value"]["rows"] == 10


def test_earlier_runs_are_dropped_but_not_a_request_on_its_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / ".cellbox" / "runs"
    (runs / "r0.out").mkdir(parents=True)
    (runs / "r0.out" / "value.parquet").write_bytes(b"x")
    for name in ("r0.started", "result-r0.json", "stale.request.json", "coming.request.json"):
        (runs / name).write_text("{}")
    an_hour_ago = time.time() - 3600
    os.utime(runs / "stale.request.json", (an_hour_ago, an_hour_ago))  # never started, long forgotten
    run(tmp_path, monkeypatch, "pass", {}, run_id="r1")
    # Another session's request, uploaded while the model is asked, is still to be run. (r1's own request is
    # removed by r1 when it ends.)
    assert sorted(p.name for p in runs.iterdir()) == ["coming.request.json", "r1.started", "result-r1.json"]


def test_a_folder_chain_deeper_than_the_stack_does_not_break_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import os\nfd = os.open('.', os.O_RDONLY)\nfor _ in range(3000):\n"
        "    os.mkdir('d', dir_fd=fd)\n    nxt = os.open('d', os.O_RDONLY, dir_fd=fd)\n    os.close(fd)\n    fd = nxt\n"
        "os.close(fd)\nwith open('made.txt', 'w') as f:\n    f.write('m')"
    )
    try:
        result = run(tmp_path, monkeypatch, code, {})
        assert result["ok"], result.get("error")
        assert str(tmp_path / "made.txt") in result["changed"]
        result = run(tmp_path, monkeypatch, "with open('later.txt', 'w') as f:\n    f.write('l')", {})
        assert result["ok"] and result["changed"] == [str(tmp_path / "later.txt")]
    finally:
        safepath.remove_tree(tmp_path / "d")  # shutil.rmtree, which cleans tmp_path, can't


def streams(result: dict, name: str) -> str:
    return "".join(e["text"] for e in result["events"] if e["type"] == "stream" and e["name"] == name)


def test_what_reaches_descriptors_1_and_2_is_the_cells_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel sends what is written to its descriptors to the call's logs, which the model reads (and is billed
    # for): a subprocess, a C library or sys.__stdout__ is the cell's output instead, as in a local notebook.
    namespace: dict[str, Any] = {}
    child = "import sys, time; print('child out', flush=True); time.sleep(0.6); print('later', flush=True)"
    code = (
        "import os, subprocess, sys\nos.write(1, b'fd one\\n')\nos.write(2, b'fd two\\n')\n"
        "sys.__stdout__.write('dunder\\n')\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}])\nimport time\ntime.sleep(0.3)"
    )
    result = run(tmp_path, monkeypatch, code, namespace)
    assert streams(result, "stdout") == "fd one\ndunder\nchild out\n" and streams(result, "stderr") == "fd two\n"
    # Between runs the kernel's own descriptors are back: what it prints (the loader's line) goes out at once.
    pipes = sys.__dict__["cellbox_descriptors"].pipes
    assert pipes and all(os.fstat(pipe.fd).st_ino != os.fstat(pipe.write).st_ino for pipe in pipes)
    # The process the cell left running writes on: what it writes while a later cell runs is that cell's.
    result = run(tmp_path, monkeypatch, "p.wait()", namespace)
    assert streams(result, "stdout") == "later\n"


def test_a_request_on_its_way_is_waited_for_and_one_that_never_comes_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runtime, "_user_namespace", lambda: {})
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / ".cellbox" / "runs"
    request = {"run_id": "late", "code": "print('arrived')", "result_path": str(runs / "result-late.json")}
    request.update(out_dir=str(runs / "late.out"), started=str(runs / "late.started"))
    request.update(private_dir=str(tmp_path / ".cellbox"), watch=str(tmp_path))

    def upload() -> None:  # as a service stores it: the whole file at once, a moment after the loader started
        time.sleep(0.3)
        runs.mkdir(parents=True, exist_ok=True)  # the runtime made it, to watch it
        (runs / "late.request.json.part").write_text(json.dumps(request) + "\n")
        os.replace(runs / "late.request.json.part", runs / "late.request.json")

    threading.Thread(target=upload).start()
    started = time.monotonic()
    runtime.run(str(runs / "late.request.json"))
    assert time.monotonic() - started >= 0.3
    assert "cellbox run late: ok" in capsys.readouterr().out
    assert json.loads((runs / "result-late.json").read_text())["events"][0]["text"] == "arrived\n"

    # Run again (a model that calls the loader twice): refused at once, not waited for (REQUEST_WAIT is 60 s).
    started = time.monotonic()
    runtime.run(str(runs / "late.request.json"))
    assert time.monotonic() - started < 1
    assert f"{runtime.REFUSED_MARKER}run late was started before" in capsys.readouterr().out

    monkeypatch.setattr(runtime, "REQUEST_WAIT", 0.2)
    never = tmp_path / ".cellbox" / "runs" / "never.request.json"
    runtime.run(str(never))
    assert f"{runtime.REFUSED_MARKER}the run's request ({never}) never arrived; nothing ran" in capsys.readouterr().out

    # A request a service stored under a name of its own (outside the runs folder) was uploaded before the run was
    # asked for: one not there (run, and removed by its run) is refused at once, not waited for.
    monkeypatch.setattr(runtime, "REQUEST_WAIT", 30)
    started = time.monotonic()
    runtime.run(str(tmp_path / "0a1b2c-late.request.json"))
    assert time.monotonic() - started < 1
    assert f"{runtime.REFUSED_MARKER}run 0a1b2c-late was started before" in capsys.readouterr().out


def test_a_file_landing_in_a_watched_folder_wakes_the_wait_at_once(tmp_path: Path) -> None:
    from cellbox.runtime import changes

    landing = changes.arrivals(str(tmp_path))
    assert landing is not None and changes.arrivals(str(tmp_path)) is landing  # one per folder, kept
    (tmp_path / "before.txt").write_text("x")
    landing.forget()  # what happened before does not wake the next wait
    started = time.monotonic()
    landing.wait(0.2)
    assert time.monotonic() - started >= 0.19

    def upload() -> None:
        time.sleep(0.1)
        (tmp_path / "late.part").write_text("{}")
        os.replace(tmp_path / "late.part", tmp_path / "late.json")

    threading.Thread(target=upload).start()
    started = time.monotonic()
    landing.wait(10)
    assert time.monotonic() - started < 5  # woken by the write, not by the end of the wait


def test_an_exception_that_cannot_be_shown_still_ends_the_run_with_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no str')\nraise E()"
    result = run(tmp_path, monkeypatch, code, {})
    assert not result["ok"] and result["error"]["ename"] == "E"
    assert result["error"]["evalue"] == "<exception str() failed>"


def test_the_client_uses_only_the_runtimes_public_names() -> None:
    """The runtime's modules are a contract with the client (docs/ARCHITECTURE.md): outside them, nothing imports or
    reaches for a private name of theirs."""
    package = Path(runtime.__file__).resolve().parents[1]
    reached = []
    for path in package.rglob("*.py"):
        if package / "runtime" in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        runtime_imports = [node for node in imports if "runtime" in (node.module or "").split(".")]
        reached += [f"{path.name}: {a.name}" for node in runtime_imports for a in node.names if _private(a.name)]
        bound = {  # the names this module gives the runtime's modules
            alias.asname or alias.name
            for node in runtime_imports
            if (node.module or "").split(".")[-1] == "runtime"
            for alias in node.names
        }
        reached += [
            f"{path.name}: {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if node.value.id in bound and _private(node.attr)
        ]
    assert reached == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
