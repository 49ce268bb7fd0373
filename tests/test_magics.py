"""`%container` / `%%container` in a real Jupyter kernel against the real local server."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from kernelhelp import Kernel, text, user_env, value

from cellbox.api import Client
from cellbox.common import inuse
from cellbox.local.testing import RunningServer
from cellbox.notebook.magics import ContainerMagics
from cellbox.session import backend
from cellbox.session.sandbox import Sandbox

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def kernel(cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel-home")
    env = user_env(cloud_environment, home)
    k = Kernel(env)
    status, _ = k.run("%load_ext cellbox\nimport pandas as pd")
    assert status == "ok"
    yield k
    k.run("%container delete")
    k.stop()


@pytest.mark.quirks
def test_cell_runs_remotely_with_inputs_and_outputs(kernel: Kernel) -> None:
    status, out = kernel.run("sales = pd.DataFrame({'region': ['a', 'b', 'a'], 'price': [1.0, 2.0, 3.0]})")
    assert status == "ok"
    status, out = kernel.run(
        "%%container -i sales -o totals\n"
        "import os\n"
        "totals = sales.groupby('region', as_index=False).price.sum()\n"
        "print('rows', len(sales), 'cwd', os.getcwd())\n"
        "totals"
    )
    assert status == "ok", out
    assert "rows 3 cwd /mnt/data" in text(out, "stdout")
    shown = [m for m in out if m["type"] == "execute_result"]
    assert len(shown) == 1 and "<table" in shown[0]["data"]["text/html"]
    status, out = kernel.run("totals.price.tolist(), type(totals).__name__")
    assert status == "ok"
    assert value(out) == "([4.0, 2.0], 'DataFrame')"


def test_remote_exception_fails_the_cell_with_the_remote_traceback(kernel: Kernel) -> None:
    reply = kernel.client.execute_interactive("%%container\ndef f():\n    raise ValueError('bad row 7')", timeout=60)
    number = reply["content"]["execution_count"]
    status, out = kernel.run("%%container\nf()")
    assert status == "error"
    error = next(m for m in out if m["type"] == "error")
    # As IPython shows it locally: named for what the cell raised, coloured, with the lines of each cell, the one
    # that defined the function named as IPython names a cell.
    assert error["ename"] == "ValueError" and error["evalue"] == "bad row 7"  # as a local cell's
    plain = ANSI.sub("", "\n".join(error["traceback"]))
    assert f"Cell In[{number}], line 2, in f()" in plain and "----> 2     raise ValueError('bad row 7')" in plain
    assert "----> 1 f()" in plain
    assert "\x1b[" in "".join(error["traceback"])
    assert "cellbox_runtime" not in plain and "container.py" not in plain


def test_usage_errors_name_the_mistake(kernel: Kernel) -> None:
    status, out = kernel.run("%%container -i not_defined_anywhere\nx = 1")
    assert status == "error" and "-i not_defined_anywhere: no such variable" in text(out, "stderr")
    status, out = kernel.run("%container frobnicate")
    assert status == "error" and "invalid choice: 'frobnicate'" in text(out, "stderr")
    status, out = kernel.run("%container new --memory 3g")
    assert status == "error" and "invalid choice: '3g'" in text(out, "stderr")


def test_braces_expand_in_the_magic_line_only(kernel: Kernel) -> None:
    kernel.run("wanted = 'expanded'\nexpanded = {'k': 1}")
    status, out = kernel.run("%%container -i {wanted}\nliteral = {'k': 2}\n(expanded['k'], literal['k'])")
    assert status == "ok", out
    assert value(out) == "(1, 2)"  # a tuple stays a tuple


@pytest.mark.quirks
def test_line_commands_status_files_push_pull(kernel: Kernel, tmp_path) -> None:
    local = tmp_path / "hello.txt"
    local.write_text("hi there")
    status, out = kernel.run(f"%container push {local}")
    assert status == "ok", out
    assert f"cellbox: pushed {local} to /mnt/data/hello.txt: sent 1 of 1 file(s)" in text(out, "stdout")
    status, out = kernel.run(f"%container push {local}")
    assert f"cellbox: pushed {local} to /mnt/data/hello.txt: unchanged, nothing sent" in text(out, "stdout")
    status, out = kernel.run("%container files")
    assert status == "ok" and "/mnt/data/hello.txt" in value(out)
    status, out = kernel.run("%container status")
    assert status == "ok" and "running" in value(out)
    status, out = kernel.run("%%container\nopen('made.txt', 'w').write('remote')")
    assert status == "ok"
    assert any("made.txt" in m.get("data", {}).get("text/plain", "") for m in out)  # the artifact view
    status, out = kernel.run(f"%container pull made.txt --to {tmp_path}")
    assert status == "ok" and (tmp_path / "made.txt").read_text() == "remote"


@pytest.mark.quirks
def test_pushed_files_keep_their_folders_under_the_notebooks_folder(kernel: Kernel, tmp_path) -> None:
    """`data/raw.csv` works in the container as it does locally, whether pushed or sent with --files (OpenAI's
    profile stores uploads under names of its own: the runtime moves them into place); a file outside the
    notebook's folder lands by its name, and the push says where."""
    work = tmp_path / "project"
    (work / "data" / "sub").mkdir(parents=True)
    (work / "data" / "raw.csv").write_text("x\n1\n2\n")
    (work / "data" / "sub" / "deep.csv").write_text("y\n5\n")
    (tmp_path / "outside.csv").write_text("z\n7\n")
    status, out = kernel.run(f"import os as _os\n_before = _os.getcwd()\n_os.chdir({str(work)!r})")
    assert status == "ok", out
    try:
        status, out = kernel.run("%container push data/raw.csv ../outside.csv")
        assert status == "ok", out
        said = text(out, "stdout")
        assert "cellbox: pushed data/raw.csv to /mnt/data/data/raw.csv: sent 1 of 1 file(s)" in said
        assert "cellbox: pushed ../outside.csv to /mnt/data/outside.csv: sent 1 of 1 file(s)" in said
        status, out = kernel.run("%container files")  # where they will be, wherever the service stored them
        listed = out[-1]["data"]["text/plain"]
        assert "/mnt/data/data/raw.csv" in listed and "/mnt/data/outside.csv" in listed, listed
        status, out = kernel.run(
            "%%container --files data/sub/deep.csv\n"
            "import pandas as pd\n"
            "int(pd.read_csv('data/raw.csv').x.sum()), int(pd.read_csv('data/sub/deep.csv').y.sum()), "
            "int(pd.read_csv('outside.csv').z.sum())"
        )
        assert status == "ok", out
        assert [m for m in out if m["type"] == "execute_result"][-1]["data"]["text/plain"] == "(3, 5, 7)", out
        # The folder cellbox keeps its own files in is not a place to push to.
        (work / ".cellbox").mkdir()
        (work / ".cellbox" / "runtime.py").write_text("planted = True")
        status, out = kernel.run("%container push .cellbox/runtime.py")
        shown = "\n".join(next(m for m in out if m["type"] == "error")["traceback"])
        assert status == "error" and "would land in /mnt/data/.cellbox, which is cellbox's own" in shown
        assert "Traceback" not in shown and "transfer.py" not in shown
    finally:
        kernel.run("_os.chdir(_before)")


