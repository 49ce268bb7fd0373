"""Attack: a FIFO swapped in for a listed file. Opening it for reading used to block the server's event loop
until something wrote to it: every request to every container timed out.

Only regular files are ever opened for content; the download of a file that became a FIFO (or anything else)
is a 404 at once, and a bystander container answers meanwhile."""

from __future__ import annotations

import stat
import time

import httpx

from cellbox.local.testing import wait_until

SWAP = """
import os, subprocess, sys
open("victim.txt", "w").write("listed")
later = "import os, time; time.sleep(0.5); os.remove('victim.txt'); os.mkfifo('victim.txt')"
subprocess.Popen([sys.executable, "-c", later], cwd="/mnt/data", start_new_session=True)
print("armed")
"""


def test_a_fifo_in_place_of_a_listed_file_is_refused_without_blocking(http: httpx.Client, server, client, run, logs):
    attacker = client.containers.create(name="attacker")
    bystander = client.containers.create(name="bystander")
    try:
        call, _ = run(client, attacker.id, SWAP)
        assert "armed" in logs(call)
        listed = {f.path: f.id for f in client.containers.files.list(container_id=attacker.id)}
        victim = listed["/mnt/data/victim.txt"]
        on_disk = server.data_dir / "containers" / attacker.id / "victim.txt"
        wait_until(lambda: on_disk.exists() and stat.S_ISFIFO(on_disk.lstat().st_mode), what="the FIFO swap")

        started = time.monotonic()
        r = http.get(f"/containers/{attacker.id}/files/{victim}/content", timeout=5)
        assert r.status_code == 404, r.text
        assert time.monotonic() - started < 1.0

        # The server was never stuck: a bystander's print(1) answers within a second.
        started = time.monotonic()
        call, _ = run(client, bystander.id, "print(1)")
        assert logs(call).strip() == "1"
        assert time.monotonic() - started < 1.0

        # The next run's scan drops the FIFO from the listing instead of recording it as a file.
        run(client, attacker.id, "pass")
        assert "/mnt/data/victim.txt" not in {f.path for f in client.containers.files.list(container_id=attacker.id)}
    finally:
        client.containers.delete(attacker.id)
        client.containers.delete(bystander.id)


def test_special_files_are_never_listed_or_read(http: httpx.Client, client, container, run, logs):
    code = """
import os, socket
os.mkfifo("pipe")
s = socket.socket(socket.AF_UNIX); s.bind("sock")
os.symlink("/etc/passwd", "link")
open("plain.txt", "w").write("ok")
print(sorted(os.listdir(".")))
"""
    call, _ = run(client, container.id, code)
    assert "pipe" in logs(call)
    paths = {f.path for f in client.containers.files.list(container_id=container.id)}
    assert "/mnt/data/plain.txt" in paths
    assert not paths & {"/mnt/data/pipe", "/mnt/data/sock", "/mnt/data/link"}
