"""`cellbox.Sandbox` end to end against the real local server: push, run, pull, errors, revive."""

from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mockapi import MockAPI

import cellbox
from cellbox.api import Client, Container
from cellbox.api.config import load_settings
from cellbox.api.lookup import AmbiguousName, NameTaken
from cellbox.local.testing import running_server
from cellbox.session.errors import LoaderMismatch, NotAuthorized, ProcessDied, RunFailed
from cellbox.session.liveness import container_state
from cellbox.session.progress import Operation
from cellbox.session.protocol import loader_line


@pytest.fixture
def sandbox(use_cloud_server: str) -> Iterator[cellbox.Sandbox]:
    sb = cellbox.Sandbox.create(name="test-sandbox")
    yield sb
    sb.delete()


def typed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, 1.5, None],
            "s": ["a", "b", "c"],
            "cat": pd.Categorical(["x", "y", "x"]),
            "when": pd.to_datetime(["2024-01-01", "2024-06-01", "2024-12-31"]).tz_localize("Europe/Paris"),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
        }
    )


@pytest.mark.quirks
@pytest.mark.auto_binding
def test_push_run_and_outputs_keep_dtypes(sandbox: cellbox.Sandbox) -> None:
    frame = typed_frame()
    sandbox.push(frame, name="sales")
    run = sandbox.run("sales['twice'] = sales.i * 2\nprint(len(sales))\nsales.s.tolist()", outputs=["sales"])
    assert run.ok and run.stdout == "3\n"
    assert run.value == ["a", "b", "c"]
    back = run.variables["sales"]
    pd.testing.assert_frame_equal(back.drop(columns="twice"), frame)
    assert back["twice"].tolist() == [2, 4, 6]


@pytest.mark.auto_binding
def test_state_persists_between_runs_and_series_round_trip(sandbox: cellbox.Sandbox) -> None:
    sandbox.run("counter = 41")
    series = pd.Series([1.0, 2.0], name="weights")
    run = sandbox.run("counter += 1\nw = weights * 10\ncounter", inputs={"weights": series}, outputs=["w"])
    assert run.value == 42
    pd.testing.assert_series_equal(run.variables["w"], series * 10)


@pytest.mark.quirks
def test_a_cell_that_removes_cellboxs_own_folder_runs_and_so_do_the_next(sandbox: cellbox.Sandbox) -> None:
    """Code that cleans /mnt/data thoroughly takes cellbox's runtime files with it: the runtime loaded in the
    kernel runs on, the cell's record is still written, and the next cells keep the container's state."""
    sandbox.run("kept = 41")
    run = sandbox.run("import shutil\nshutil.rmtree('/mnt/data/.cellbox')\nkept + 1")
    assert run.ok and run.value == 42, run.error
    run = sandbox.run("kept += 2\nkept", inputs={"more": 1})
    assert run.ok and run.value == 43 and run.stderr == "", run.error


@pytest.mark.quirks
def test_a_runtime_removed_before_a_new_kernel_loaded_it_is_sent_again(sandbox: cellbox.Sandbox) -> None:
    # Wherever the service stored them (in cellbox's folder, or under a name of its own in /mnt/data).
    sandbox.run(
        "import glob, os, shutil\nshutil.rmtree('/mnt/data/.cellbox')\n"
        "for path in glob.glob('/mnt/data/*cellbox_*.py'):\n    os.remove(path)"
    )
    with pytest.raises(ProcessDied):  # the kernel that had the runtime loaded goes too
        sandbox.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    run = sandbox.run("21 * 2")
    assert run.ok and run.value == 42, run.error
    assert any("runtime was missing from the container" in note for note in run.notes), run.notes


@pytest.mark.integration
def test_a_server_whose_code_cannot_see_mnt_data_says_so_at_once(tmp_path: Path) -> None:
    with running_server(tmp_path / "unsafe", unsafe_no_isolation=True, pool_size=0) as server:
        settings = dataclasses.replace(load_settings(base_url=server.base_url, api_key=server.token), model="local")
        client = Client(settings=settings)
        sandbox = cellbox.Sandbox.create(client=client, name="unsafe")
        try:
            started = time.monotonic()
            with pytest.raises(RunFailed, match="--unsafe-no-isolation runs code without that folder"):
                sandbox.run("1")
            assert time.monotonic() - started < 10  # not after waiting for a record that can't come
        finally:
            sandbox.delete()
            client.close()