def test_env_lists_the_containers_packages_and_leaves_nothing_shown(kernel: Kernel) -> None:
    status, out = kernel.run("%container env")
    shown = value(out)
    assert status == "ok" and re.search(r"\d+ packages in container ", shown), out
    listed = dict(line.split()[:2] for line in shown.splitlines()[3:] if len(line.split()) >= 2)
    for name in ("numpy", "pandas", "scikit-learn", "polars", "matplotlib", "ipython"):
        assert re.fullmatch(r"\d+(\.\w+)+", listed.get(name, "")), (name, shown)
    assert not [m for m in out if m.get("name") == "stderr"], out


HELPED = ["-i VAR", "-o VAR", "--files PATH", "--pull GLOB", "--to DIR", "--timeout S", "new [NAME]", "use NAME_OR_ID"]
HELPED += ["list", "files", "status", "push VAR_OR_PATH", "pull REMOTE_GLOB", "delete [NAME_OR_ID]", "pool N"]
HELPED += ["--hidden", "--force", "--modules"]
ASKS = ["%container?", "%container --help", "%%container --help\nprint(1)", "%container new -h"]


@pytest.mark.parametrize("ask", ASKS)
def test_help_explains_every_option_with_an_example(kernel: Kernel, ask: str) -> None:
    status, out = kernel.run(ask)
    assert status == "ok"
    shown = "".join(m["data"]["text/plain"] for m in out if m["type"] == "page") + text(out, "stdout")
    for option in HELPED:
        assert option in shown, option
    examples = [line.strip() for line in shown.splitlines() if line.strip().startswith("%%container -")]
    for option in ("-i", "-o", "--files", "--pull", "--to", "--timeout"):  # each cell option shown in use
        assert any(f" {option} " in f"{example} " for example in examples), option
    assert "Thin:" not in shown and "Sandbox" not in shown  # written for users, not developers
    assert not any(m["type"] == "error" for m in out) and "1\n" not in text(out, "stdout")  # nothing ran


