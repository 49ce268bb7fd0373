"""Attack: a container using more than its share. Memory was a per-process RLIMIT_DATA (three children used
2.9 GB in a 1g container; tmpfs folders held 12 GB each), processes and CPU had no limit at all.

Each kernel runs in a control group of its own: memory counts every process and /tmp, processes and CPU are
capped; the server says at start what the host does not let it enforce."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
from localhelp import run_logs

from cellbox.local.jail import cgroups
from cellbox.local.testing import running_server, wait_until

LIMITED = cgroups.CgroupTree.detect()
pytestmark = pytest.mark.skipif(
    bool(LIMITED.not_enforced), reason=f"this host can't enforce: {', '.join(LIMITED.not_enforced)}"
)
LIMITED.close()


@pytest.fixture(scope="module")
def limited(tmp_path_factory, starts_processes):
    data = tmp_path_factory.mktemp("limits")
    with (
        running_server(data, pool_size=0, max_processes=64, cpu_limit=0.5) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key=srv.token, max_retries=0, timeout=120) as client,
    ):
        yield srv, client


CHILDREN = """
import subprocess, sys
hog = "x = bytearray(600 << 20)\\nfor i in range(0, len(x), 4096): x[i] = 1\\n"
hog += "import time; time.sleep(3)\\nprint('held')"
procs = [subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True) for _ in range(3)]
results = [(p.wait(), p.stdout.read().strip()) for p in procs]
print("held:", sum(out == "held" for _, out in results), "killed:", sum(code == -9 for code, _ in results))
"""


def test_children_share_the_container_memory_limit(limited):
    _, client = limited
    box = client.containers.create(name="hog", memory_limit="1g")
    try:
        out = run_logs(client, box.id, CHILDREN)
        held = int(out.split("held:")[1].split()[0])
        assert held <= 1, out  # 3 x 600 MB can't live in 1g together
        assert "killed: 0" not in out, out
        assert "memory limit (1g) covers every process" in out
        assert run_logs(client, box.id, "print('kernel alive')").strip() == "kernel alive"
    finally:
        client.containers.delete(box.id)


def test_tmpfs_counts_against_memory(limited):
    _, client = limited
    box = client.containers.create(name="shm", memory_limit="1g")
    try:
        code = """
import os
written = 0
try:
    with open('/dev/shm/fill', 'wb') as f:
        for _ in range(2048):
            f.write(b'x' * (1 << 20)); f.flush(); written += 1
except OSError as exc:
    print('stopped', exc.errno)
print('MiB', written)
"""
        out = run_logs(client, box.id, code)
        # Either the write fails or the writer is killed: never 2 GiB of RAM held by a 1g container.
        assert "MiB 2048" not in out, out
        assert "kernel died" in out or "stopped" in out, out
    finally:
        client.containers.delete(box.id)


def test_processes_are_capped(limited):
    _, client = limited
    box = client.containers.create(name="forks")
    try:
        code = """
import subprocess
procs, refused = [], None
for i in range(500):
    try:
        procs.append(subprocess.Popen(['sleep', '30']))
    except OSError as exc:
        refused = exc.errno
        break
print('started', len(procs), 'refused', refused)
for p in procs:
    p.kill(); p.wait()
"""
        out = run_logs(client, box.id, code)
        started = int(out.split("started")[1].split()[0])
        assert started < 64, out
        assert "refused 11" in out, out  # EAGAIN
        started_at = time.monotonic()
        bystander = client.containers.create(name="bystander")
        assert run_logs(client, bystander.id, "print(1)").strip() == "1"
        assert time.monotonic() - started_at < 5
        client.containers.delete(bystander.id)
    finally:
        client.containers.delete(box.id)


def test_cpu_is_capped(limited):
    _, client = limited
    box = client.containers.create(name="spin")
    try:
        code = """
import os, time, multiprocessing
def spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass
start_wall, start_cpu = time.time(), os.times()
procs = [multiprocessing.Process(target=spin, args=(2,)) for _ in range(2)]
for p in procs: p.start()
for p in procs: p.join()
t = os.times()
used = (t.children_user + t.children_system) - (start_cpu.children_user + start_cpu.children_system)
print('cpus', round(used / (time.time() - start_wall), 2))
"""
        out = run_logs(client, box.id, code)
        cpus = float(out.split("cpus")[1].split()[0])
        assert cpus < 0.8, out  # limit 0.5 CPU; two spinning processes would use 2 unlimited
    finally:
        client.containers.delete(box.id)


def test_groups_are_removed_with_their_containers(limited):
    srv, client = limited
    base = Path("/sys/fs/cgroup/pids")
    own = [p for p in base.glob(f"cellbox-{srv.process.pid}")]
    assert own, "the server made its subtree"
    box = client.containers.create(name="short")
    before = {p.name for p in own[0].iterdir() if p.is_dir()}
    client.containers.delete(box.id)
    wait_until(lambda: len({p.name for p in own[0].iterdir() if p.is_dir()}) == len(before) - 1, what="removal")


def test_a_host_without_delegation_says_what_is_not_enforced(tmp_path):
    root = tmp_path / "cgroup"
    (root / "srv").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids")
    (root / "srv" / "cgroup.subtree_control").write_text("cpu")  # only cpu delegated
    proc = tmp_path / "self-cgroup"
    proc.write_text("0::/srv\n")
    tree = cgroups.CgroupTree.detect(root, proc)
    assert tree.version == 2
    assert set(tree.bases) == {"cpu"}
    assert any("memory" in what for what in tree.not_enforced)
    assert "processes" in tree.not_enforced
    base = root / "srv" / next(iter(tree.bases.values())).name
    assert (base / "cgroup.subtree_control").read_text() == "+cpu"


def test_closing_waits_for_every_kernels_group_at_once_not_one_after_another(tmp_path):
    base = tmp_path / "cellbox-1"
    for n in range(4):  # four groups that never empty (a file stands for a process that won't go)
        (base / f"k-{n}").mkdir(parents=True)
        (base / f"k-{n}" / "stuck").write_text("")
    tree = cgroups.CgroupTree(1, {"memory": base, "pids": base, "cpu": base})
    started = time.monotonic()
    tree.close(timeout=0.5)
    assert time.monotonic() - started < 1.5  # one wait (was 4 x 0.5 s, and 4 x 5 s with many kernels at a stop)
    (base / "k-2" / "stuck").unlink()
    tree.close(timeout=0.5)
    assert not (base / "k-2").exists() and (base / "k-1").exists()  # what could go went
