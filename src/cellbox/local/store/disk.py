"""Disk for containers: a quota per container, and a reserve that keeps the server able to answer.

The quota holds at all times, whoever writes (a run, a thread or process it left behind, an upload) and however
deep. It is kept by the filesystem where the host allows it, by the server's measures where it doesn't; the
server says at start which (`--disk-quota`):

- **filesystem** (root, loop devices): each container's /mnt/data is an ext4 image of the limit's size
  (diskimages.py): a write past it fails with ENOSPC, at once; usage is the filesystem's own count (statvfs);
- **measured** (anywhere else): usage is measured by walking the folder (any depth, two descriptors at most), every
  second or so while code runs and, between runs, for every container whose kernel lives (a thread left behind
  keeps writing); a kernel past its quota is stopped and told why (at the next run, when it was between runs). A
  writer can get about a second's worth of writing past the limit before it is stopped.

In both:

- a file can't grow past the quota (RLIMIT_FSIZE in the jail: the writer gets EFBIG);
- an upload that would pass the quota, or eat into the reserve, is refused with 507 before a byte is stored (the
  usage as the filesystem counts it, or as last measured plus what was uploaded or deleted through the API since);
- a kernel writing while the server's disk runs out is stopped, during runs and between them.

The reserve is a file of RESERVE_BYTES in the data dir, made at start. When the disk is full anyway (another
process filled it) the server gives the reserve back, so SQLite can commit, deletes can free room and the server
can start again; it is made again once there is room.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from . import safepath
from .diskimages import DiskImages

RESERVE_BYTES = 64 * 1024 * 1024
MEASURE_EVERY = 1.0  # seconds between measures of a container's usage, at least
RESERVE_NAME = "reserve"
FULL_BELOW = 1 << 20  # a container's own filesystem with less free than this is full


def usage(root: str | os.PathLike[str]) -> int:
    """Bytes what a folder holds takes on disk: the blocks of its files and folders (a sparse file counts for what
    it holds, a file with several links once), at any depth, never following a symlink; 0 when it is gone.

    Iterative, with two descriptors open at most whatever the depth: each folder's names are read whole, and the
    walk goes back up by `..`, checked to be the folder it came from (code may move folders meanwhile: the walk
    then starts again, a few times, before settling for what it counted)."""
    total = 0
    for _attempt in range(3):
        try:
            return _usage(os.fspath(root))
        except _Moved as moved:
            total = max(total, moved.counted)
    return total


class _Moved(Exception):
    def __init__(self, counted: int) -> None:
        self.counted = counted


def _usage(root: str) -> int:
    try:
        fd = safepath.open_root(root)
    except OSError:
        return 0
    try:
        top = os.fstat(fd)
        total = 0  # the folder itself is the container's, whatever it holds: what is in it counts
        linked: set[int] = set()
        # The folders from the top down to the current one: (inode, names not looked at yet).
        levels: list[tuple[int, list[str]]] = [(top.st_ino, _names(fd))]
        while levels:
            names = levels[-1][1]
            if not names:
                levels.pop()
                if not levels:
                    break
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                found = os.fstat(fd)
                if (found.st_dev, found.st_ino) != (top.st_dev, levels[-1][0]):
                    raise _Moved(total)
                continue
            name = names.pop()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != top.st_dev:
                continue  # another filesystem mounted inside: not this container's
            if stat.S_ISDIR(st.st_mode):
                try:
                    child = safepath.open_folder(fd, name)
                except OSError:
                    total += st.st_blocks * 512
                    continue
                entered = os.fstat(child)
                if entered.st_ino != st.st_ino:  # swapped for another folder meanwhile
                    os.close(child)
                    continue
                total += entered.st_blocks * 512
                os.close(fd)
                fd = child
                levels.append((entered.st_ino, _names(fd)))
            elif st.st_nlink > 1:
                if st.st_ino not in linked:
                    linked.add(st.st_ino)
                    total += st.st_blocks * 512
            else:
                total += st.st_blocks * 512
        return total
    finally:
        os.close(fd)


def _names(fd: int) -> list[str]:
    try:
        return os.listdir(fd)
    except OSError:
        return []


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def filesystem_usage(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """(bytes used, bytes free) of the filesystem at `folder`, as it counts them itself."""
    found = os.statvfs(folder)
    return (found.f_blocks - found.f_bfree) * found.f_frsize, found.f_bavail * found.f_frsize


def free_bytes(path: str | os.PathLike[str]) -> int:
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def default_limit(data_dir: Path) -> int:
    """A container's quota when none is given: an eighth of what is free where the data lives, at least 256 MiB."""
    return max(256 << 20, free_bytes(data_dir) // 8)


class Reserve:
    """The file that holds RESERVE_BYTES back for the server itself."""

    def __init__(self, data_dir: Path, size: int = RESERVE_BYTES) -> None:
        self.path = data_dir / RESERVE_NAME
        self.size = size

    def hold(self) -> bool:
        """Makes (or keeps) the reserve; False when the disk has no room for it."""
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size == self.size:
                return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, self.size)
        except OSError:
            os.close(fd)
            self.release()
            return False
        os.close(fd)
        return True

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @property
    def held(self) -> bool:
        try:
            return stat.S_ISREG(self.path.stat().st_mode)
        except FileNotFoundError:
            return False