def interrupted(kernel: Kernel, code: str) -> tuple[str, list[dict[str, Any]]]:
    """`code` run, and the kernel interrupted 1.5 s into it; the reply status and messages, within 10 s.

    SIGINT is how Jupyter interrupts a kernel on Linux; sent from this thread's timer directly, because the
    manager's own interrupt_kernel would make an event loop in the timer thread and leave it open."""
    timer = threading.Timer(1.5, os.kill, (kernel.manager.provisioner.process.pid, signal.SIGINT))
    timer.start()
    started = time.monotonic()
    status, out = kernel.run(code)
    timer.join()
    assert time.monotonic() - started < 10
    return status, out


def test_interrupt_stops_the_remote_run(kernel: Kernel) -> None:
    status, out = interrupted(
        kernel,
        "%%container\nimport time\nfor i in range(60):\n    open('tick.txt', 'w').write(str(i))\n"
        "    print('tick', i)\n    time.sleep(0.5)",
    )
    assert status == "error"
    # One line saying what was stopped; no traceback through cellbox or httpx; what was printed stays.
    error = next(m for m in out if m["type"] == "error")
    assert error["ename"] == "Interrupted" and len(error["traceback"]) == 1
    assert "the cell was stopped while it ran" in error["traceback"][0]
    assert "tick 0\n" in text(out, "stdout")
    status, out = kernel.run("%%container\nprint(open('tick.txt').read())")
    ticks = int(text(out, "stdout"))
    time.sleep(1.5)  # were the loop still running remotely, it would tick on
    status, out = kernel.run("%%container\nprint(open('tick.txt').read())")
    assert status == "ok" and int(text(out, "stdout")) == ticks


def test_interrupting_an_awaiting_cell_stops_it_and_the_next_one_awaits_again(kernel: Kernel) -> None:
    status, out = interrupted(kernel, "%%container\nimport asyncio\nprint('waiting')\nawait asyncio.sleep(60)")
    assert status == "error"
    error = next(m for m in out if m["type"] == "error")
    assert error["ename"] == "Interrupted" and len(error["traceback"]) == 1
    status, out = kernel.run("%%container\nawait asyncio.sleep(0, 'awaited again')")
    assert status == "ok" and value(out) == "'awaited again'", out


