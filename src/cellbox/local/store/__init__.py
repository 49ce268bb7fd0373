"""Durable state: metadata in SQLite, file bytes in the data dir, and each container's /mnt/data on the host.

    Store (here)  every read and write of durable state, atomic renames
    filesync      a container's file rows brought in line with its /mnt/data after a run
    ids           the ids the server issues, and the check that a string is one (only they name folders and files)
    safepath      paths under /mnt/data that cannot escape it (no symlink following); bounded scans, deep removals
    watch         what changed in a container's /mnt/data since the last look (inotify)
    diskimages    each container's /mnt/data as a filesystem of its own: a loop-mounted ext4 image
    disk          the disk quota, kept at all times (by a filesystem per container, or measured), and a reserve

Layout of the data dir::

    cellbox.sqlite3        containers, container files, files (WAL, survives kill -9)
    containers/<cntr_id>/  a container's /mnt/data, bound into its jail: a folder, or where its disk image is
                           mounted (diskimages.py)
    disks/                 the containers' disk images, where they have them
    files/<file-id>        bytes of the Files API
    tmp/                   uploads in flight; renamed into place when complete, so no partial file is ever seen
    trash/                 folders of deleted or expired containers, being removed in the background

Only ids of the shapes in ids.py ever name a folder or a file: `container_dir` and `file_path` refuse anything
else, so a string from a URL can't point at the data dir itself or outside it.

A container file is an immutable version: writing a path anew (upload or code) gives it a new id, so a client
can tell new or changed files by their ids. A file the code leaves unchanged keeps its id.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import ids, safepath
from .diskimages import DiskImages

log = logging.getLogger("cellbox.local")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_active REAL NOT NULL,
    expires_minutes INTEGER NOT NULL,
    memory_limit TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_name ON containers (name);
CREATE TABLE IF NOT EXISTS container_files (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    UNIQUE (container_id, path)
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    gone_at REAL
);
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    kept_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    document TEXT NOT NULL
);
"""


# A file of the Files API is kept until its time is up (it may be removed a moment later: it is gone already).
_KEPT = "(gone_at IS NULL OR gone_at > ?)"
BATCH = 500  # container file rows written per transaction
INSERT_FILE = "INSERT INTO container_files VALUES (:id, :container_id, :path, :bytes, :source, :created_at, :mtime_ns)"


def file_row(container_id: str, rel: str, st: os.stat_result, source: str) -> dict:
    """The record of a new version of a container file."""
    return {
        "id": ids.new_container_file_id(),
        "container_id": container_id,
        "path": rel,
        "bytes": st.st_size,
        "source": source,
        "created_at": int(time.time()),
        "mtime_ns": st.st_mtime_ns,
    }


class UnknownId(KeyError):
    """A string that is not an id this server issues: it names no folder or file."""


@dataclass
class Page:
    rows: list[dict]
    has_more: bool


