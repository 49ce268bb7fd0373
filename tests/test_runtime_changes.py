"""What a cell changed, as the runtime finds it: inotify watches and the before/after snapshot agree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cellbox.runtime import changes


@pytest.fixture(params=["Watches", "Snapshots"])
def tracked(request, tmp_path: Path):
    root, skip = tmp_path / "data", tmp_path / "data" / ".cellbox"
    (root / "old" / "deep").mkdir(parents=True)
    skip.mkdir()
    (root / "kept.txt").write_text("same")
    (root / "edited.txt").write_text("before")
    (root / "old" / "deep" / "gone.txt").write_text("x")
    (root / "old" / "moved.txt").write_text("m")
    made = getattr(changes, request.param)(str(root), str(skip))
    yield root, skip, made
    getattr(made, "close", lambda: None)()


def test_the_files_a_cell_wrote_and_only_those(tracked) -> None:
    root, skip, made = tracked
    made.start()
    (root / "edited.txt").write_text("after, longer")
    (root / "new.txt").write_text("new")
    (root / "fresh" / "inner").mkdir(parents=True)  # a folder made during the cell, files written at once
    (root / "fresh" / "inner" / "a.csv").write_text("1,2")
    (root / "old" / "deep" / "gone.txt").unlink()
    os.replace(root / "old" / "moved.txt", root / "old" / "deep" / "there.txt")
    (skip / "result.json").write_text("{}")  # cellbox's own
    os.symlink("/etc/passwd", root / "link")
    found = made.changed()
    wanted = {root / "edited.txt": 13, root / "new.txt": 3, root / "fresh" / "inner" / "a.csv": 3}
    wanted[root / "old" / "deep" / "there.txt"] = 1
    assert found == {str(path): size for path, size in wanted.items()}
    made.start()
    assert made.changed() == {}  # the next cell starts clean
    (root / "fresh" / "inner" / "a.csv").write_text("1,2,3")  # a folder made in an earlier cell is watched
    assert made.changed() == {str(root / "fresh" / "inner" / "a.csv"): 5}


def test_the_tracker_of_a_folder_is_made_once_and_prefers_watches(tmp_path: Path) -> None:
    one = changes.tracker(str(tmp_path), str(tmp_path / ".cellbox"))
    assert changes.tracker(str(tmp_path) + "/", str(tmp_path / ".cellbox")) is one
    assert isinstance(one, changes.Watches)  # Linux, as the containers are


def test_lost_events_fall_back_to_what_was_written_since_the_start(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("old")
    os.utime(tmp_path / "old.txt", (1, 1))
    made = changes.Watches(str(tmp_path), str(tmp_path / ".cellbox"))
    made.start()
    (tmp_path / "new.txt").write_text("new")
    made._overflowed = True  # as an IN_Q_OVERFLOW event sets it
    assert made.changed() == {str(tmp_path / "new.txt"): 3}
    made.close()


def test_a_folder_that_cant_be_watched_is_counted_and_snapshots_take_over(tmp_path: Path, monkeypatch) -> None:
    made = changes.tracker(str(tmp_path), str(tmp_path / ".cellbox"))
    assert isinstance(made, changes.Watches)
    made.start()

    def no_watches_left(folder: str, depth: int) -> None:
        raise OSError(28, "No space left on device")  # ENOSPC: the user's inotify watches are used up

    monkeypatch.setattr(made, "_watch", no_watches_left)
    (tmp_path / "new" / "deeper").mkdir(parents=True)
    (tmp_path / "new" / "deeper" / "f.txt").write_text("seen")
    assert made.changed() == {str(tmp_path / "new" / "deeper" / "f.txt"): 4}  # by its time, not missed
    after = changes.tracker(str(tmp_path), str(tmp_path / ".cellbox"))
    assert isinstance(after, changes.Snapshots)  # what can't be watched is compared from now on