@pytest.mark.quirks
def test_exit_ends_the_containers_python_as_it_ends_a_notebooks_kernel(sandbox: cellbox.Sandbox) -> None:
    sandbox.run("before = 1")
    with pytest.raises(ProcessDied):
        sandbox.run("exit()")
    run = sandbox.run("'before' in dir()")
    assert run.value is False and any(event["type"] == "state_lost" for event in run.events)


def test_remote_exception_is_a_remote_error_with_the_cell_traceback(sandbox: cellbox.Sandbox) -> None:
    run = sandbox.run("x = 1\n\ndef f():\n    return 1 / 0\n\nf()")
    assert not run.ok
    assert run.error is not None and run.error.ename == "ZeroDivisionError"
    rendered = "\n".join(run.error._render_traceback_())
    plain = run.error.traceback  # the same, without colours
    assert "\x1b[" in rendered and "\x1b[" not in plain
    assert "File <cell>:4, in f()" in plain and "----> 4     return 1 / 0" in plain and "runpy" not in plain
    assert type(run.error).__name__ == "ZeroDivisionError"  # a RemoteError named for what the cell raised
    with pytest.raises(cellbox.RemoteError):
        run.raise_for_error()


@pytest.mark.quirks
def test_unchanged_push_sends_nothing_and_a_new_value_replaces_the_old(sandbox: cellbox.Sandbox) -> None:
    def uploads() -> dict[str, str]:
        return {f.path or "": f.id for f in sandbox.files(include_private=True)}

    frame = typed_frame()
    sandbox.push(frame, name="t")
    first = uploads()
    sandbox.push(frame.copy(), name="t")
    assert uploads() == first  # the same content: nothing sent
    frame.loc[0, "i"] = 99
    sandbox.push(frame, name="t")
    after = uploads()
    assert after.keys() == first.keys() and after != first  # sent again, in place of the old value
    assert sandbox.run("int(t.i[0])").value == 99