class Quota:
    """Each container's share of the disk, and the reserve, as the server keeps them."""

    def __init__(self, containers_dir: Path, limit: int, reserve: Reserve, disks: DiskImages | None = None) -> None:
        self.containers_dir = containers_dir
        self.limit = limit
        self.reserve = reserve
        self.disks = disks
        self._known: dict[str, tuple[float, int]] = {}  # container -> (when measured, bytes)
        self._cost: dict[str, float] = {}  # container -> seconds its last measure took
        self._again: dict[str, asyncio.Handle | asyncio.Future] = {}  # a measure to come, or under way

    def kept_by_filesystem(self, container_id: str) -> bool:
        """Whether the container's /mnt/data is a filesystem of its own, the size of its quota."""
        return self.disks is not None and self.disks.owns(self.containers_dir / container_id)

    async def usage(self, container_id: str, max_age: float = 1.0) -> int:
        now = time.monotonic()
        if self.kept_by_filesystem(container_id):
            used = filesystem_usage(self.containers_dir / container_id)[0]  # the filesystem's own count: no walk
            self._known[container_id] = (now, used)
            return used
        known = self._known.get(container_id)
        if known is not None and now - known[0] < max_age:
            return known[1]
        used = await asyncio.to_thread(usage, self.containers_dir / container_id)
        self._cost[container_id] = time.monotonic() - now
        self._known[container_id] = (now, used)
        return used

    def wrote(self, container_id: str, size: int) -> None:
        """Counts bytes just stored (or, negative, deleted), until the next measurement; a container not measured
        yet is measured whole when next asked."""
        known = self._known.get(container_id)
        if known is not None:
            self._known[container_id] = (known[0], max(0, known[1] + size))

    def changed(self, container_id: str) -> None:
        """Files changed other than by an upload (code ran, a file was deleted): the usage is measured again in the
        background, no sooner than a tenth of the time goes to measuring it (a container of many files takes long
        to measure)."""
        if container_id in self._again or self.kept_by_filesystem(container_id):
            return
        loop = asyncio.get_running_loop()
        self._again[container_id] = loop.call_later(self.wait(container_id), self._measure, container_id)

    def wait(self, container_id: str) -> float:
        """Seconds until the container's usage is worth measuring again: at least MEASURE_EVERY since the last
        measure, and ten times what that took (never more than a tenth of the time on one container)."""
        known = self._known.get(container_id)
        if known is None:
            return 0.0
        return max(0.0, known[0] + max(MEASURE_EVERY, 10 * self._cost.get(container_id, 0.0)) - time.monotonic())

    def _measure(self, container_id: str) -> None:
        task = asyncio.ensure_future(self._measured(container_id))
        self._again[container_id] = task

    async def _measured(self, container_id: str) -> None:
        try:
            await self.usage(container_id, max_age=0)
        except OSError:  # gone meanwhile: nothing to measure
            pass
        finally:
            if self._again.get(container_id) is asyncio.current_task():
                del self._again[container_id]

    def forget(self, container_id: str) -> None:
        """The container is gone."""
        again = self._again.pop(container_id, None)
        if again is not None:
            again.cancel()
        self._known.pop(container_id, None)
        self._cost.pop(container_id, None)

    async def room(self, container_id: str) -> tuple[int, str]:
        """Bytes the container may still store, and what limits it (for the message when it is too little)."""
        left = self.limit - await self.usage(container_id, max_age=math.inf)
        if self.kept_by_filesystem(container_id):
            left = min(left, filesystem_usage(self.containers_dir / container_id)[1])
        free = free_bytes(self.containers_dir)
        if not self.reserve.held and free > 2 * self.reserve.size:
            self.reserve.hold()  # given back when the disk was full: there is room again
            free = free_bytes(self.containers_dir)
        spare = free - self.reserve.size
        if spare < left:
            return max(0, spare), "the server's disk is nearly full"
        return max(0, left), self.limit_said()

    def limit_said(self) -> str:
        return f"this container's disk limit is {_size(self.limit)}"

    def own_usage(self, container_id: str) -> int | None:
        """What the container's own filesystem holds; None when it has none (or is gone)."""
        if not self.kept_by_filesystem(container_id):
            return None
        try:
            return filesystem_usage(self.containers_dir / container_id)[0]
        except OSError:
            return None

    def filled(self, container_id: str, before: int | None) -> bool:
        """Whether the container's own filesystem is full (next to no room left) and holds more than `before`:
        code just filled it, and a write of its failed, most likely."""
        if before is None or not self.kept_by_filesystem(container_id):
            return False
        try:
            used, free = filesystem_usage(self.containers_dir / container_id)
        except OSError:
            return False
        return free < FULL_BELOW and used > before

    async def check(self, container_id: str) -> str | None:
        """Why the container's code must be stopped now, if it must: its usage grew past its quota (measured: the
        filesystem stops a writer by itself), or it grew while the server's disk runs out."""
        before = self._known.get(container_id)
        used = await self.usage(container_id, max_age=0)
        grew = before is None or used > before[1]
        if used > self.limit and grew and not self.kept_by_filesystem(container_id):
            return f"it passed this container's disk limit ({_size(used)} of {_size(self.limit)} in /mnt/data)"
        if grew and free_bytes(self.containers_dir) < self.reserve.size // 2:
            return "the server's disk is full"
        return None

    async def watch(self, container_id: str, stop: Callable[[str], None], interval: float = MEASURE_EVERY) -> None:
        """Until cancelled: calls `stop(reason)` once if the container passes its quota or the disk runs out."""
        pause = interval
        while True:
            await asyncio.sleep(pause)
            began = time.monotonic()
            used = await self.usage(container_id, max_age=0)
            # A container of many files costs a long measure: measure it less often (never >10% of the time).
            pause = max(interval, 10 * (time.monotonic() - began))
            if used > self.limit and not self.kept_by_filesystem(container_id):
                stop(f"it passed this container's disk limit ({_size(used)} of {_size(self.limit)} in /mnt/data)")
                return
            if free_bytes(self.containers_dir) < self.reserve.size // 2:
                stop("the server's disk is full")
                return


def size_said(n: int) -> str:
    return _size(n)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