@pytest.mark.quirks
def test_a_container_deleted_mid_cell_fails_the_cell_and_the_next_cell_carries_on(
    kernel: Kernel, cloud_server: RunningServer, cloud_environment: dict[str, str], tmp_path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("pushed before")
    assert kernel.run(f"%container push {notes}")[0] == "ok"
    status, out = kernel.run(
        "current = get_ipython().find_magic('container').__self__.current\nprint(current.id, current.name)"
    )
    container_id, name = text(out, "stdout").split()
    headers = {**cloud_server.headers, "OpenAI-Project": cloud_environment.get("CELLBOX_PROJECT", "")}
    delete = threading.Timer(
        1.5, httpx.delete, (f"{cloud_server.base_url}/containers/{container_id}",), {"headers": headers}
    )
    delete.start()
    started = time.monotonic()
    status, out = kernel.run("%%container\nimport time\ntime.sleep(60)")
    delete.join()
    assert status == "error" and time.monotonic() - started < 15
    error = next(m for m in out if m["type"] == "error")
    assert error["ename"] == "SandboxGone" and error["evalue"].startswith(
        f"container {name} ({container_id}) has expired or was deleted. The next %%container cell makes a new one"
    )
    assert "revive" not in error["evalue"] and error["traceback"] == [f"SandboxGone: {error['evalue']}"]
    status, out = kernel.run("%%container\nprint(open('notes.txt').read())")
    assert status == "ok", out
    said = text(out, "stderr")
    assert f"cellbox: container {name} was gone (expired or deleted), so this cell runs in a new one (cntr_" in said
    assert "variables and imports of earlier cells are gone; pushed again: " in said and notes.name in said
    # One line (a model that had to be asked twice adds its own note, as the cell's run cost a second response).
    lines = [line for line in said.splitlines() if "a second billed response" not in line]
    assert len(lines) == 1 and "revive" not in said
    assert text(out, "stdout").endswith("pushed before\n")  # the manifest was pushed again


def test_list_closes_the_client_it_made_and_reuses_the_current_one(
    use_cloud_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Client] = []

    def connect() -> Client:
        made.append(backend.connect())
        return made[-1]

    monkeypatch.setattr(Sandbox, "default_client", staticmethod(connect))
    magics = ContainerMagics(None)
    with pytest.raises(UsageError, match="no current container: `%container new` makes one"):
        magics.container("files")
    sandbox = Sandbox.create("listed")
    try:
        table = magics.container("list")  # no current container: a client of its own, closed once listed
        assert sandbox.id in [row[1] for row in table.rows]
        (client,) = made
        assert client._http.is_closed
        magics.containers.remember(sandbox)
        table = magics.container("list")  # the current container's client, which stays open for it
        assert sandbox.id in [row[1] for row in table.rows]
        assert len(made) == 1 and not sandbox.client._http.is_closed
    finally:
        sandbox.delete()


def test_new_fresh_starts_clean(kernel: Kernel) -> None:
    assert kernel.run("%container new fresh-one")[0] == "ok"
    status, out = kernel.run("%%container\nleft_over = 1\nopen('left.txt', 'w').write('x')")
    assert status == "ok", out
    old = text(kernel.run("print(get_ipython().find_magic('container').__self__.current.id)")[1], "stdout").strip()
    status, out = kernel.run("%container new fresh-one --fresh")
    assert status == "ok" and f"cellbox: deleted container fresh-one ({old})" in text(out, "stdout")
    status, out = kernel.run("%%container\nimport os\nprint('left_over' in globals(), os.path.exists('left.txt'))")
    assert status == "ok" and text(out, "stdout") == "False False\n"


def _current(kernel: Kernel) -> str:
    code = "print(get_ipython().find_magic('container').__self__.current.id)"
    return text(kernel.run(code)[1], "stdout").strip()


def test_a_name_means_one_running_container(kernel: Kernel, cloud_environment: dict[str, str]) -> None:
    status, out = kernel.run("%container new named-once")
    assert status == "ok", out
    first = _current(kernel)
    status, out = kernel.run("%container new named-once --memory 4g")  # running: used, and said so
    assert status == "ok", out
    said = text(out, "stdout")
    assert f"cellbox: container named-once is already running ({first}) with 1g of memory, not 4g" in said
    assert "--fresh` replaces it" in said
    assert _current(kernel) == first
    env = cloud_environment
    with Client(
        base_url=env["CELLBOX_BASE_URL"], api_key=env["CELLBOX_API_KEY"], project=env.get("CELLBOX_PROJECT")
    ) as c:
        named = [box for box in c.containers.list() if box.name == "named-once" and box.status == "running"]
        assert [box.id for box in named] == [first]
        # Two live containers of one name (made by another client): a lookup refuses to guess.
        other = c.containers.create("named-once")
        try:
            status, out = kernel.run("%container use named-once")
            assert status == "error"
            error = next(m for m in out if m["type"] == "error")
            assert "AmbiguousName" in error["ename"] and first in error["evalue"] and other.id in error["evalue"]
        finally:
            c.containers.delete(other.id)


def test_a_deleted_current_container_is_replaced_by_one_of_its_name_and_said(kernel: Kernel) -> None:
    assert kernel.run("%container new keeps-name")[0] == "ok"
    old = _current(kernel)
    status, out = kernel.run("%container delete")
    assert status == "ok", out
    status, out = kernel.run("%%container\nprint('hello')")
    assert status == "ok", out
    new = _current(kernel)
    assert new != old
    said = text(out, "stdout")
    assert f"cellbox: container keeps-name was deleted, so this cell runs in a new container keeps-name ({new})" in said
    assert "hello" in said


def test_list_and_status_mark_the_notebooks_container(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kernel.run("%container new marked")[0] == "ok"
    current = _current(kernel)
    code = "t = %container list\nprint([row for row in t.rows if row[-1]])"
    out = text(kernel.run(code)[1], "stdout")
    assert f"'{current}'" in out and "this notebook" in out and out.count("this notebook") == 1
    _, out = kernel.run("%container status")
    shown = next(m for m in out if m["type"] == "execute_result")["data"]["text/plain"]
    assert shown.startswith("this notebook's container") and current in shown
    # Where the sidebar reads it: the kernel's id (from its connection file) names the container.
    state = text(kernel.run("import os; print(os.environ['CELLBOX_STATE_DIR'])")[1], "stdout").strip()
    monkeypatch.setenv("CELLBOX_STATE_DIR", state)
    assert inuse.read()[kernel.id] == current


def test_displays_figures_and_the_value_arrive_in_order_as_a_frontend_expects(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n"
        "from IPython.display import HTML, Markdown, display\n"
        "import matplotlib.pyplot as plt\n"
        "print('first')\n"
        "display(HTML('<b>bold</b>'), Markdown('*md*'))\n"
        "plt.plot([1, 2]); plt.show()\n"
        "plt.figure(); plt.plot([2, 1]); plt.savefig('saved.png')\n"
        "{1: 'a', 'k': (1, 2)}"
    )
    assert status == "ok", out
    shown = [
        m
        for m in out
        if m["type"] in ("stream", "display_data", "execute_result")
        and not m.get("text", "").startswith("cellbox:")  # what cellbox did (a container made)
        and not m.get("transient")  # the running line
    ]
    kinds = [m["type"] if m["type"] != "display_data" else sorted(m["data"]) for m in shown]
    assert kinds[0] == "stream" and shown[0]["text"] == "first\n"
    assert kinds[1:4] == [["text/html", "text/plain"], ["text/markdown", "text/plain"], ["image/png", "text/plain"]]
    result = next(m for m in out if m["type"] == "execute_result")
    assert result["data"]["text/plain"] == "{1: 'a', 'k': (1, 2)}" and result["execution_count"] > 0
    # The open figure shows once, after the value, as the inline backend does; the saved file is an artifact.
    after = shown[shown.index(result) + 1 :]
    assert sum("image/png" in m.get("data", {}) for m in after) == 1
    status, out = kernel.run("_")
    assert value(out) == "{1: 'a', 'k': (1, 2)}"


def test_shell_commands_magics_and_await_work_as_in_a_local_cell(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n"
        "!echo from the shell\n"
        "found = !echo captured\n"
        "import asyncio\n"
        "%time counted = len(found)\n"
        "waited = await asyncio.sleep(0, counted)\n"
        "(found[0], waited)"
    )
    assert status == "ok", out
    stdout = text(out, "stdout")
    assert "from the shell" in stdout and "Wall time:" in stdout
    assert value(out) == "('captured', 1)"
    status, out = kernel.run("%%container\npwd")  # an automagic, as IPython makes of this one line
    assert status == "ok" and value(out) == "'/mnt/data'", out
    kernel.run("%%container\npwd = 'a variable of that name'")
    status, out = kernel.run("%%container\npwd")  # as in IPython, a variable shadows the magic
    assert status == "ok" and value(out) == "'a variable of that name'", out
    kernel.run("%%container\ndel pwd")
    # Bad syntax is shown as IPython shows it: where in the cell, the line, a caret; no traceback.
    errors: list[dict[str, Any]] = []
    keep = lambda msg: errors.append(msg["content"]) if msg["msg_type"] == "error" else None  # noqa: E731
    reply = kernel.client.execute_interactive("%%container\n!echo fine\nx = (1,\ny = 2 +", output_hook=keep)
    error, number = errors[0], reply["content"]["execution_count"]
    plain = ANSI.sub("", "".join(error["traceback"]))
    assert error["ename"] == "SyntaxError" and f"Cell In[{number}], line 2\n    x = (1,\n        ^" in plain, plain
    assert "Traceback" not in plain and "SyntaxError: '(' was never closed" in plain
    # input() fails the cell saying why, at the cell's own line, nothing of the sandbox's kernel shown; `!` runs in
    # bash, as a notebook's kernel started from a login shell does.
    status, out = kernel.run("%%container\nname = input('name? ')")
    plain = ANSI.sub("", "".join(next(m for m in out if m["type"] == "error")["traceback"]))
    assert "cannot ask for input" in plain and "----> 1 name = input('name? ')" in plain and "kernel.py" not in plain
    # An error IPython shows without raising it (a script %run, a repr that fails) fails the cell, as in a kernel.
    kernel.run("%%container\nopen('fails.py', 'w').write('print(1)\\nraise ValueError(\"in the script\")')")
    status, out = kernel.run("%%container\n%run fails.py")
    error = next(m for m in out if m["type"] == "error")
    assert status == "error" and error["ename"] == "ValueError" and text(out, "stdout") == "1\n", out
    status, out = kernel.run("%%container\n%matplotlib inline")  # the backend it has already: nothing to do
    assert status == "ok", out
    status, out = kernel.run("%%container\n![[ 1 == 1 ]] && echo bash")
    assert status == "ok" and text(out, "stdout").strip() == "bash", out
    # A misused magic fails the cell in IPython's one line, with no traceback of the magic machinery.
    status, out = kernel.run("%%container\n%no_such_magic")
    assert status == "error"
    error = next(m for m in out if m["type"] == "error")
    assert error["ename"] == "UsageError" and ANSI.sub("", "".join(error["traceback"])).count("\n") <= 1
    assert "Line magic function `%no_such_magic` not found" in "".join(error["traceback"])


@pytest.mark.quirks
def test_output_streams_while_the_cell_runs(kernel: Kernel) -> None:
    lines: list[tuple[float, str]] = []
    started = time.monotonic()

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            lines.append((time.monotonic() - started, msg["content"]["text"]))

    code = "%%container\nimport time\nfor i in range(20):\n    print('line', i, flush=True)\n    time.sleep(0.1)"
    reply = kernel.client.execute_interactive(code, output_hook=keep, timeout=60)
    ended = time.monotonic() - started
    assert reply["content"]["status"] == "ok"
    first = next(t for t, text in lines if "line 0" in text)
    assert first < ended - 1.0, (first, ended)  # seen while the cell still had a second and more to run
    assert "".join(text for _, text in lines).count("line") == 20


def test_timeout_says_when_it_stopped_the_cell(kernel: Kernel) -> None:
    status, out = kernel.run("%%container --timeout 1\nimport time\ntime.sleep(30)")
    assert status == "error"
    error = next(m for m in out if m["type"] == "error")
    assert error["ename"] == "TimeLimit" and len(error["traceback"]) == 1
    assert "stopped after 1 s" in error["traceback"][0]


def test_a_quiet_cell_says_it_is_running_and_the_line_ends_empty(kernel: Kernel) -> None:
    seen: list[tuple[float, str, dict[str, Any]]] = []
    started = time.monotonic()

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("display_data", "update_display_data", "stream"):
            seen.append((time.monotonic() - started, msg["msg_type"], msg["content"]))

    code = "%%container\nimport time\ntime.sleep(3)\nprint('slept')"
    reply = kernel.client.execute_interactive(code, output_hook=keep, timeout=60)
    assert reply["content"]["status"] == "ok"
    running = [(t, kind, c) for t, kind, c in seen if "running in" in c.get("data", {}).get("text/plain", "")]
    assert running and running[0][1] == "display_data", seen  # shown once, then updated in place
    first = running[0][0]
    assert first < 2.5, seen  # within the quiet second (and a poll) of the start, long before the end
    label = running[-1][2]["data"]["text/plain"]
    assert label.startswith("running in ") and label.endswith(" s")
    display_id = running[0][2]["transient"]["display_id"]
    last = [c for _, kind, c in seen if kind == "update_display_data" and c["transient"]["display_id"] == display_id]
    assert last and last[-1]["data"] == {"text/plain": ""}  # left empty when the run ends: nothing saved of it
    printed = next(t for t, kind, c in seen if kind == "stream" and "slept" in c["text"])
    assert printed > first


@pytest.mark.quirks
def test_a_process_that_dies_under_a_cell_is_said_at_once_and_the_next_cell_has_the_pushed_values(
    kernel: Kernel,
) -> None:
    assert kernel.run("%container new died --fresh")[0] == "ok"
    assert (
        kernel.run("import pandas as pd\nprices = pd.DataFrame({'price': [2.5, 3.0]})\n%container push prices")[0]
        == "ok"
    )
    started = time.monotonic()
    status, out = kernel.run("%%container\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    took = time.monotonic() - started
    assert status == "error"
    (error,) = [m for m in out if m["type"] == "error"]
    assert error["ename"] == "ProcessDied" and len(error["traceback"]) == 1
    assert error["evalue"].startswith("the container's Python process died while running this cell")
    assert "files in /mnt/data are kept" in error["evalue"] and "revive" not in error["evalue"]
    assert took < 10, took  # said at once: no waiting for a result record that can't come, no second request
    status, out = kernel.run("%%container\nprint(float(prices.price.sum()))")
    assert status == "ok", out
    said = text(out, "stderr").splitlines()
    restarted = [line for line in said if "variables and imports of earlier cells are gone" in line]
    assert len(restarted) == 1 and "(loaded again: prices)" in restarted[0], said
    # A quirky model may have needed asking twice: that is said too, and nothing else.
    assert all("a second billed response" in line for line in said if line not in restarted), said
    assert text(out, "stdout") == "5.5\n"
    assert kernel.run("%container delete died")[0] == "ok"
