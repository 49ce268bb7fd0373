"""Attack: a folder chain thousands deep in /mnt/data. The scan after each run recursed into RecursionError:
every later run of that container answered 500 and the server could not start on that data dir again.

Scans and removals are iterative and bounded: runs keep answering, the listing shows what a client can name,
the server restarts on the same data dir, and deleting the container removes the whole chain."""

from __future__ import annotations

import os
import time

import openai
import pytest

from cellbox.local.store import safepath
from cellbox.local.testing import running_server, wait_until

DEPTH = 3000  # 6,000 bytes of path: deeper than PATH_MAX too

CHAIN = f"""
import os
open("top.txt", "w").write("top")
os.mkdir("chain")
fd = os.open("chain", os.O_RDONLY | os.O_DIRECTORY)
for _ in range({DEPTH}):
    os.mkdir("d", dir_fd=fd)
    nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nxt
with open(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as f:
    f.write("deep")
os.makedirs("chain/d/d/shallow-dir", exist_ok=True)
open("chain/d/d/shallow-dir/near.txt", "w").write("near")
print("built")
"""


def _sdk(srv):
    return openai.OpenAI(base_url=srv.base_url, api_key=srv.token, max_retries=0)


def _depth(folder) -> int:
    depth, fd = 0, os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            try:
                nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                return depth
            os.close(fd)
            fd, depth = nxt, depth + 1
    finally:
        os.close(fd)


@pytest.mark.integration
@pytest.mark.slow
def test_a_deep_chain_breaks_neither_runs_nor_restarts_nor_deletion(tmp_path, run, logs):
    data = tmp_path / "data"
    try:
        with running_server(data, pool_size=0) as srv, _sdk(srv) as client:
            attacker = client.containers.create(name="attacker")
            bystander = client.containers.create(name="bystander")
            kept = client.containers.files.create(container_id=bystander.id, file=("kept.txt", b"kept"))
            call, _ = run(client, attacker.id, CHAIN)
            assert "built" in logs(call)
            assert _depth(data / "containers" / attacker.id / "chain") == DEPTH

            listed = {f.path for f in client.containers.files.list(container_id=attacker.id, limit=100)}
            assert "/mnt/data/top.txt" in listed
            assert "/mnt/data/chain/d/d/shallow-dir/near.txt" in listed
            assert not any(p.endswith("bottom.txt") for p in listed)  # past the scan's depth: not listed
            call, _ = run(client, attacker.id, "print(6 * 7)")
            assert logs(call).strip() == "42"
            started = time.monotonic()
            call, _ = run(client, bystander.id, "print(1)")
            assert logs(call).strip() == "1" and time.monotonic() - started < 1.0

        # The server starts again on that data dir, with both containers and their files.
        with running_server(data, pool_size=0) as srv, _sdk(srv) as client:
            assert {f.path for f in client.containers.files.list(container_id=attacker.id)} >= {"/mnt/data/top.txt"}
            content = client.containers.files.content.retrieve(kept.id, container_id=bystander.id).read()
            assert content == b"kept"
            call, _ = run(client, attacker.id, "print(open('/mnt/data/top.txt').read())")
            note, out = logs(call).strip().split("\n")
            assert "restarted" in note and "the server restarted" in note and out == "top"

            client.containers.delete(attacker.id)
            assert not (data / "containers" / attacker.id).exists()
            wait_until(lambda: not any((data / "trash").iterdir()), timeout=30, what="the chain to be removed")
            assert client.containers.files.list(container_id=bystander.id).data[0].id == kept.id
    finally:
        safepath.remove_tree(data)  # shutil.rmtree, which cleans tmp_path, can't


def test_walk_and_remove_are_iterative(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("a")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(5000):  # far past the recursion limit and PATH_MAX
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.mkfifo("fifo", dir_fd=fd)
    os.close(fd)
    (root / "d" / "b.txt").write_text("b")
    os.chmod(root / "d" / "d", 0o000)  # the code may take permissions away
    try:
        found = dict(safepath.walk_files(str(root)))
        assert set(found) == {"a.txt", "d/b.txt"}
        descriptors = len(os.listdir("/proc/self/fd"))
        safepath.remove_tree(root)
        assert not root.exists()
        assert len(os.listdir("/proc/self/fd")) == descriptors
    finally:
        safepath.remove_tree(root)


def test_walk_stops_at_its_entry_cap(tmp_path, monkeypatch):
    for i in range(50):
        (tmp_path / f"f{i}").write_text("x")
    monkeypatch.setattr(safepath, "MAX_SCAN_ENTRIES", 10)
    assert len(list(safepath.walk_files(str(tmp_path)))) == 10
