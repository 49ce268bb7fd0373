"""After a run, only what the container's watcher saw change is looked at again, and the file list still
matches the folder exactly: created, changed, removed and renamed files and folders, at any depth."""

from __future__ import annotations

import os
import time

from cellbox.local.store import Store, filesync, watch


def _paths(client, container_id: str) -> dict[str, str]:
    return {f.path.removeprefix("/mnt/data/"): f.id for f in client.containers.files.list(container_id=container_id)}


def test_the_listing_follows_every_kind_of_change(client, container, run):
    run(
        client,
        container.id,
        "import os\nos.makedirs('a/b', exist_ok=True)\n"
        "for p in ['x.txt', 'a/y.txt', 'a/b/z.txt']:\n    open(p, 'w').write('1')",
    )
    first = _paths(client, container.id)
    assert set(first) == {"x.txt", "a/y.txt", "a/b/z.txt"}
    code = """
import os, shutil, time
time.sleep(0.01)
open('x.txt', 'w').write('2')                  # changed, same size
os.rename('a/y.txt', 'a/moved.txt')            # renamed
os.rename('a/b', 'c')                           # a folder moved, with what it holds
os.makedirs('new/deep/er', exist_ok=True)       # folders made and filled in one run
open('new/deep/er/w.txt', 'w').write('w')
os.mkfifo('pipe')                               # not a regular file: never listed
"""
    run(client, container.id, code)
    second = _paths(client, container.id)
    assert set(second) == {"x.txt", "a/moved.txt", "c/z.txt", "new/deep/er/w.txt"}
    assert second["x.txt"] != first["x.txt"]  # a new version
    run(client, container.id, "import shutil, os\nshutil.rmtree('new')\nos.remove('x.txt')")
    assert set(_paths(client, container.id)) == {"a/moved.txt", "c/z.txt"}
    # A folder's records are found by a range of names: neighbours that sort next to it are not its own.
    code = "import os\nfor p in ['n-1/f', 'n.txt', 'n0', 'n/f']:\n"
    code += "    os.makedirs(os.path.dirname(p) or '.', exist_ok=True)\n    open(p, 'w').write('1')"
    run(client, container.id, code)
    run(client, container.id, "import shutil\nshutil.rmtree('n')")
    assert set(_paths(client, container.id)) == {"a/moved.txt", "c/z.txt", "n-1/f", "n.txt", "n0"}


def test_a_watcher_reports_only_what_changed(tmp_path):
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    watcher = watch.Watcher(str(root))
    assert watcher.take().everything  # the first look is a whole scan
    (root / "d" / "f.txt").write_text("x")
    (root / "e").mkdir()
    (root / "e" / "g.txt").write_text("y")
    changes = watcher.take()
    assert not changes.everything
    assert "d/f.txt" in changes.paths and "e" in changes.folders
    os.rename(root / "e", root / "e2")
    changes = watcher.take()
    assert "e" in changes.gone_folders and "e2" in changes.folders
    assert watcher.take() == watch.Changes()
    watcher.close()


def test_a_few_changed_files_are_quick_and_anything_more_is_left_to_take(tmp_path):
    # quick() runs on the server's event loop: it takes a few files' events, never a folder to look into or a flood.
    root = tmp_path / "root"
    root.mkdir()
    watcher = watch.Watcher(str(root))
    assert watcher.quick() is None  # nothing known yet: a whole scan, for take()
    watcher.take()
    for name in ("a.txt", "b.txt"):
        (root / name).write_text("x")
    assert watcher.quick() == watch.Changes(paths={"a.txt", "b.txt"})
    assert watcher.quick() == watch.Changes()  # taken: collecting anew
    (root / "c.txt").write_text("x")
    (root / "d").mkdir()
    (root / "d" / "inside.txt").write_text("x")  # in a folder not watched yet: only a walk finds it
    assert watcher.quick() is None
    changes = watcher.take()  # what quick() read is not lost
    assert "c.txt" in changes.paths and "d" in changes.folders
    for i in range(watch.QUICK_PATHS + 1):
        (root / f"f{i}").write_bytes(b"")
    assert watcher.quick() is None and len(watcher.take().paths) == watch.QUICK_PATHS + 1
    for i in range(200):  # more events queued than quick() reads on the event loop
        (root / f"g{i}").write_bytes(b"x")
    assert watcher.quick() is None and len(watcher.take().paths) == 200
    watcher.close()


def test_too_many_folders_fall_back_to_whole_scans(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "MAX_WATCHES", 5)
    root = tmp_path / "root"
    for i in range(10):
        (root / f"d{i}").mkdir(parents=True)
    watcher = watch.Watcher(str(root))
    watcher.take()
    (root / "d0" / "f").write_text("x")
    assert watcher.take().everything  # it could not watch them all: it says so instead of missing changes
    watcher.close()


def test_an_overflowed_queue_means_a_whole_scan(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    watcher = watch.Watcher(str(root))
    watcher.take()
    with open("/proc/sys/fs/inotify/max_queued_events") as limit:
        events = int(limit.read())
    for i in range(events // 2 + 100):  # a create and a close-write each (identical events would be merged)
        (root / f"f{i}").write_bytes(b"x")
    assert watcher.take().everything
    watcher.close()


def test_syncing_with_changes_matches_a_whole_scan(tmp_path):
    store = Store(tmp_path / "data")
    try:
        cid = store.create_container("w", 20, "1g", None)["id"]
        root = store.container_dir(cid)
        watcher = watch.Watcher(str(root))
        (root / "keep").mkdir()
        (root / "keep" / "a.txt").write_text("a")
        filesync.sync(store, cid, watcher.take())
        time.sleep(0.01)
        (root / "keep" / "a.txt").write_text("b")
        (root / "keep" / "sub").mkdir()
        (root / "keep" / "sub" / "c.txt").write_text("c")
        filesync.sync(store, cid, watcher.take())
        incremental = {
            r["path"]: (r["bytes"], r["mtime_ns"]) for r in store.list_container_files(cid, 100, "asc", None).rows
        }
        filesync.sync(store, cid, None)  # a whole scan finds nothing more to change
        whole = {r["path"]: (r["bytes"], r["mtime_ns"]) for r in store.list_container_files(cid, 100, "asc", None).rows}
        assert (
            incremental
            == whole
            == {
                "keep/a.txt": (1, (root / "keep" / "a.txt").stat().st_mtime_ns),
                "keep/sub/c.txt": (1, (root / "keep" / "sub" / "c.txt").stat().st_mtime_ns),
            }
        )
        watcher.close()
    finally:
        store.close()