@pytest.mark.quirks
@pytest.mark.auto_binding
def test_files_folders_and_globs_push_and_pull(sandbox: cellbox.Sandbox, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("x\n1\n")
    (data / "b.csv").write_text("x\n2\n")
    (data / "sub" / "c.txt").write_text("c")
    assert sandbox.push(str(data / "*.csv")) == ["a.csv", "b.csv"]
    assert sandbox.push(str(data)) == ["data/a.csv", "data/b.csv", "data/sub/c.txt"]
    run = sandbox.run("import pandas as pd\nopen('out.txt','w').write('made here')\npd.read_csv('a.csv').x.sum()")
    assert run.value == 1
    assert [a.path for a in run.artifacts] == ["/mnt/data/out.txt"]
    pulled = sandbox.pull("out.txt", "data/sub/*", to=tmp_path / "back")
    assert sorted(p.relative_to(tmp_path / "back").as_posix() for p in pulled) == ["data/sub/c.txt", "out.txt"]
    assert (tmp_path / "back" / "out.txt").read_text() == "made here"


def test_bad_input_is_clear_and_sends_nothing(sandbox: cellbox.Sandbox, tmp_path: Path) -> None:
    with pytest.raises(cellbox.api.CellboxError, match="nothing matches"):
        sandbox.push(str(tmp_path / "*.nope"))
    with pytest.raises(cellbox.api.CellboxError, match="no such file"):
        sandbox.push(str(tmp_path / "missing.csv"))
    with pytest.raises(TypeError, match=r"^-i thing: thing\['a'\]\[1\] is a builtins.object, which can't travel"):
        sandbox.push({"a": [1, object()]}, name="thing")
    with pytest.raises(cellbox.api.CellboxError, match="no file in the container matches"):
        sandbox.pull("nothing-*.bin", to=tmp_path)
    run = sandbox.run("import threading\nlock = threading.Lock()\nfine = {'n': 1}", outputs=["lock", "fine"])
    assert run.error is not None and "-o lock: lock is a _thread.lock, which can't travel" in run.error.evalue
    assert run.variables == {"fine": {"n": 1}}  # what could travel came back all the same


def test_figures_come_back_as_png(sandbox: cellbox.Sandbox) -> None:
    run = sandbox.run("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])")
    assert run.ok, run.error
    # Shown as the inline backend would, even under another backend: one PNG display.
    pngs = [base64.b64decode(d.data["image/png"]) for d in run.displays if "image/png" in d.data]
    assert len(pngs) == 1 and pngs[0].startswith(b"\x89PNG")


@pytest.mark.quirks
def test_loader_mismatch_is_refused(sandbox: cellbox.Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # The local model runs the first fenced block it is given: hand it a different one, as a wayward model would.
    monkeypatch.setattr("cellbox.session.protocol.run_prompt", lambda loader: "```python\nprint('something else')\n```")
    with pytest.raises(LoaderMismatch, match="something else"):
        sandbox.run("1")


@pytest.mark.quirks
@pytest.mark.auto_binding
def test_expired_sandbox_is_reported_then_revived_with_its_data(sandbox: cellbox.Sandbox) -> None:
    frame = pd.DataFrame({"v": [1, 2]})
    sandbox.push(frame, name="kept")
    assert sandbox.run("int(kept.v.sum())").value == 3
    old = sandbox.id
    sandbox.client.containers.delete(old)  # gone, as an expired or deleted container is
    with pytest.raises(cellbox.SandboxGone, match="revive"):
        sandbox.run("1")
    sandbox.revive()
    assert sandbox.id != old
    assert sandbox.run("int(kept.v.sum())").value == 3


def test_loader_line_is_one_deterministic_line() -> None:
    line = loader_line("/mnt/data/.cellbox/cellbox_runtime.py", "/mnt/data/.cellbox/runs/x/request.json")
    assert "\n" not in line and line == loader_line(
        "/mnt/data/.cellbox/cellbox_runtime.py", "/mnt/data/.cellbox/runs/x/request.json"
    )


class RecordingTracker:
    made: list[RecordingTracker] = []

    def __init__(self, operation: Operation) -> None:
        self.operation, self.refreshes, self.closed = operation, 0, False
        RecordingTracker.made.append(self)

    def refresh(self, operation: Operation) -> None:
        self.refreshes += 1

    def close(self, operation: Operation) -> None:
        self.closed = True


@pytest.mark.quirks
def test_long_push_and_pull_report_progress(sandbox: cellbox.Sandbox, tmp_path: Path) -> None:
    RecordingTracker.made.clear()
    sandbox.progress = RecordingTracker
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (48 * 1024 * 2))  # 24 MiB: long enough to be worth a line
    sandbox.push(str(big), str(tmp_path / "big.bin"))  # the same file twice: sent once
    (push,) = RecordingTracker.made
    assert push.operation.label == f"push {big}, {big} to test-sandbox" and push.closed and push.refreshes > 2
    uploading = next(p for p in push.operation.phases if p.name == "uploading")
    assert uploading.total == uploading.done == big.stat().st_size and push.operation.outcome == "done"
    sandbox.push(str(big))  # unchanged: nothing sent, no line
    assert len(RecordingTracker.made) == 1
    (tmp_path / "back").mkdir()
    (local,) = sandbox.pull("big.bin", to=tmp_path / "back")
    pull = RecordingTracker.made[-1].operation
    (downloading,) = pull.phases
    assert (
        pull.label == "pull big.bin from test-sandbox" and downloading.done == downloading.total == big.stat().st_size
    )
    assert local.read_bytes() == big.read_bytes()


@pytest.mark.quirks
def test_a_large_frame_shows_as_it_is_serialized_uploaded_and_read_back(sandbox: cellbox.Sandbox) -> None:
    RecordingTracker.made.clear()
    sandbox.progress = RecordingTracker
    frame = pd.DataFrame({"a": range(1_500_000), "b": 1.5})
    sandbox.push(frame, name="frame")
    (push,) = RecordingTracker.made
    assert [p.name for p in push.operation.phases] == ["serializing", "uploading"]
    assert push.operation.phases[0].done == 1_500_000 and push.operation.outcome == "done"
    cell = Operation(RecordingTracker, "cell")  # a cell's line, as %%container makes it
    run = sandbox.run("out = frame.assign(c=2)", outputs=["out"], operation=cell)
    cell.close()
    assert run.ok and len(run.variables["out"]) == 1_500_000
    assert [p.name for p in cell.phases] == ["downloading", "reading"] and cell.outcome == "done"


@pytest.mark.quirks
def test_a_sandbox_deleted_mid_cell_is_reported_as_gone(sandbox: cellbox.Sandbox) -> None:
    deleter = threading.Timer(1.0, sandbox.client.containers.delete, (sandbox.id,))
    deleter.start()
    try:
        with pytest.raises(
            cellbox.SandboxGone, match=r"^container test-sandbox \(cntr_\w+\) has expired or was deleted"
        ):
            sandbox.run("import time\ntime.sleep(20)")
    finally:
        deleter.join()


@pytest.mark.quirks
def test_a_missing_file_is_not_a_missing_sandbox(sandbox: cellbox.Sandbox) -> None:
    # The local server's 404 for a file says "No container file found": the container itself is still there.
    run = sandbox.run("open('made.txt', 'w').write('here')\nkept = 7")
    (artifact,) = run.artifacts
    sandbox.client.containers.files.delete(sandbox.id, artifact.file.id)
    with pytest.raises(cellbox.api.NotFoundError):
        artifact.read()
    old = sandbox.id
    assert sandbox.run("kept").value == 7 and sandbox.id == old  # the same container, its state intact


OPENAI_404 = {"error": {"message": "Container not found", "type": "invalid_request_error", "code": None}}
OPENAI_EXPIRED = {"error": {"message": "Container is expired.", "type": "invalid_request_error"}}
OCI_404 = {"code": "NotAuthorizedOrNotFound", "message": "Authorization failed or requested resource not found"}
RUNNING, EXPIRED, MISSING = "running", "expired", "missing"


@pytest.mark.parametrize(
    ("retrieve", "listed", "state"),
    [
        ((200, RUNNING), None, "present"),
        ((200, EXPIRED), None, "gone"),
        ((200, "deleted"), None, "gone"),
        ((404, OPENAI_404), None, "gone"),
        ((400, OPENAI_EXPIRED), None, "gone"),
        ((401, {"error": {"message": "Incorrect API key provided."}}), None, "unauthorized"),
        ((403, {"error": {"message": "no access"}}), None, "unauthorized"),
        ((500, {"error": {"message": "boom"}}), None, "unknown"),
        # OCI's 404 says "not authorized" and "not found" at once: the listing decides.
        ((404, OCI_404), RUNNING, "unauthorized"),
        ((404, OCI_404), EXPIRED, "gone"),
        ((404, OCI_404), MISSING, "gone"),
        ((404, OCI_404), (404, OCI_404), "unauthorized"),
    ],
)
def test_gone_is_decided_by_retrieving_the_container(retrieve: tuple, listed: object, state: str) -> None:
    api = MockAPI()
    box = api.add_container("c")
    if retrieve[0] == 200:
        box["status"] = retrieve[1]
    else:
        api.fail(f"/v1/containers/{box['id']}", retrieve[0], retrieve[1], method="GET", times=3)
    if listed == MISSING:
        api.containers.clear()
    elif listed in (RUNNING, EXPIRED):
        box["status"] = listed
    elif isinstance(listed, tuple):
        api.fail("/v1/containers", listed[0], listed[1], method="GET")
    with api.client(max_retries=0) as client:
        assert container_state(client, box["id"]) == state


def test_a_file_404_is_not_a_gone_container_and_an_oci_auth_failure_says_so() -> None:
    api = MockAPI()
    box = api.add_container("c")
    with api.client(max_retries=0) as client:
        sandbox = cellbox.Sandbox(client, Container.from_dict(box), model="m")
        file_404 = {"error": {"message": f"File cfile_1 not found on container {box['id']}", "param": None}}
        api.fail(f"/v1/containers/{box['id']}/files/cfile_1", 404, file_404)
        with pytest.raises(cellbox.api.NotFoundError, match="not found on container"):
            sandbox.link.call(client.containers.files.retrieve, box["id"], "cfile_1")
        # OCI: the file and the container both answer NotAuthorizedOrNotFound, and the listing still shows it.
        api.fail(f"/v1/containers/{box['id']}*", 404, OCI_404, times=2)
        with pytest.raises(NotAuthorized, match="authorization failure, not a missing container"):
            sandbox.link.call(client.containers.files.retrieve, box["id"], "cfile_1")
        api.containers.clear()  # now it is gone: the listing no longer has it
        api.fail(f"/v1/containers/{box['id']}*", 404, OCI_404, times=2)
        with pytest.raises(cellbox.SandboxGone):
            sandbox.link.call(client.containers.files.retrieve, box["id"], "cfile_1")


def test_what_a_run_hands_back_stays_readable_after_later_runs(sandbox: cellbox.Sandbox, tmp_path: Path) -> None:
    # The runtime drops earlier runs' folders: what a Run handed over must not depend on them.
    first = sandbox.run(
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\nopen('made.txt', 'w').write('made')\nplt.gcf()"
    )
    assert first.ok, first.error
    assert sandbox.run("1 + 1").value == 2
    assert sandbox.run("2 + 2").value == 4
    # The figure left open is shown after the value (its repr under Agg), as the inline backend does it.
    assert first.value_bundle is not None and first.value_bundle.data["text/plain"].startswith("<Figure size")
    (png,) = [d.data["image/png"] for d in first.displays if "image/png" in d.data]
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert [e["type"] for e in first.events] == ["execute_result", "display_data"]
    (made,) = first.artifacts
    assert made.read() == b"made"


@pytest.mark.auto_binding
def test_a_pushed_value_is_loaded_by_the_next_run_only(sandbox: cellbox.Sandbox) -> None:
    sandbox.push({"a": 1}, name="given")
    assert list(sandbox.pending) == ["given"]
    assert sandbox.run("given['a'] = 2").ok
    assert sandbox.pending == {}  # loaded: the next run keeps what the code made of it
    assert sandbox.run("given['a']").value == 2


def test_copies_of_pushed_values_do_not_pile_up(use_cloud_server: str) -> None:
    sandbox = cellbox.Sandbox.create(name="copies")
    cache = sandbox.transfers.cache
    try:
        for n in range(5):
            sandbox.push(pd.DataFrame({"v": [n] * 1000}), name="t")
            assert sandbox.run("int(t.v.sum())").value == n * 1000
        assert [p.name for p in cache.iterdir()] == ["t.parquet"]  # one copy per variable, replaced in place
        sandbox.push({"now": "json"}, name="t")  # the same variable in another format
        assert [p.name for p in cache.iterdir()] == ["t.json"]
        sandbox.client.containers.delete(sandbox.id)
        sandbox.revive()
        assert sandbox.run("t").value == {"now": "json"}  # the latest value comes back, not the earlier frame
        assert [p.name for p in cache.iterdir()] == ["t.json"]  # the runtime and the run's values left nothing
    finally:
        sandbox.delete()
    assert not cache.exists()


def test_the_copies_folder_is_removed_at_exit_without_close(tmp_path: Path) -> None:
    script = (
        "from cellbox.session.transfer import Transfers\n"
        "t = Transfers(None)\n"
        "(t.cache / 'sales.parquet').write_bytes(b'x')\n"
        "print(t.cache)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    cache = Path(done.stdout.strip())
    assert cache.name.startswith("cellbox-") and not cache.exists()


def test_a_name_means_one_live_container(sandbox: cellbox.Sandbox) -> None:
    if sandbox.link.binding == "auto":
        pytest.skip("the service names an auto container: its sandbox's name is known to that sandbox only")
    with pytest.raises(NameTaken, match=r"named 'test-sandbox' is already running \(cntr_.*get_or_create") as taken:
        cellbox.Sandbox.create(name="test-sandbox")
    assert taken.value.container.id == sandbox.id
    with cellbox.Sandbox.get_or_create("test-sandbox") as again, cellbox.Sandbox.attach("test-sandbox") as found:
        assert again.id == found.id == sandbox.id
    other = sandbox.client.containers.create("test-sandbox")  # another client made a second one anyway
    try:
        with pytest.raises(AmbiguousName, match=rf"2 running containers are named 'test-sandbox' \(.*{sandbox.id}"):
            cellbox.Sandbox.attach("test-sandbox")
        with cellbox.Sandbox.attach(other.id) as by_id:  # an id is never ambiguous
            assert by_id.id == other.id
    finally:
        sandbox.client.containers.delete(other.id)
