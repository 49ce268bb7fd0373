"""Bringing a container's file rows in line with its /mnt/data after a run: everything, or only what its
watcher saw change (paths, folders made or moved in, folders removed or moved away)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from . import BATCH, Store, file_row, safepath
from .watch import Changes, stat_regular


def sync(store: Store, container_id: str, changes: Changes | None = None) -> list[dict]:
    """Brings the rows in line with what is in /mnt/data; returns the new or changed files.

    Files whose size and mtime are unchanged keep their rows (and ids); new or changed ones get a new
    row with source `assistant`; rows of vanished files are dropped. With `changes` (what the
    container's watcher saw), only those paths and folders are looked at; without, everything is.
    """
    root = store.container_dir(container_id)
    if not root.is_dir():
        return []
    if changes is None or changes.everything:
        known = _known(store, container_id, "")
        return _sync(store, container_id, known, safepath.walk_files(str(root)), gone_unseen=True)
    for folder in changes.gone_folders:
        _forget_folder(store, container_id, folder)
    changed: list[dict] = []
    for folder in changes.folders:
        known = _known(store, container_id, folder)
        changed += _sync(store, container_id, known, safepath.walk_files(str(root), under=folder), gone_unseen=True)
    found = []
    gone: list[tuple[str, tuple | dict]] = []
    for rel in changes.paths:
        st = stat_regular(str(root), rel) if safepath.is_nameable(rel) else None
        if st is None:
            gone.append(("DELETE FROM container_files WHERE container_id = ? AND path = ?", (container_id, rel)))
        else:
            found.append((rel, st))
    for start in range(0, len(gone), BATCH):  # a transaction per batch, not per file
        store.write(gone[start : start + BATCH])
    if found:
        rows = (
            store.query(
                f"SELECT * FROM container_files WHERE container_id = ? AND path IN ({','.join('?' * len(found))})",
                (container_id, *[rel for rel, _ in found]),
            )
            if len(found) < 500
            else list(_known(store, container_id, "").values())
        )
        known = {row["path"]: row for row in rows}
        changed += _sync(store, container_id, known, iter(found), gone_unseen=False)
    return changed


def _known(store: Store, container_id: str, folder: str) -> dict[str, dict]:
    if not folder:
        rows = store.query("SELECT * FROM container_files WHERE container_id = ?", (container_id,))
    else:
        rows = store.query(f"SELECT * FROM container_files WHERE {_UNDER}", (container_id, *_bounds(folder)))
    return {row["path"]: row for row in rows}


# The paths under a folder as a range of the (container_id, path) index, so a run that makes or removes a folder
# looks at that folder's rows only, not at every row of the container: "a/b/" <= path < "a/b0" ("0" follows
# "/").
_UNDER = "container_id = ? AND path >= ? AND path < ?"


def _bounds(folder: str) -> tuple[str, str]:
    return folder + "/", folder + "0"


def _forget_folder(store: Store, container_id: str, folder: str) -> None:
    store.write([(f"DELETE FROM container_files WHERE {_UNDER}", (container_id, *_bounds(folder)))])


def _sync(
    store: Store,
    container_id: str,
    known: dict[str, dict],
    files: Iterator[tuple[str, os.stat_result]],
    gone_unseen: bool,
) -> list[dict]:
    seen: set[str] = set()
    changed: list[dict] = []
    for rel, st in files:
        seen.add(rel)
        row = known.get(rel)
        if row is not None and row["bytes"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
            continue
        changed.append(file_row(container_id, rel, st, "assistant"))
    store.record_rows(changed)
    if gone_unseen:
        gone = [row["id"] for path, row in known.items() if path not in seen]
        for start in range(0, len(gone), BATCH):
            batch = gone[start : start + BATCH]
            store.write([("DELETE FROM container_files WHERE id = ?", (fid,)) for fid in batch])
    return changed
