"""The store on its own: recovery after a crash, id order, and the scan of files written by code."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from cellbox.local.store import Store, filesync, ids, safepath


def test_ids_sort_by_creation_and_carry_the_time():
    made = [ids.new_container_id() for _ in range(200)]
    assert made == sorted(made)
    assert len(set(made)) == 200


def test_crash_leftovers_are_cleaned_on_open(tmp_path):
    store = Store(tmp_path)
    kept = store.create_container("kept", 20, "1g", None)
    (store.tmp_dir / "half-written-upload").write_bytes(b"partial")
    (store.files_dir / "file-nobody-recorded").write_bytes(b"x")
    (store.containers_dir / "cntr_never_recorded").mkdir()
    (store.containers_dir / ".pool-abc").mkdir()
    store.close()
    store = Store(tmp_path)
    assert list(store.tmp_dir.iterdir()) == []
    assert list(store.files_dir.iterdir()) == []
    assert sorted(p.name for p in store.containers_dir.iterdir()) == [kept["id"]]
    assert store.get_container(kept["id"])["name"] == "kept"


def test_scan_keeps_ids_of_unchanged_files_and_drops_vanished_ones(tmp_path):
    store = Store(tmp_path)
    cid = store.create_container("scan", 20, "1g", None)["id"]
    folder = store.container_dir(cid)
    (folder / "a.txt").write_text("a")
    os.makedirs(folder / "sub")
    (folder / "sub" / "b.txt").write_text("b")
    os.symlink("/etc/passwd", folder / "link")
    first = {row["path"]: row for row in filesync.sync(store, cid)}
    assert set(first) == {"a.txt", "sub/b.txt"}
    assert {row["source"] for row in first.values()} == {"assistant"}
    assert filesync.sync(store, cid) == []  # nothing changed: no new records
    (folder / "a.txt").write_text("changed")
    os.remove(folder / "sub" / "b.txt")
    changed = filesync.sync(store, cid)
    assert [row["path"] for row in changed] == ["a.txt"]
    assert changed[0]["id"] != first["a.txt"]["id"]
    rows = store.list_container_files(cid, 100, "asc", None).rows
    assert [row["path"] for row in rows] == ["a.txt"]


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/./b", "a\nb", "x" * 256, "y/" * 600 + "z"])
def test_unsafe_names(name):
    with pytest.raises(safepath.UnsafePath):
        safepath.split_name(name)


def test_safe_names():
    assert safepath.split_name("/mnt/data/sub/x.csv") == ["sub", "x.csv"]
    assert safepath.split_name("résumé v2.pdf") == ["résumé v2.pdf"]


def test_an_upload_read_and_removed_the_moment_it_lands_is_still_recorded(tmp_path, monkeypatch):
    # The runtime waits for a run's request, reads it and may remove it before the upload's answer is made: the
    # upload landed all the same, and saying "no container" would fail a cell that ran.
    store = Store(tmp_path, owner=(os.getuid(), os.getgid()))
    cid = store.create_container("race", 20, "1g", None)["id"]
    upload = store.tmp_dir / "upload"
    upload.write_bytes(b'{"run_id": "r"}')
    real_rename = os.rename

    def rename_then_consumed(src, dst, *, dst_dir_fd):
        real_rename(src, dst, dst_dir_fd=dst_dir_fd)
        os.remove(dst, dir_fd=dst_dir_fd)

    monkeypatch.setattr(os, "rename", rename_then_consumed)
    row = store.add_container_file(cid, ".cellbox/runs/r.request.json", upload, "user")
    assert row["path"] == ".cellbox/runs/r.request.json" and row["bytes"] == 15
    assert not (store.container_dir(cid) / ".cellbox" / "runs" / "r.request.json").exists()


def test_a_containers_record_read_from_memory_follows_every_change_and_a_reopened_store(tmp_path):
    store = Store(tmp_path)
    first, second = (store.create_container(name, 20, "1g", None)["id"] for name in ("a", "b"))
    store.get_container(first)["status"] = "changed by a caller"  # a copy: what the store keeps is not touched
    assert store.get_container(first)["status"] == "running"
    store.touch(first, 12345.0)
    assert store.get_container(first)["last_active"] == 12345.0
    store.expire_container(first)
    store.touch(first, 99999.0)  # an expired container is not refreshed
    assert store.get_container(first)["status"] == "expired" and store.get_container(first)["last_active"] == 12345.0
    assert store.delete_container(second) and store.get_container(second) is None
    store.close()
    again = Store(tmp_path)
    assert again.get_container(first)["status"] == "expired" and again.get_container(second) is None
    assert again.get_container("cntr_never_made") is None


def test_an_upload_into_a_filesystem_of_its_own_lands_whole_or_not_at_all(tmp_path):
    """A container with a disk image: the upload, made in the data dir's tmp/, can't be renamed there (EXDEV). Its
    bytes are copied into an unnamed file, named once complete; past the room left, nothing appears."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small filesystem: run the suite as root (CI does)")
    store = Store(tmp_path / "data")
    cid = store.create_container("own", 20, "1g", None)["id"]
    folder = store.container_dir(cid)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    try:
        fits, too_big = store.temp_path(), store.temp_path()
        fits.write_bytes(b"f" * (200 << 10))
        too_big.write_bytes(b"b" * (2 << 20))
        row = store.add_container_file(cid, "sub/fits.bin", fits, "user")
        assert (folder / "sub" / "fits.bin").read_bytes() == b"f" * (200 << 10)
        assert filesync.sync(store, cid) == []  # recorded as placed: no change seen by the next scan
        assert row["bytes"] == 200 << 10
        with pytest.raises(OSError) as refused:
            store.add_container_file(cid, "sub/too-big.bin", too_big, "user")
        assert refused.value.errno == errno.ENOSPC
        assert sorted(os.listdir(folder / "sub")) == ["fits.bin"]  # no partial file, no temporary name left
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        store.close()
