"""Which files a cell wrote under the container's data folder: cellbox's runtime module, uploaded beside
container.py (standard library only: it runs in the container's Python, never imports cellbox).

Reading every file's size and time before and after each cell costs in proportion to the folder (a tenth of a
second per 20,000 files, twice a cell). On Linux, inotify watches on every folder, kept for the kernel's life,
say what changed instead: a cell's cost stays flat however full the folder is. Where inotify can't be had (not
Linux, no watches left), and after an event queue overflow, the before/after comparison is used.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
import time
from typing import Any

MAX_DEPTH = 64  # folders deeper than this are not looked into (a chain thousands deep is an attack, not data)
MAX_ENTRIES = 200_000  # entries a full scan reads at most

_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ONLYDIR, _IN_DONT_FOLLOW, _IN_ISDIR = 0x4000, 0x8000, 0x1000000, 0x2000000, 0x40000000
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
# A file's content or times changed (as the size-and-time comparison would see it), or a folder came or went.
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded to len


def _wanted_folder(entry: os.DirEntry, skip: str) -> bool:
    return entry.path != skip and not entry.name.startswith(".ipython")


def snapshot(root: str, skip: str) -> dict[str, tuple[int, int]]:
    """(size, mtime) of the files under root, without `skip`; iterative and bounded (os.walk recurses, and a
    folder chain a few thousand deep would end every later run in RecursionError)."""
    files: dict[str, tuple[int, int]] = {}
    pending = [(root, 0)]
    seen = 0
    while pending and seen < MAX_ENTRIES:
        folder, depth = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_ENTRIES:
                        break
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if _wanted_folder(entry, skip) and depth + 1 < MAX_DEPTH:
                                pending.append((entry.path, depth + 1))
                            continue
                        if not entry.is_file(follow_symlinks=False):
                            continue  # a link is not a file the cell wrote (and may point out of the container)
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    files[entry.path] = (st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return files


class Snapshots:
    """Changes found by comparing the folder before and after: slower, works anywhere."""

    def __init__(self, root: str, skip: str) -> None:
        self.root, self.skip = root, skip
        self._before: dict[str, tuple[int, int]] = {}

    def start(self) -> None:
        self._before = snapshot(self.root, self.skip)

    def changed(self) -> dict[str, int]:
        """The files written since `start`, with their sizes."""
        after = snapshot(self.root, self.skip)
        return {path: sig[0] for path, sig in after.items() if self._before.get(path) != sig}


def _inotify() -> tuple[Any, int]:
    """The C library and a new non-blocking inotify descriptor (OSError where there is none)."""
    libc: Any = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    return libc, fd


def _add_watch(libc: Any, fd: int, folder: str, mask: int) -> int:
    """A watch on `folder` itself (not a link to one): its descriptor."""
    wd = libc.inotify_add_watch(fd, os.fsencode(folder), mask | _IN_ONLYDIR | _IN_DONT_FOLLOW)
    if wd < 0:
        raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {folder}")
    return int(wd)


class Watches:
    """Changes as inotify reports them: one watch per folder, set up once, then only the events are read."""

    def __init__(self, root: str, skip: str) -> None:
        self.root, self.skip = root, skip
        self._libc, self._fd = _inotify()
        self._folders: dict[int, str] = {}
        self._depths: dict[str, int] = {}
        self._overflowed = False
        self.broken = False  # a folder could not be watched (no watches left): snapshots from now on
        self._started = 0
        try:
            self._watch_tree(root, 0)
        except OSError:
            os.close(self._fd)
            raise

    def _watch(self, folder: str, depth: int) -> None:
        wd = _add_watch(self._libc, self._fd, folder, _MASK)
        self._folders[wd] = folder
        self._depths[folder] = depth

    def _watch_tree(self, top: str, depth: int) -> list[str]:
        """Watches `top` and the folders under it; returns the files found there (a folder made during a cell is
        new, and so is everything written in it before its watch was set)."""
        files: list[str] = []
        pending = [(top, depth)]
        while pending:
            folder, level = pending.pop()
            self._watch(folder, level)
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        if entry.is_dir(follow_symlinks=False):
                            if _wanted_folder(entry, self.skip) and level + 1 < MAX_DEPTH:
                                pending.append((entry.path, level + 1))
                        else:
                            files.append(entry.path)
            if len(self._folders) > MAX_ENTRIES:
                raise OSError("too many folders to watch")
        return files

    def _events(self) -> set[str]:
        """The paths named by the events queued so far (new folders watched, their files counted)."""
        touched: set[str] = set()
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return touched
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    self._overflowed = True
                    continue
                folder = self._folders.get(wd)
                if mask & _IN_IGNORED:
                    if folder is not None:
                        self._depths.pop(self._folders.pop(wd), None)
                    continue
                if folder is None or not raw:
                    continue
                path = os.path.join(folder, os.fsdecode(raw))
                if mask & _IN_ISDIR:
                    depth = self._depths.get(folder, 0) + 1
                    new = mask & (_IN_CREATE | _IN_MOVED_TO)
                    if new and path != self.skip and not raw.startswith(b".ipython") and depth < MAX_DEPTH:
                        try:
                            touched.update(self._watch_tree(path, depth))
                        except OSError:  # unwatched, its changes would be missed: count by times, then snapshots
                            self._overflowed = self.broken = True
                    continue
                touched.add(path)

    def start(self) -> None:
        self._events()  # what happened before the cell (uploads, placements) is not the cell's doing
        self._overflowed = False
        self._started = time.time_ns()

    def changed(self) -> dict[str, int]:
        touched = self._events()
        if self._overflowed:  # events were lost: whatever was written since the start counts
            self._overflowed = False
            since = self._started - 1_000_000_000  # a second of slack for coarse file times
            return {p: sig[0] for p, sig in snapshot(self.root, self.skip).items() if sig[1] >= since}
        sizes: dict[str, int] = {}
        for path in touched:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue  # written, then removed or renamed away: nothing to bring back
            if (st.st_mode & 0o170000) == 0o100000 and not path.startswith(self.skip + os.sep):
                sizes[path] = st.st_size
        return sizes

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


_TRACKERS: dict[tuple[str, str], Any] = {}


def tracker(root: str, skip: str) -> Any:
    """The change tracker of this folder for this kernel: inotify watches where they can be had, else snapshots."""
    key = (os.path.abspath(root), os.path.abspath(skip))
    found: Any = _TRACKERS.get(key)
    if isinstance(found, Watches) and found.broken:
        found.close()
        found = _TRACKERS[key] = Snapshots(*key)
    if found is None:
        try:
            found = Watches(*key)
        except (OSError, AttributeError):  # not Linux, no watches left, no libc to load
            found = Snapshots(*key)
        _TRACKERS[key] = found
    return found


class Arrivals:
    """Wakes when something is written into one folder (inotify), so a file still on its way is read the moment
    it lands rather than at the next of a series of looks. Kept for the kernel's life, one per folder."""

    MASK = _IN_CREATE | _IN_MOVED_TO | _IN_MODIFY | _IN_CLOSE_WRITE

    def __init__(self, folder: str) -> None:
        libc, self._fd = _inotify()
        try:
            _add_watch(libc, self._fd, folder, self.MASK)
        except OSError:
            os.close(self._fd)
            raise

    def forget(self) -> None:
        """Drop what happened so far: a wait after this wakes for what comes next."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 1 << 16):
                pass

    def wait(self, seconds: float) -> None:
        """Until something is written into the folder, or `seconds` pass."""
        import select

        select.select([self._fd], [], [], max(seconds, 0.0))
        self.forget()


_ARRIVALS: dict[str, Any] = {}


def arrivals(folder: str) -> Arrivals | None:
    """The folder's `Arrivals`, made once; None where inotify can't be had (the caller looks now and then)."""
    key = os.path.abspath(folder)
    if key not in _ARRIVALS:
        try:
            _ARRIVALS[key] = Arrivals(key)
        except (OSError, AttributeError):
            _ARRIVALS[key] = None
    return _ARRIVALS[key]
