"""Disk for containers: a quota per container, and a reserve that keeps the server able to answer.

No filesystem quota is assumed of the host, so the quota is kept by the server:

- a file can't grow past the quota (RLIMIT_FSIZE in the jail: the writer gets EFBIG);
- while code runs, the container's usage is measured every second (off the event loop, bounded like every
  scan) and a kernel past its quota, or one writing while the disk runs out, is stopped and told why;
- after code ran (it may have written or removed files), the usage is measured again in the background, at most
  a tenth of the time, so a cell's upload never waits for a measure however full its container is;
- an upload that would pass the quota, or eat into the reserve, is refused with 507 before a byte is stored (the
  usage as last measured, plus what was uploaded or deleted through the API since).

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

RESERVE_BYTES = 64 * 1024 * 1024
MEASURE_EVERY = 1.0  # seconds between measures of a container's usage, at least
RESERVE_NAME = "reserve"


def usage(root: str | os.PathLike[str]) -> int:
    """Bytes the files of a folder tree take on disk (blocks, so sparse files count for what they hold), scanned
    like /mnt/data is: iteratively, never following symlinks, MAX_SCAN_DEPTH folders deep (deeper files are not
    counted: the reserve still protects the server from them)."""
    total = 0
    for _path, st in safepath.walk_files(os.fspath(root), nameable=False):
        total += st.st_blocks * 512
    return total


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

    def __init__(self, containers_dir: Path, limit: int, reserve: Reserve) -> None:
        self.containers_dir = containers_dir
        self.limit = limit
        self.reserve = reserve
        self._known: dict[str, tuple[float, int]] = {}  # container -> (when measured, bytes)
        self._cost: dict[str, float] = {}  # container -> seconds its last measure took
        self._again: dict[str, asyncio.Handle | asyncio.Future] = {}  # a measure to come, or under way

    async def usage(self, container_id: str, max_age: float = 1.0) -> int:
        now = time.monotonic()
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
        if container_id in self._again:
            return
        known = self._known.get(container_id)
        wait = 0.0
        if known is not None:
            wait = known[0] + max(MEASURE_EVERY, 10 * self._cost.get(container_id, 0.0)) - time.monotonic()
        loop = asyncio.get_running_loop()
        self._again[container_id] = loop.call_later(max(0.0, wait), self._measure, container_id)

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
        free = free_bytes(self.containers_dir)
        if not self.reserve.held and free > 2 * self.reserve.size:
            self.reserve.hold()  # given back when the disk was full: there is room again
            free = free_bytes(self.containers_dir)
        spare = free - self.reserve.size
        if spare < left:
            return max(0, spare), "the server's disk is nearly full"
        return max(0, left), f"this container's disk limit is {_size(self.limit)}"

    async def watch(self, container_id: str, stop: Callable[[str], None], interval: float = MEASURE_EVERY) -> None:
        """Until cancelled: calls `stop(reason)` once if the container passes its quota or the disk runs out."""
        pause = interval
        while True:
            await asyncio.sleep(pause)
            began = time.monotonic()
            used = await self.usage(container_id, max_age=0)
            # A container of many files costs a long measure: measure it less often (never >10% of the time).
            pause = max(interval, 10 * (time.monotonic() - began))
            if used > self.limit:
                stop(f"it passed this container's disk limit ({_size(used)} of {_size(self.limit)} in /mnt/data)")
                return
            if free_bytes(self.containers_dir) < self.reserve.size // 2:
                stop("the server's disk is full")
                return


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
