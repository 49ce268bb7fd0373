"""The sandbox environment: containers run the environment cellbox declares (sandbox_env/requirements.lock),
whichever Python starts the server; it lists what it holds; pip says at once that containers are offline; joblib
and multiprocessing get their processes.

Every server of the session shares one environment (built once, `running_server` builds it before starting any);
the tests here build another only where the test is about building (its key, its extras)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from localhelp import run_logs, sdk

from cellbox.local import sandbox_env
from cellbox.local.jail import launcher
from cellbox.local.testing import isolation_available, running_server

jailed = pytest.mark.skipif(not isolation_available(), reason="bubblewrap jails unavailable here")

WHAT = r"""
import json, sys
from importlib import metadata
found = sorted({(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}.items())
def importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False
print(json.dumps({"prefix": sys.prefix, "executable": sys.executable, "version": sys.version, "packages": found,
                  "importable": {m: importable(m) for m in ("numpy", "sklearn", "polars", "cellbox", "pytest",
                                                             "only_in_the_servers_venv")}}))
"""


def _what(server) -> dict:
    with sdk(server) as client:
        box = client.containers.create(name="env")
        return json.loads(run_logs(client, box.id, WHAT).splitlines()[-1])


def _other_interpreter(folder: Path) -> Path:
    """A Python to start the server with that is not this one: the host's own CPython 3.11 where there is one
    (another installation, another version), else this one's base, in a virtual environment of its own that sees
    this one's packages (through a .pth: the server needs them, and reinstalling them would cost minutes) and has
    one of its own the jail must not show."""
    base = "/usr/bin/python3.11"
    if not os.path.exists(base) or os.path.realpath(base) == os.path.realpath(sys._base_executable):
        base = sys._base_executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
    (site,) = folder.glob("lib/python3.*/site-packages")
    ours = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)]
    (site / "ours.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    (site / "only_in_the_servers_venv.py").write_text("")
    return folder / "bin" / "python"


@pytest.mark.integration
@pytest.mark.slow
def test_the_environment_is_the_same_whichever_python_starts_the_server(tmp_path, server, monkeypatch):
    python = _other_interpreter(tmp_path / "venv")
    ran = subprocess.run([python, "-c", "import sys, uvicorn; print(sys.executable, sys.version)"], text=True,
                         capture_output=True, check=True)  # fmt: skip
    assert ran.stdout.split()[0] != sys.executable
    monkeypatch.setattr(sys, "executable", str(python))  # running_server starts `sys.executable -m cellbox.local`
    with running_server(tmp_path / "data", pool_size=0) as other:
        theirs = _what(other)
    monkeypatch.undo()
    ours = _what(server)
    assert theirs == ours
    assert ours["prefix"] == "/opt/cellbox/venv" and ours["executable"] == "/opt/cellbox/venv/bin/python"
    assert ours["importable"] == {"numpy": True, "sklearn": True, "polars": True, "cellbox": False,
                                  "pytest": False, "only_in_the_servers_venv": False}  # fmt: skip
    locked = sandbox_env.LOCK.read_text().lower()
    assert [(n, v) for n, v in ours["packages"] if f"{n.replace('_', '-')}=={v}" not in locked] == []


def test_the_key_follows_the_lock_and_the_extras_not_their_order(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.0.0\n")
    one = sandbox_env.Spec(("duckdb", "xgboost==2.1"), root=tmp_path, lock=lock)
    key = one.key
    assert sandbox_env.Spec(("xgboost==2.1", "duckdb", "duckdb"), root=tmp_path, lock=lock).key == key
    assert sandbox_env.Spec((), root=tmp_path, lock=lock).key != key
    assert one.folder == tmp_path / key
    lock.write_text("numpy==2.0.1\n")
    assert one.key != key
    with pytest.raises(sandbox_env.SandboxEnvError, match="not a package requirement"):
        sandbox_env.Spec(("--index-url=http://elsewhere",))


# A process that holds an environment as a server does, until told to go (its stdin closes).
HOLDER = """
import sys
from pathlib import Path
from cellbox.local import sandbox_env
spec = sandbox_env.Spec((), root=Path(sys.argv[1]), lock=Path(sys.argv[2]))
sandbox_env.ensure(spec, hold=True)
print("held", flush=True)
sys.stdin.read()
"""


def _empty_lock(folder: Path, name: str = "empty.lock") -> Path:
    """A lock that installs nothing: an environment built from it is a bare venv, made in about a second."""
    lock = folder / name
    lock.write_text(f"# {name}: nothing\n")
    return lock


def _holder(root: Path, lock: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.communicate(timeout=60)  # its stdin closed, it exits


def test_an_upgrade_keeps_the_environment_a_server_holds_until_it_stops(tmp_path):
    root, lock = tmp_path / "envs", _empty_lock(tmp_path)
    spec = sandbox_env.Spec((), root=root, lock=lock)
    first = sandbox_env.ensure(spec)
    (first.folder / "a-file-its-containers-read").write_text("still here")
    holder = _holder(root, lock)
    try:
        upgraded = sandbox_env.ensure(spec, rebuild=True)
        assert upgraded.folder == first.folder and sandbox_env.find(spec) == upgraded
        assert not (upgraded.folder / "a-file-its-containers-read").exists()
        (retired,) = root.glob(f"{spec.key}.retired-*")
        assert (retired / "a-file-its-containers-read").read_text() == "still here"  # the server's files are intact
        sandbox_env.ensure(spec)  # another use sweeps, and leaves what is held
        assert retired.exists()
    finally:
        _release(holder)
    sandbox_env.ensure(spec)
    assert not retired.exists()
    assert [p.name for p in root.iterdir() if p.is_dir()] == [spec.key]


def test_an_environment_nothing_holds_goes_after_a_month_unused(tmp_path):
    root = tmp_path / "envs"
    old_lock, held_lock, new_lock = (_empty_lock(tmp_path, f"{n}.lock") for n in ("old", "held", "new"))
    old = sandbox_env.ensure(sandbox_env.Spec((), root=root, lock=old_lock))
    held = sandbox_env.ensure(sandbox_env.Spec((), root=root, lock=held_lock))
    recent_unused = sandbox_env.ensure(sandbox_env.Spec((), root=root, lock=_empty_lock(tmp_path, "recent.lock")))
    holder = _holder(root, held_lock)
    try:
        month_ago = time.time() - (sandbox_env.STALE_DAYS + 1) * 86400
        for environment in (old, held):
            os.utime(environment.folder / "cellbox-env.json", (month_ago, month_ago))
        new = sandbox_env.ensure(sandbox_env.Spec((), root=root, lock=new_lock))
        assert not old.folder.exists() and not Path(f"{old.folder}.lock").exists()
        assert held.folder.exists()  # a server uses it, however old
        assert recent_unused.folder.exists() and new.folder.exists()
    finally:
        _release(holder)


def test_config_toml_names_the_extra_packages(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('model = "x"\nsandbox_packages = ["duckdb"]\n')
    assert sandbox_env.configured_packages(config) == ("duckdb",)
    config.write_text('sandbox_packages = "duckdb"\n')
    with pytest.raises(sandbox_env.SandboxEnvError, match="must be a list"):
        sandbox_env.configured_packages(config)
    assert sandbox_env.configured_packages(tmp_path / "absent.toml") == ()


def test_the_default_folder_is_the_users_cache_unless_told(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(sandbox_env.ROOT_VARIABLE, raising=False)
    assert sandbox_env.default_root() == tmp_path / "cache" / "cellbox" / "sandbox-env"
    monkeypatch.setenv(sandbox_env.ROOT_VARIABLE, str(tmp_path / "mine"))
    assert sandbox_env.default_root() == tmp_path / "mine"


@pytest.mark.integration
def test_cellbox_env_lists_name_and_version(server):
    done = subprocess.run([sys.executable, "-m", "cellbox", "env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.startswith("# local containers run CPython 3.11 with ")
    listed = dict(row.split() for row in rows)
    for name in (
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "statsmodels",
        "matplotlib",
        "seaborn",
        "pyarrow",
        "openpyxl",
        "tqdm",
        "plotly",
        "sympy",
        "polars",
        "pillow",
        "beautifulsoup4",
        "requests",
        "ipython",
    ):
        assert name in {n.lower() for n in listed}, (name, sorted(listed))  # fmt: skip
    as_json = json.loads(subprocess.run([sys.executable, "-m", "cellbox", "env", "--json"], capture_output=True,
                                        text=True, check=True).stdout)  # fmt: skip
    assert {p["name"]: p["version"] for p in as_json["packages"]} == listed
    assert len(listed) == len(_what(server)["packages"])


@jailed
def test_pip_says_at_once_in_one_line_that_containers_are_offline(client, container, run, logs):
    for line in ("!pip install duckdb", "%pip install duckdb", "!python -m pip install -q duckdb"):
        started = time.monotonic()
        said = logs(run(client, container.id, line)[0])
        took = time.monotonic() - started
        assert said.strip().count("\n") == 0, (line, said)
        assert "no network" in said and 'sandbox_packages = ["duckdb"]' in said, said
        assert "--sandbox-package duckdb" in said and "Retrying" not in said, said
        assert took < 5, (line, took)
    listed = logs(run(client, container.id, "!pip list")[0])
    assert "numpy" in listed and "no network" not in listed


@jailed
def test_joblib_runs_two_processes_and_warns_of_nothing(client, container, run, logs):
    code = (
        "import os, time, warnings\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    import sklearn.ensemble, joblib\n"
        "    def pid(_):\n"
        "        time.sleep(0.5)\n"
        "        return os.getpid()\n"
        "    pids = joblib.Parallel(n_jobs=2)(joblib.delayed(pid)(i) for i in range(4))\n"
        "print(len(set(pids)), os.getpid() in pids, [str(w.message) for w in seen])\n"
    )
    said = logs(run(client, container.id, code)[0])
    assert said.strip() == "2 False []", said
    shm = logs(run(client, container.id, "!df -B1 --output=size /dev/shm | tail -1; stat -c %a /dev/shm")[0])
    size, mode = shm.split()
    assert mode == "1777" and 0 < int(size) <= launcher.MEMORY_LIMITS["1g"], shm
