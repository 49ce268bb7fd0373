"""What changed in a container's /mnt/data since the last look, without looking at everything.

After every run the server brings its file rows in line with the folder. Rescanning the whole folder costs
time that grows with the container (20,000 files: ~200 ms a run), so each container's folders are watched with
inotify and only the names the kernel reported are looked at again. A watch can't always be had (the host's
limit on watches, a container with more folders than MAX_WATCHES, a queue that overflowed): then `take()` says
"everything", and the caller scans the whole folder as before, then watches again.

Watches are added through descriptors opened with O_NOFOLLOW from the container's root, never by path, so a
folder swapped for a symlink can't make the server watch anything outside the container.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import struct
import termios
from dataclasses import dataclass, field

from . import safepath

MAX_WATCHES = 4096  # folders watched per container; past this it is scanned whole
# What `quick()` takes on the caller's thread: at most this many bytes of queued events (about a hundred) and this
# many changed files, and no folder to look into. A run that wrote more is taken in a thread.
QUICK_QUEUE = 4096
QUICK_PATHS = 64

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF = 0x400, 0x800
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ISDIR = 0x4000, 0x8000, 0x40000000
_IN_ONLYDIR, _IN_DONT_FOLLOW = 0x1000000, 0x2000000
_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
    | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_DONT_FOLLOW
)  # fmt: skip
_EVENT = struct.Struct("iIII")

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            _libc.inotify_init1  # noqa: B018 - present only on Linux
        except (OSError, AttributeError):
            return None
    return _libc


@dataclass
class Changes:
    """Paths (relative to the root) that may have changed, or `everything`."""

    paths: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)  # created or moved in: look at all they hold
    gone_folders: set[str] = field(default_factory=set)  # removed or moved away: drop all they held
    everything: bool = False


class Watcher:
    """The inotify watches of one container's folder."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fd: int | None = None
        self._dirs: dict[int, str] = {}  # watch descriptor -> folder relative to root ("" is the root)
        self._pending = Changes(everything=True)  # nothing known yet: the first look is a whole scan

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._dirs.clear()

    def take(self) -> Changes:
        """What changed since the last call (reading the kernel's queue), and starts collecting anew."""
        self._drain()
        found, self._pending = self._pending, Changes()
        if found.everything:
            self._rewatch()
        else:
            for folder in found.folders:
                self._watch_tree(folder)
        return found

    def quick(self) -> Changes | None:
        """What changed, when that is a few files' worth (see QUICK_QUEUE), collecting anew; None when it is more,
        leaving it all to `take()`."""
        if self._fd is None or self._pending.everything or self._queued() > QUICK_QUEUE:
            return None
        self._drain()
        found = self._pending
        if found.everything or found.folders or found.gone_folders or len(found.paths) > QUICK_PATHS:
            return None
        self._pending = Changes()
        return found

    def _queued(self) -> int:
        assert self._fd is not None
        size = bytearray(4)
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, size)
        except OSError:
            return QUICK_QUEUE + 1
        return int.from_bytes(size, "little")

    # -- watching ---------------------------------------------------------------------------------------

    def _rewatch(self) -> None:
        self.close()
        lib = _lib()
        if lib is None:
            self._pending.everything = True
            return
        fd = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            self._pending.everything = True
            return
        self._fd = fd
        self._watch_tree("")

    def _watch_tree(self, top: str) -> None:
        """Watches `top` and every folder below it (bounded like scans), iteratively."""
        stack = [top]
        while stack and self._fd is not None:
            rel = stack.pop()
            if not self._watch(rel):
                return
            try:
                fd = safepath.open_root(self.root) if not rel else _open_dir(self.root, rel)
            except OSError:
                continue
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        with contextlib.suppress(OSError):
                            if entry.is_dir(follow_symlinks=False) and rel.count("/") < safepath.MAX_SCAN_DEPTH:
                                stack.append(f"{rel}/{entry.name}" if rel else entry.name)
            except OSError:
                pass
            finally:
                os.close(fd)

    def _watch(self, rel: str) -> bool:
        """Adds a watch on one folder; False (and `everything` from now on) when no more can be had."""
        assert self._fd is not None
        lib = _lib()
        if lib is None or len(self._dirs) >= MAX_WATCHES:
            self._give_up()
            return False
        try:
            fd = safepath.open_root(self.root) if not rel else _open_dir(self.root, rel)
        except OSError:
            return True  # gone meanwhile: its parent's events say so
        try:
            wd = lib.inotify_add_watch(self._fd, f"/proc/self/fd/{fd}".encode(), _MASK & ~_IN_DONT_FOLLOW)
        finally:
            os.close(fd)
        if wd < 0:
            if ctypes.get_errno() == errno.ENOSPC:  # the host's limit on watches
                self._give_up()
                return False
            return True
        self._dirs[wd] = rel
        return True

    def _give_up(self) -> None:
        self.close()
        self._pending.everything = True

    # -- reading events ---------------------------------------------------------------------------------

    def _drain(self) -> None:
        if self._fd is None:
            self._pending.everything = True
            return
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                self._give_up()
                return
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length].split(b"\0", 1)[0]
            offset += _EVENT.size + length
            if mask & _IN_Q_OVERFLOW:
                self._pending.everything = True
                continue
            folder = self._dirs.get(wd)
            if mask & _IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            if folder is None:
                continue
            if mask & (_IN_DELETE_SELF | _IN_MOVE_SELF) and not raw:
                if folder == "":
                    self._pending.everything = True
                continue
            name = os.fsdecode(raw)
            rel = f"{folder}/{name}" if folder else name
            if mask & _IN_ISDIR:
                if mask & (_IN_CREATE | _IN_MOVED_TO):
                    self._pending.folders.add(rel)
                if mask & (_IN_DELETE | _IN_MOVED_FROM):
                    self._pending.gone_folders.add(rel)
            else:
                self._pending.paths.add(rel)


def _open_dir(root: str, rel: str) -> int:
    parts = rel.split("/")
    parent = safepath.open_parent(root, [*parts, "x"], create=False)
    return parent


def stat_regular(root: str, rel: str) -> os.stat_result | None:
    """The stat of a regular file at `rel` under root (no symlinks on the way), or None."""
    try:
        parent = safepath.open_parent(root, rel.split("/"), create=False)
    except OSError:
        return None
    try:
        st = os.stat(rel.rsplit("/", 1)[-1], dir_fd=parent, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(parent)
    return st if stat.S_ISREG(st.st_mode) else None
