"""Attack: aiming at the host. The interpreter and the kernel's script were bound at their host paths, so
`sys.prefix`, `sys.executable`, `sys.path`, tracebacks and /proc/self/mountinfo named the project's folder, the
virtual environment, the home it lived in and the server's folders: what made writing to the host easy to aim.

Inside the jail the interpreter is at /opt/cellbox/python, its environment at /opt/cellbox/venv and the kernel at
/opt/cellbox/kernel.py, whatever their host paths, and the prefixes are bound from overlays whose layers are named
by descriptor, so /proc/self/mountinfo (which gives each bind mount's root within its filesystem) names no host
folder either. A server that can't mount (not root) says so at start, and mountinfo names the prefixes' folders."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from localhelp import run_logs, sdk

import cellbox
from cellbox.local import sandbox_env
from cellbox.local.jail.launcher import JailPython
from cellbox.local.store import mounts
from cellbox.local.testing import isolation_available, running_server

pytestmark = pytest.mark.skipif(not isolation_available(), reason="bubblewrap jails unavailable here")

PROBE = r"""
import json, os, sys, sysconfig, traceback
def text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")
try:
    json.loads("{")
except ValueError:
    failed = traceback.format_exc()
print(json.dumps({
    "sys": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, sys.executable,
            sys._base_executable, os.path.realpath(sys.executable), *sys.argv[:1]],
    "path": sys.path,
    "files": sorted({f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str)}),
    "paths": sysconfig.get_paths(),
    "stack": "".join(traceback.format_stack()),
    "failed": failed,
    "environ": dict(os.environ),
    "maps": text("/proc/self/maps"),
    "cmdline": text("/proc/self/cmdline"),
    "mountinfo": text("/proc/self/mountinfo").splitlines(),
}))
"""


def _host_paths(server) -> dict[str, str]:
    project = Path(cellbox.__file__).resolve().parents[2]
    return {
        "project": str(project),
        "venv": str(Path(sys.prefix).resolve()),
        "base prefix": str(Path(sys.base_prefix).resolve()),
        "home": str(Path.home()),
        "data dir": str(server.data_dir.resolve()),
        "sandbox environment": str(sandbox_env.default_root().resolve()),
        "runtime folder": f"/tmp/cbx-{server.process.pid}-",
    }


def _named(text: str, paths: dict[str, str]) -> list[str]:
    return [what for what, path in paths.items() if path in text]


def test_the_interpreter_and_the_kernel_show_only_fixed_paths(server, client, container, run, logs):
    seen = json.loads(logs(run(client, container.id, PROBE)[0]))
    paths = _host_paths(server)
    prefix, base = seen["sys"][0], seen["sys"][1]
    assert base == "/opt/cellbox/python", seen["sys"]
    assert prefix == "/opt/cellbox/venv", seen["sys"]  # the sandbox environment, whatever the server runs in
    assert all(p.startswith("/opt/cellbox/") for p in seen["sys"]), seen["sys"]
    assert "/opt/cellbox/kernel.py" in seen["stack"] and "/opt/cellbox/python/lib/" in seen["failed"]
    assert any("/site-packages/IPython/" in f for f in seen["files"]), "the kernel's own modules are listed"
    for where in ("sys", "path", "files", "paths", "stack", "failed", "environ", "maps", "cmdline"):
        assert _named(json.dumps(seen[where]), paths) == [], (where, seen[where])
    assert all(p == "" or p.startswith(("/opt/cellbox", "/tmp", "/mnt/data")) for p in seen["path"]), seen["path"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the overlays need the server to run as root")
def test_mountinfo_names_no_host_folder(server, client, container, run, logs):
    seen = json.loads(logs(run(client, container.id, PROBE)[0]))
    paths = _host_paths(server)
    own_filesystem = (server.data_dir / "containers" / container.id).is_mount()
    naming: dict[str, list[str]] = {}
    roots: dict[str, str] = {}
    for line in seen["mountinfo"]:
        fields = line.split()
        roots[fields[4]] = fields[3]
        found = _named(line, paths)
        if found:
            naming[fields[4]] = found
        if fields[4] == "/mnt/data" and own_filesystem:
            assert fields[3] == "/" and "/dev/loop" in line, line  # a filesystem of its own: no path at all
    # The prefixes are overlays seen from their root; their layers are named by descriptor, not by path.
    for prefix in ("/opt/cellbox/python", "/opt/cellbox/venv/lib"):
        assert roots[prefix] == "/", seen["mountinfo"]
        assert any(f" {prefix} " in line and "lowerdir=/proc/self/fd/" in line for line in seen["mountinfo"])
    # The container's folder is a bind of a host folder only where it can't have a filesystem of its own.
    assert naming == ({} if own_filesystem else {"/mnt/data": ["data dir"]}), naming


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="the overlays need the server to run as root")
def test_the_overlays_go_with_the_server_and_a_killed_servers_are_unmounted(tmp_path):
    data = tmp_path / "data"
    with running_server(data, pool_size=0) as srv, sdk(srv) as client:
        shown = mounts.mounts_under(data / "prefixes")
        assert shown and all(point.startswith(str((data / "prefixes").resolve())) for point in shown), shown
        assert "containers see where the interpreter is" not in srv.log()
        box = client.containers.create(name="probe")
        assert json.loads(run_logs(client, box.id, PROBE).splitlines()[-1])["sys"][1] == "/opt/cellbox/python"
        srv.kill()  # as a crash: its overlays stay mounted
        assert mounts.mounts_under(data / "prefixes") == shown
    with running_server(data, pool_size=0) as srv:
        assert mounts.mounts_under(data / "prefixes") == shown  # the stale ones gone, the same folders again
    assert mounts.mounts_under(data / "prefixes") == []


def test_a_virtual_environment_is_shown_with_a_config_naming_only_jail_paths(tmp_path):
    base, venv = tmp_path / "home" / "someone" / "python", tmp_path / "project" / ".venv"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "python3.11").write_text("")
    (venv / "lib").mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(base / "bin" / "python3.11")
    (venv / "lib64").symlink_to("lib")
    (venv / "pyvenv.cfg").write_text(
        f"home = {base / 'bin'}\ninclude-system-site-packages = false\nversion = 3.11.7\n"
        f"executable = {base / 'bin' / 'python3.11'}\ncommand = {base / 'bin' / 'python3'} -m venv {venv}\n"
    )
    jail = JailPython.of(str(venv / "bin" / "python"), str(base), str(venv))
    assert jail.binds == ((str(base), "/opt/cellbox/python"), (str(venv / "lib"), "/opt/cellbox/venv/lib"))
    assert jail.executable == "/opt/cellbox/venv/bin/python"
    assert ("/opt/cellbox/python/bin/python3.11", "/opt/cellbox/venv/bin/python") in jail.symlinks
    assert ("lib", "/opt/cellbox/venv/lib64") in jail.symlinks
    ((config, where),) = jail.files
    assert where == "/opt/cellbox/venv/pyvenv.cfg"
    assert config.decode() == "home = /opt/cellbox/python/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n"
