"""The sandbox: no network, read-only host, private /tmp and pids, hidden server state, scrubbed environment,
and a memory limit that bites without losing the container."""

from __future__ import annotations

import json
import os
import uuid

import openai
import pytest

from cellbox.local.jail import cgroups
from cellbox.local.testing import isolation_available, running_server

pytestmark = pytest.mark.skipif(not isolation_available(), reason="bubblewrap jails unavailable here")


def test_no_network_not_even_the_server(client, server, container, run, logs):
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    code = f"""
import socket
for addr in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(addr)
        print("CONNECTED", addr)
    except OSError as exc:
        print("refused", type(exc).__name__)
"""
    out = logs(run(client, container.id, code)[0])
    assert "CONNECTED" not in out
    assert out.count("refused") == 2


def test_host_is_read_only_and_tmp_is_private(client, container, run, logs):
    marker = f"cellbox-test-{uuid.uuid4().hex}"
    code = f"""
for path in ["/etc/{marker}", "/usr/{marker}", "/{marker}"]:
    try:
        open(path, "w").write("x")
        print("WROTE", path)
    except OSError as exc:
        print("denied", exc.errno)
open("/tmp/{marker}", "w").write("private")
print(open("/tmp/{marker}").read())
"""
    out = logs(run(client, container.id, code)[0])
    assert "WROTE" not in out
    assert out.count("denied") == 3
    assert "private" in out
    assert not os.path.exists(f"/tmp/{marker}")
    assert not os.path.exists(f"/etc/{marker}")


def test_server_state_and_other_containers_are_invisible(client, server, container, run, logs):
    other = client.containers.create(name="neighbour")
    try:
        client.containers.files.create(container_id=other.id, file=("secret.txt", b"neighbour's data"))
        code = f"""
import os
paths = [{str(server.data_dir)!r}, {str(server.data_dir / "containers" / other.id)!r}, os.path.expanduser("~root/.ssh")]
print([os.path.exists(p) for p in paths])
print(sorted(os.listdir("/mnt/data")))
"""
        out = logs(run(client, container.id, code)[0])
        assert "[False, False, False]" in out
        assert "secret.txt" not in out
    finally:
        client.containers.delete(other.id)


def test_own_pid_namespace(client, container, run, logs):
    code = "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), os.getpid())"
    count, pid = logs(run(client, container.id, code)[0]).split()
    assert int(count) < 10  # only the sandbox's own processes
    assert int(pid) < 10


@pytest.mark.integration
def test_environment_is_scrubbed(tmp_path, monkeypatch, run, logs):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("OCI_CLI_KEY_CONTENT", "oci-should-not-leak")
    with (
        running_server(tmp_path / "d", pool_size=0, token="tok-should-not-leak") as srv,
        openai.OpenAI(base_url=srv.base_url, api_key=srv.token, max_retries=0) as c,
    ):
        cid = c.containers.create(name="env").id
        out = logs(run(c, cid, "import os, json\nprint(json.dumps(dict(os.environ)))")[0])
        env = json.loads(out)
        assert "should-not-leak" not in out
        assert not [k for k in env if k.startswith(("OPENAI", "OCI", "CELLBOX", "AWS"))]
        assert env["HOME"] == "/tmp"
        assert "should-not-leak" not in srv.log()


def test_memory_limit_raises_memory_error_and_the_kernel_lives(client, container, run, logs):
    run(client, container.id, "survivor = 'here'")
    call, _ = run(client, container.id, "hog = bytearray(3 * 1024**3)")
    assert call.status == "completed"
    out = logs(call)
    assert "MemoryError" in out
    assert "memory limit is 1g" in out
    call, _ = run(client, container.id, "small = bytearray(200 * 1024**2)\nprint(survivor)")
    assert logs(call) == "here\n"


def test_a_bigger_limit_allows_more(client, container, run, logs):
    # A private mapping counts against the limit when made, before any page is touched: quick to test.
    code = """
import mmap
try:
    m = mmap.mmap(-1, 2 * 1024**3, flags=mmap.MAP_PRIVATE)
    print("mapped")
except OSError as exc:
    print("refused", exc.errno)
"""
    assert logs(run(client, container.id, code)[0]).startswith("refused")
    created = client.containers.create(name="big", memory_limit="4g")
    try:
        assert logs(run(client, created.id, code)[0]) == "mapped\n"
    finally:
        client.containers.delete(created.id)


def test_kernel_death_restarts_the_kernel_and_keeps_files(client, container, run, logs):
    client.containers.files.create(container_id=container.id, file=("kept.txt", b"kept"))
    run(client, container.id, "lost = 1")
    call, _ = run(client, container.id, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert call.status == "failed"
    assert "restarted" in logs(call)
    tree = cgroups.CgroupTree.detect()
    counted, _ = "memory" in tree.bases, tree.close()
    if isolation_available() and counted:  # no guess at memory when the server can tell
        assert "killed or crashed, not by the memory limit" in logs(call)
    else:
        assert "most likely it ran out of memory" in logs(call)
    call, _ = run(client, container.id, "print(open('kept.txt').read())\nprint('lost' in globals())")
    assert logs(call) == "kept\nFalse\n"
    assert [f.path for f in client.containers.files.list(container_id=container.id)] == ["/mnt/data/kept.txt"]


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/1/environ"])
def test_symlinks_planted_by_code_are_not_served(client, http, container, target, run):
    run(client, container.id, f"import os; os.symlink({target!r}, 'leak')")
    assert [f.path for f in client.containers.files.list(container_id=container.id)] == []


def test_other_kernels_and_host_services_are_out_of_reach(client, container, run, logs):
    other = client.containers.create(name="other-kernel")
    try:
        code = """
import glob, json, os
try:
    shadow = open("/etc/shadow").read()
except OSError:
    shadow = ""
print(json.dumps({
    "kernels": glob.glob("/tmp/cbx-*/*/kernel.py") + glob.glob("/opt/cellbox/*.py"),
    "run": os.listdir("/run") if os.path.isdir("/run") else [],
    "shadow": shadow,
}))
"""
        seen = json.loads(logs(run(client, container.id, code)[0]))
        # Only the kernel's own script; the other container's stays hidden, and so does the server's runtime folder.
        assert seen["kernels"] == ["/opt/cellbox/kernel.py"]
        assert seen["run"] == []
        assert seen["shadow"] == ""
    finally:
        client.containers.delete(other.id)


def test_a_flood_of_output_is_capped(client, container, run, logs):
    call, _ = run(client, container.id, "for _ in range(60):\n    print('x' * 100_000)")
    text = logs(call)
    assert len(text) < 5 * 1024 * 1024
    assert "[output truncated:" in text
    assert logs(run(client, container.id, "print('fine')")[0]) == "fine\n"


def test_the_kernels_own_folder_is_read_only_to_the_code(client, container, run, logs):
    """It is outside the container's quota (99 MB files written there escaped a 100 MB limit when it was a folder
    on the host's disk; it is now the jail's own tmpfs, read-only)."""
    code = """
import os, sys
try:
    open(os.path.join(os.path.dirname(sys.argv[0]), "fill"), "w")
    print("written")
except OSError as exc:
    print("refused", exc.errno)
open("/tmp/scratch", "w").write("tmp is the code's")
print(open("/tmp/scratch").read())
"""
    assert logs(run(client, container.id, code)[0]) == "refused 30\ntmp is the code's\n"  # EROFS