class Store:
    """All reads and writes of durable state; safe to call from any thread."""

    def __init__(
        self,
        data_dir: Path,
        on_full: Callable[[], None] | None = None,
        owner: tuple[int, int] | None = None,
        disks: DiskImages | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.containers_dir = self.data_dir / "containers"
        self.files_dir = self.data_dir / "files"
        self.tmp_dir = self.data_dir / "tmp"
        self.trash_dir = self.data_dir / "trash"
        for d in (self.data_dir, self.containers_dir, self.files_dir, self.tmp_dir, self.trash_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self._lock = threading.RLock()
        # The containers' rows as the database has them, each read once: every operation on a container reads
        # its record (a cell's run, four times) and only this class writes them.
        self._containers: dict[str, dict] = {}
        self._on_full = on_full
        self.owner = owner  # who files put in a container belong to (its code's user), if not the server
        self.disks = disks
        self._db = sqlite3.connect(self.data_dir / "cellbox.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL with synchronous=NORMAL: a committed transaction survives the process being killed; only a
        # power loss can lose the last ones.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        for column, kind in (("expires_at", "INTEGER"), ("gone_at", "REAL")):  # a data dir of an earlier version
            if column not in columns:
                self._db.execute(f"ALTER TABLE files ADD COLUMN {column} {kind}")
        if disks is not None:
            disks.unmount_stale()  # a killed server's mounts: before cleaning, a mount point can't be removed
        self._clean_tmp()
        self._clean_orphans()
        if disks is not None:
            disks.recover({row["id"] for row in self.running_containers()})

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self.disks is not None:
            self.disks.close()

    def _clean_tmp(self) -> None:
        # Leftovers of uploads interrupted by a crash, and of warm kernels never handed out.
        for path in [*self.tmp_dir.iterdir(), *self.trash_dir.iterdir()]:
            _remove(path)
        for path in self.containers_dir.glob(".pool-*"):
            _remove(path)

    def _clean_orphans(self) -> None:
        # A crash between moving bytes into place and recording them leaves bytes nobody can name.
        files = {row["id"] for row in self.query("SELECT id FROM files")}
        for path in self.files_dir.iterdir():
            if path.name not in files:
                _remove(path)
        containers = {row["id"] for row in self.query("SELECT id FROM containers WHERE status = 'running'")}
        for path in self.containers_dir.iterdir():
            if path.name.startswith("cntr_") and path.name not in containers:
                _remove(path)

    def query(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, args).fetchall()]

    def _exec(self, sql: str, args: tuple | dict = ()) -> int:
        return self.write([(sql, args)])[0]

    def write(self, steps: list[tuple[str, tuple | dict]]) -> list[int]:
        """Runs the statements as one transaction; on a full disk, gives the reserve back and tries once more (so
        deleting, which frees room, works even then). Returns each statement's row count."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._db.execute("BEGIN")
                    counts = [self._db.execute(sql, args).rowcount for sql, args in steps]
                    self._db.execute("COMMIT")
                    return counts
                except sqlite3.OperationalError as exc:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    if attempt == 2 or "full" not in str(exc) or self._on_full is None:
                        raise
                    self._on_full()
        raise AssertionError("unreachable")

    def _page(self, table: str, where: str, args: tuple, limit: int, order: str, after: str | None) -> Page:
        op, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        if after:
            where += f" AND id {op} ?"
            args = (*args, after)
        rows = self.query(f"SELECT * FROM {table} WHERE {where} ORDER BY id {direction} LIMIT ?", (*args, limit + 1))
        return Page(rows[:limit], len(rows) > limit)

    def _discard(self, folder: Path) -> None:
        """Removes a folder without making the caller wait: renamed out of sight now, deleted in a thread (a disk
        image: unmounted and removed, at once)."""
        if self.disks is not None and self.disks.owns(folder):
            self.disks.release(folder)
            return
        trash = self.trash_dir / secrets.token_hex(12)
        try:
            os.rename(folder, trash)
        except FileNotFoundError:
            return
        threading.Thread(target=safepath.remove_tree, args=(trash,), daemon=True).start()

    def temp_path(self) -> Path:
        """A fresh path in the data dir's tmp folder (same filesystem as the destinations, so rename works)."""
        return self.tmp_dir / secrets.token_hex(12)

    # -- containers -------------------------------------------------------------------------------------

    def container_dir(self, container_id: str) -> Path:
        if not ids.is_container_id(container_id):
            raise UnknownId(container_id)
        return self.containers_dir / container_id

    def make_folder(self, folder: Path) -> None:
        """A container's (or a warm kernel's) folder in containers/: with a disk image of its own where the server
        makes them, else (or when one can't be made: the disk is full) a plain folder, its usage measured."""
        if self.disks is not None and self.disks.making:
            try:
                self.disks.make(folder)
                return
            except OSError as exc:
                log.warning("%s: no disk image (%s): its disk use is measured instead", folder.name, exc)
        folder.mkdir()

    def remove_folder(self, folder: Path) -> None:
        """Removes a folder make_folder made (a warm kernel's that is no longer needed)."""
        if self.disks is not None and self.disks.owns(folder):
            self.disks.release(folder)
        else:
            safepath.remove_tree(folder)

    def create_container(self, name: str, minutes: int, memory_limit: str, directory: Path | None) -> dict:
        """Records a container; `directory` (a warm kernel's folder) becomes its /mnt/data if given. Without one,
        its folder is made here, a disk image mounted where the server makes them: call it off the event loop."""
        container_id = ids.new_container_id()
        now = time.time()
        target = self.container_dir(container_id)
        if directory is None:
            self.make_folder(target)
        elif self.disks is not None and self.disks.owns(directory):
            self.disks.hand_over(directory, target)
        else:
            os.rename(directory, target)
        self._exec(
            "INSERT INTO containers VALUES (?, ?, ?, ?, ?, ?, 'running')",
            (container_id, name, int(now), now, minutes, memory_limit),
        )
        return self.get_container(container_id)  # type: ignore[return-value]

    def get_container(self, container_id: str) -> dict | None:
        """The container's record (a copy: the caller may change it), None for one unknown."""
        with self._lock:
            row = self._containers.get(container_id)
            if row is None:
                rows = self.query("SELECT * FROM containers WHERE id = ?", (container_id,))
                if not rows:
                    return None  # not remembered: ids no one made would fill memory
                row = self._containers[container_id] = rows[0]
            return dict(row)

    def list_containers(self, limit: int, order: str, after: str | None, name: str | None) -> Page:
        if name is not None:
            return self._page("containers", "name = ?", (name,), limit, order, after)
        return self._page("containers", "1", (), limit, order, after)

    def running_containers(self) -> list[dict]:
        return self.query("SELECT * FROM containers WHERE status = 'running'")

    def touch(self, container_id: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._exec("UPDATE containers SET last_active = ? WHERE id = ? AND status = 'running'", (now, container_id))
            row = self._containers.get(container_id)
            if row is not None and row["status"] == "running":
                row["last_active"] = now

    def expire_container(self, container_id: str) -> None:
        """The container stays listed as `expired`; its files are gone."""
        with self._lock:
            self.write(
                [
                    ("UPDATE containers SET status = 'expired' WHERE id = ?", (container_id,)),
                    ("DELETE FROM container_files WHERE container_id = ?", (container_id,)),
                ]
            )
            self._containers.pop(container_id, None)
        self._discard(self.container_dir(container_id))

    def delete_container(self, container_id: str) -> bool:
        folder = self.container_dir(container_id)
        with self._lock:
            found, _ = self.write(
                [
                    ("DELETE FROM containers WHERE id = ?", (container_id,)),
                    ("DELETE FROM container_files WHERE container_id = ?", (container_id,)),
                ]
            )
            self._containers.pop(container_id, None)
        self._discard(folder)
        return bool(found)

    # -- container files --------------------------------------------------------------------------------

    def get_container_file(self, container_id: str, file_id: str) -> dict | None:
        rows = self.query("SELECT * FROM container_files WHERE id = ? AND container_id = ?", (file_id, container_id))
        return rows[0] if rows else None

    def list_container_files(self, container_id: str, limit: int, order: str, after: str | None) -> Page:
        return self._page("container_files", "container_id = ?", (container_id,), limit, order, after)

    def add_container_file(self, container_id: str, name: str, source_path: Path, source: str) -> dict:
        """Moves `source_path` (a complete file in tmp/) to /mnt/data/<name> and records it.

        Raises safepath.UnsafePath for a name that escapes, IsADirectoryError when a folder is in the way.
        """
        parts = safepath.split_name(name)
        root = str(self.container_dir(container_id))
        try:
            parent = safepath.open_parent(root, parts, create=True, owner=self.owner)
        except (NotADirectoryError, FileExistsError) as exc:
            raise IsADirectoryError("A file is in the way of a folder in that path.") from exc
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: a symlink where a folder should be
                raise safepath.UnsafePath("A component of the path is a symbolic link.") from exc
            raise
        try:
            try:
                st = _place(source_path, parent, parts[-1], self.owner)
            except (IsADirectoryError, NotADirectoryError) as exc:
                raise IsADirectoryError("A folder already exists at that path.") from exc
            if self.owner is not None:  # the code may change what was uploaded, as its own
                with contextlib.suppress(FileNotFoundError):
                    os.chown(parts[-1], *self.owner, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
        return self._record_container_file(container_id, "/".join(parts), st, source)

    def _record_container_file(self, container_id: str, rel: str, st: os.stat_result, source: str) -> dict:
        row = file_row(container_id, rel, st, source)
        self.record_rows([row])
        return row

    def record_rows(self, rows: list[dict]) -> None:
        """Records new file versions (each replacing the record of its path), a batch per transaction, so a scan
        of many files neither holds the store for long nor pays a commit per file."""
        for start in range(0, len(rows), BATCH):
            steps: list[tuple[str, tuple | dict]] = []
            for row in rows[start : start + BATCH]:
                steps.append(
                    (
                        "DELETE FROM container_files WHERE container_id = ? AND path = ?",
                        (row["container_id"], row["path"]),
                    )
                )
                steps.append((INSERT_FILE, row))
            self.write(steps)

    def delete_container_file(self, container_id: str, file_id: str) -> dict | None:
        """The record of the file deleted; None if there was none."""
        row = self.get_container_file(container_id, file_id)
        if row is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            safepath.unlink(str(self.container_dir(container_id)), row["path"].split("/"))
        return row if self._exec("DELETE FROM container_files WHERE id = ?", (file_id,)) else None

    def open_container_file(self, container_id: str, row: dict) -> int:
        """A read descriptor of the file's bytes (FileNotFoundError if the code removed it meanwhile)."""
        return safepath.open_file(str(self.container_dir(container_id)), row["path"].split("/"))

    # -- files API --------------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        if not ids.is_file_id(file_id):
            raise UnknownId(file_id)
        return self.files_dir / file_id

    def add_file(
        self, filename: str, purpose: str, source_path: Path, lifetime: tuple[int, float] | None = None
    ) -> dict:
        """A file of the Files API; `lifetime` is (seconds the API says it lasts, seconds it really does: a server
        whose minutes are shortened shortens them too)."""
        file_id = ids.new_file_id()
        size = source_path.stat().st_size
        os.rename(source_path, self.file_path(file_id))
        now = time.time()
        row = {"id": file_id, "filename": filename, "bytes": size, "purpose": purpose, "created_at": int(now)}
        row |= {"expires_at": None, "gone_at": None}
        if lifetime is not None:
            row |= {"expires_at": int(now) + lifetime[0], "gone_at": now + lifetime[1]}
        self._exec(f"INSERT INTO files ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
        return row

    def get_file(self, file_id: str) -> dict | None:
        rows = self.query(f"SELECT * FROM files WHERE id = ? AND {_KEPT}", (file_id, time.time()))
        return rows[0] if rows else None

    def list_files(self, limit: int, order: str, after: str | None, purpose: str | None) -> Page:
        if purpose:
            return self._page("files", f"purpose = ? AND {_KEPT}", (purpose, time.time()), limit, order, after)
        return self._page("files", _KEPT, (time.time(),), limit, order, after)

    def remove_expired_files(self) -> int:
        """Deletes the files whose time is up, rows and bytes; how many."""
        gone = self.query("SELECT id FROM files WHERE gone_at IS NOT NULL AND gone_at <= ?", (time.time(),))
        for row in gone:
            self.delete_file(row["id"])
        return len(gone)

    def delete_file(self, file_id: str) -> bool:
        found = self._exec("DELETE FROM files WHERE id = ?", (file_id,))
        with contextlib.suppress(FileNotFoundError):
            self.file_path(file_id).unlink()
        return bool(found)

    def copy_file_to_container(self, file_id: str, container_id: str) -> dict:
        """A copy, not a link: code changing the container's copy must not change the uploaded file."""
        row = self.get_file(file_id)
        if row is None:
            raise KeyError(file_id)
        tmp = self.temp_path()
        try:
            shutil.copyfile(self.file_path(file_id), tmp)
            return self.add_container_file(container_id, _plain_name(row["filename"]), tmp, "user")
        finally:
            tmp.unlink(missing_ok=True)

    # --- stored responses ------------------------------------------------------------------------------------------

    def keep_response(
        self, response_id: str, now: float, document: str, older: float, max_bytes: int | None = None
    ) -> None:
        """Keeps a finished response's document; forgets those kept before `older` and, given `max_bytes`, the
        oldest past it in all."""
        steps: list[tuple[str, tuple | dict]] = [
            ("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", (response_id, now, len(document), document)),
            ("DELETE FROM responses WHERE kept_at < ?", (older,)),
        ]
        if max_bytes is not None:
            steps.append((
                "DELETE FROM responses WHERE id IN (SELECT id FROM (SELECT id, SUM(bytes) OVER (ORDER BY kept_at "
                "DESC, id DESC) AS newer FROM responses) WHERE newer > ?)", (max_bytes,)
            ))  # fmt: skip
        self.write(steps)

    def kept_bytes(self) -> int:
        return int(self.query("SELECT COALESCE(SUM(bytes), 0) AS total FROM responses")[0]["total"])

    def has_response(self, response_id: str) -> bool:
        # Without reading the document: a background response's may be megabytes of events.
        return bool(self.query("SELECT 1 FROM responses WHERE id = ?", (response_id,)))

    def kept_response(self, response_id: str) -> str | None:
        rows = self.query("SELECT document FROM responses WHERE id = ?", (response_id,))
        return rows[0]["document"] if rows else None

    def forget_response(self, response_id: str) -> bool:
        return self._exec("DELETE FROM responses WHERE id = ?", (response_id,)) > 0


def _place(source_path: Path, parent: int, name: str, owner: tuple[int, int] | None) -> os.stat_result:
    """Moves a complete file to `name` in the folder `parent`; returns its stat as placed (taken before the code
    can see it: code waiting for the file may read and remove it at once, as the runtime does a run's request)."""
    st = os.stat(source_path)
    try:
        os.rename(source_path, name, dst_dir_fd=parent)
        return st
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # The container's own filesystem (a disk image): the bytes are copied into an unnamed file there and synced
    # (its image is sparse: the host must have stored them before the upload is answered), then named at once,
    # so the code never sees a partial file. A copy past the container's room fails here with ENOSPC.
    fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=parent)
    try:
        with open(source_path, "rb") as source:
            offset = 0
            while offset < st.st_size:
                sent = os.sendfile(fd, source.fileno(), offset, st.st_size - offset)
                if sent == 0:
                    break
                offset += sent
        if owner is not None:
            os.fchown(fd, *owner)
        os.fsync(fd)
        placed = os.fstat(fd)
        temp = f".cellbox-upload-{secrets.token_hex(8)}"
        os.link(f"/proc/self/fd/{fd}", temp, dst_dir_fd=parent, follow_symlinks=True)
        try:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
    finally:
        os.close(fd)
    return placed


def _plain_name(filename: str) -> str:
    """The last component of an uploaded file's name, made safe to use as a name in /mnt/data."""
    name = "".join(ch if ord(ch) >= 32 else "_" for ch in filename).rsplit("/", 1)[-1]
    while len(name.encode("utf-8", "surrogatepass")) > safepath.MAX_COMPONENT_BYTES:
        name = name[1:]  # keep the end, where the extension is
    return name if name not in ("", ".", "..") else "file"


def _remove(path: Path) -> None:
    safepath.remove_tree(path)
