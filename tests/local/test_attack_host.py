"""Attack: reading the host, and escaping the jail. All of the server's working tree and other folders were
readable from a container, root-only files too (the code ran as uid 0), and no system call was filtered.

A container sees what Python needs (the system's programs, libraries and /etc, and the interpreter's prefixes
at fixed paths under /opt/cellbox) and nothing else of the host; when the server runs as root, the code runs as
`nobody` with no capabilities; a seccomp filter denies new namespaces, ptrace, mounts, bpf and the like."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import cellbox
from cellbox.local.jail import seccomp
from cellbox.local.jail.launcher import NOBODY, jail_user
from cellbox.local.testing import isolation_available

pytestmark = pytest.mark.skipif(not isolation_available(), reason="bubblewrap jails unavailable here")

PROBE = """
import json, os, glob
def readable(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False
tree = {p: os.path.exists(p) for p in PATHS}
home = sorted(os.listdir(HOME)) if os.path.isdir(HOME) else []
opt = sorted(os.listdir("/opt"))
status = open("/proc/self/status").read()
caps = [line.split()[1] for line in status.splitlines() if line.startswith(("CapEff", "CapPrm", "CapBnd"))]
open("mine.txt", "w").write("written")
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "caps": caps, "tree": tree,
                  "home": home, "opt": opt, "root_only": readable(ROOT_ONLY), "top": sorted(os.listdir("/"))}))
"""


def test_the_code_sees_only_what_python_needs_as_an_unprivileged_user(server, client, container, run, logs, tmp_path):
    project = Path(cellbox.__file__).resolve().parents[2]  # the server's working tree (src/, tests/, ...)
    root_only = tmp_path / "root-only.txt"
    root_only.write_text("secret")
    root_only.chmod(0o600)
    # The interpreter's own folders are not where the host has them (a pyenv or a venv may live in a home).
    prefixes = [sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent)]
    paths = [str(project / "src"), str(project / "tests"), "/srv", "/run", "/var/lib", *prefixes]
    home = Path.home()
    code = f"PATHS = {paths!r}\nROOT_ONLY = {str(root_only)!r}\nHOME = {str(home)!r}\n" + PROBE
    seen = json.loads(logs(run(client, container.id, code)[0]))
    assert not any(seen["tree"].values()), seen["tree"]
    assert seen["home"] == [] and seen["opt"] == ["cellbox"], seen
    system = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "mnt", "opt", "proc", "sbin", "tmp", "usr"}
    assert set(seen["top"]) <= system | {"var"}, seen["top"]
    assert not seen["root_only"]
    if jail_user() is not None:  # the server runs as root: the code doesn't
        assert (seen["uid"], seen["gid"], seen["groups"]) == (*NOBODY, [])
        assert set(seen["caps"]) == {"0000000000000000"}
        written = server.data_dir / "containers" / container.id / "mine.txt"
        assert written.stat().st_uid == NOBODY[0]
    else:
        assert seen["uid"] == os.getuid()


def test_uploaded_files_belong_to_the_code(server, client, container, run, logs):
    client.containers.files.create(container_id=container.id, file=("sub/in.txt", b"from the user"))
    code = "open('sub/in.txt', 'a').write(' and the code')\nprint(open('sub/in.txt').read())"
    out = logs(run(client, container.id, code)[0])
    assert out.strip() == "from the user and the code"


ESCAPES = """
import ctypes, json, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(name, *args):
    return 0 if getattr(libc, name)(*args) == 0 else ctypes.get_errno()
found = {
    "unshare_user": errno_of("unshare", 0x10000000),
    "ptrace": errno_of("ptrace", 16, 1, 0, 0),
    "mount": errno_of("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "bpf": errno_of("syscall", 321 if os.uname().machine == "x86_64" else 280, 0, 0, 0),
}
t = threading.Thread(target=lambda: None); t.start(); t.join()
found["subprocess"] = subprocess.run(["true"]).returncode
print(json.dumps(found))
"""


@pytest.mark.skipif(seccomp.program() is None, reason="no seccomp filter is described for this architecture")
def test_escape_syscalls_are_denied_and_the_rest_works(client, container, run, logs):
    found = json.loads(logs(run(client, container.id, ESCAPES)[0]).strip().splitlines()[-1])
    assert found == {"unshare_user": 1, "ptrace": 1, "mount": 1, "bpf": 1, "subprocess": 0}  # EPERM


def test_the_filter_is_well_formed():
    for machine in ("x86_64", "aarch64"):
        program = seccomp.program(machine)
        assert program is not None and len(program) % 8 == 0 and len(program) // 8 < 4096
    assert seccomp.program("sparc") is None
