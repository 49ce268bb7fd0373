"""Live containers: their kernels, their locks, and their lifecycle (create, use, expire, delete).

A container record lives in the store; its kernel lives here, started from the warm pool at create time or on
first use after a server restart (kernels restart empty, files stay). Each container has one lock that orders
the changes to its files (uploads, deletes, the scan after a run), so concurrent requests never interleave
half-done changes. Expiry is checked both on every use and by a sweeper, so a container is never used past its
deadline even between sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from ...common import stops
from .. import errors
from ..store import Store, filesync
from ..store.disk import MEASURE_EVERY, Quota
from ..store.watch import Watcher
from .kernel import Execution, Kernel, KernelError
from .launcher import MEMORY_LIMITS, Launcher, Limits, host_memory_bytes
from .warm import WarmPool

log = logging.getLogger("cellbox.local")


class Containers:
    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        *,
        pool_size: int = 2,
        exec_timeout: float | None = None,
        seconds_per_minute: float = 60.0,
        max_containers: int | None = None,
        quota: Quota | None = None,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.max_containers = max_containers
        # Creates under way: counted with the running ones, since a create waits for its folder off the event loop
        # and the next one's check must not miss it.
        self._creating = 0
        self.quota = quota
        self.exec_timeout = exec_timeout
        self.seconds_per_minute = seconds_per_minute
        self.warm = WarmPool(launcher, store, pool_size, launcher.limits_for("1g"))
        self._kernels: dict[str, Kernel] = {}
        self._starting: dict[str, asyncio.Task] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._sweeper: asyncio.Task | None = None
        self._guard: asyncio.Task | None = None
        self._watchers: dict[str, Watcher] = {}
        self._stopped: dict[str, str] = {}  # container -> why its kernel was stopped between runs
        self._interrupted: dict[str, str] = {}  # container -> what stopping its last run left of it

    # -- server lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        # Files the code wrote just before a crash are picked up now, not at the next run.
        for row in self.store.running_containers():
            filesync.sync(self.store, row["id"])
        self.warm.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        if self.quota is not None:
            self._guard = asyncio.get_running_loop().create_task(self._guard_disk(self.quota))

    async def close(self) -> None:
        for task in (self._sweeper, self._guard):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in list(self._starting.values()):
            task.cancel()
        await self.warm.close()
        for kernel in self._kernels.values():
            kernel.kill()
        self._kernels.clear()
        for watcher in self._watchers.values():
            watcher.close()
        self._watchers.clear()

    # -- using a container ------------------------------------------------------------------------------

    def lock(self, container_id: str) -> asyncio.Lock:
        return self._locks[container_id]

    def deadline(self, row: dict) -> float:
        return row["last_active"] + row["expires_minutes"] * self.seconds_per_minute

    def use(self, container_id: str, *, touch: bool = True) -> dict:
        """The container's record for an operation on it: 404 if unknown, 400 if expired; refreshes activity
        (`last_active_at`) unless `touch` is false. Every operation on a container counts, retrieving it included
        (OpenAI's guide: "any container operation, like retrieving the container, or adding or deleting files");
        listing containers is not an operation on any of them."""
        row = self.store.get_container(container_id)
        if row is None:
            raise errors.not_found("container", container_id, param="container_id")
        if row["status"] == "running" and time.time() > self.deadline(row) and not self._busy(container_id):
            self.expire(container_id)
            row["status"] = "expired"
        if row["status"] == "expired":
            raise errors.expired()
        if not touch:
            return row
        now = time.time()
        if not self._fresh(row, now):
            self.store.touch(container_id, now)
            row["last_active"] = now
        return row

    def _fresh(self, row: dict, now: float) -> bool:
        """Refreshed so lately that refreshing again changes nothing anyone sees (`last_active_at` counts whole
        seconds) and moves the deadline by under a hundredth of the expiry: not written again (a cell touches its
        container three times, each a write to the database)."""
        since = now - row["last_active"]
        span = row["expires_minutes"] * self.seconds_per_minute
        return int(now) == int(row["last_active"]) and 0 <= since < span / 100

    def current(self, row: dict) -> dict:
        """The record with its status as of now: a container past its deadline expires here, not at the next sweep."""
        if row["status"] == "running" and time.time() > self.deadline(row) and not self._busy(row["id"]):
            self.expire(row["id"])
            row = {**row, "status": "expired"}
        return row

    def state_lost(self, row: dict) -> str | None:
        """Why a running container's Python state is gone before its next run (its kernel ended, or this server
        started after its last run), or None while it is kept: what a client is told before it runs a cell."""
        container_id = row["id"]
        if row["status"] != "running" or container_id in self._starting:
            return None
        return self._stopped.get(container_id) or _why_lost(self._kernels.get(container_id))

    def retrieve(self, container_id: str) -> dict:
        """Like use() (so it refreshes activity), but an expired container is shown (status `expired`) rather than
        refused: retrieving is how a client learns that a container is gone."""
        try:
            return self.use(container_id)
        except errors.APIError as exc:
            if exc.status != 400:
                raise
            return self.store.get_container(container_id)  # type: ignore[return-value]

    async def create(self, name: str, minutes: int, memory_limit: str, file_ids: list[str]) -> dict:
        for file_id in file_ids:
            if self.store.get_file(file_id) is None:
                raise errors.not_found("file", file_id, param="file_ids")
        if MEMORY_LIMITS[memory_limit] > host_memory_bytes():
            raise errors.invalid(
                f"Invalid 'memory_limit': {memory_limit} is more memory than this host has "
                f"({host_memory_bytes() / (1 << 30):.0f} GiB); choose a smaller one.",
                "memory_limit",
            )
        if (
            self.max_containers is not None
            and len(self.store.running_containers()) + self._creating >= self.max_containers
        ):
            raise errors.APIError(
                429,
                f"This server runs at most {self.max_containers} containers at once (--max-containers): delete "
                "one you no longer need (cellbox ls, cellbox rm) and try again.",
                type="rate_limit_error",
                code="too_many_containers",
            )
        limits = self.launcher.limits_for(memory_limit)
        kernel = self.warm.take() if memory_limit == "1g" else None
        if kernel is not None:
            row = self.store.create_container(name, minutes, memory_limit, kernel.workdir)
        else:  # its folder is made too: a disk image, perhaps, mounted off the event loop
            self._creating += 1
            try:
                row = await asyncio.to_thread(self.store.create_container, name, minutes, memory_limit, None)
            finally:
                self._creating -= 1
        container_id = row["id"]
        if kernel is not None:
            kernel.workdir = self.store.container_dir(container_id)
            self._kernels[container_id] = kernel
        else:
            try:
                await self._start_kernel(container_id, limits)
            except BaseException:
                self.store.delete_container(container_id)
                raise
        try:
            async with self.lock(container_id):
                for file_id in file_ids:
                    await asyncio.to_thread(self.store.copy_file_to_container, file_id, container_id)
        except Exception:
            await self.delete(container_id)
            raise
        # Its clock starts when it is ready, not when a cold kernel began starting.
        now = time.time()
        self.store.touch(container_id, now)
        row["last_active"] = now
        return row

    async def _start_kernel(self, container_id: str, limits: Limits) -> Kernel:
        """The container's kernel, started once even when several requests want it at the same moment."""
        kernel = self._kernels.get(container_id)
        if kernel is not None and kernel.alive:
            return kernel
        task = self._starting.get(container_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._spawn(container_id, limits))
            self._starting[container_id] = task
            task.add_done_callback(lambda _: self._starting.pop(container_id, None))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the container was deleted or expired while its kernel was starting
                raise errors.not_found("container", container_id, param="container_id") from None
            raise

    async def _spawn(self, container_id: str, limits: Limits) -> Kernel:
        old = self._kernels.pop(container_id, None)
        if old is not None:
            old.kill()
        kernel = Kernel(self.launcher, self.store.container_dir(container_id), limits)
        try:
            await kernel.start()
        except KernelError as exc:
            log.error("container %s: %s", container_id, exc)
            raise errors.APIError(500, "The container's kernel failed to start.", type="server_error") from exc
        if self.store.get_container(container_id) is None:  # deleted while starting
            kernel.kill()
            raise errors.not_found("container", container_id)
        self._kernels[container_id] = kernel
        return kernel

    def _busy(self, container_id: str) -> bool:
        kernel = self._kernels.get(container_id)
        return kernel is not None and kernel.busy

    async def execute(self, container_id: str, code: str) -> tuple[Execution, list[dict]]:
        """Runs code in the container's kernel; returns what it produced and the files it wrote or changed."""
        row = self.use(container_id, touch=False)  # touched when the run ends, however long it took
        limit = row["memory_limit"]
        limits = self.launcher.limits_for(limit)
        lost = self._stopped.pop(container_id, None) or _why_lost(self._kernels.get(container_id))
        held = self.quota.own_usage(container_id) if self.quota is not None else None
        self._interrupted.pop(container_id, None)
        kernel = await self._start_kernel(container_id, limits)
        try:
            result = await self._watched(container_id, kernel, code)
        except KernelError:
            lost = lost or "it had stopped"
            kernel = await self._start_kernel(container_id, limits)
            result = await self._watched(container_id, kernel, code)
        except asyncio.CancelledError:  # stopped (its response cancelled, its client gone): what is left is said
            if kernel.alive:
                self._interrupted[container_id] = stops.KEPT
            else:
                self._interrupted[container_id] = stops.RESTARTED
                self._stopped[container_id] = "an interrupted cell did not stop"
            raise
        finally:
            self.store.touch(container_id)
        if lost:
            # Said before anything else, so nobody finds out from a NameError.
            result.logs = (
                f"[This container's Python process was restarted before this run ({lost}): variables and imports "
                "of earlier runs are gone; files in /mnt/data are kept.]\n" + result.logs
            )
        if result.status == "failed" and self.store.get_container(container_id) is not None:
            if not result.killed:
                short = _short_of_memory(result, limit, limits.memory_bytes)
                advice = ""
                if result.memory_kills or not self.launcher.counts_memory_kills():
                    cause = "it ran out of memory" if result.memory_kills else "most likely it ran out of memory"
                    cause += f": this container's limit is {limit}, for every process it runs and for /tmp"
                elif short:  # not the limit's kill, but what was killed had just run out of memory
                    cause = f"it was killed right after running out of memory: {short}"
                    advice = _more_memory(limit)
                else:  # the memory limit would have counted it
                    cause = "it was killed or crashed, not by the memory limit"
                result.logs += (
                    f"\nThe kernel died ({cause}). It has been restarted: variables are lost, files in /mnt/data "
                    f"are kept.{advice}\n"
                )
            with contextlib.suppress(errors.APIError):
                await self._start_kernel(container_id, limits)
        elif result.error and "MemoryError" in result.error:
            result.logs += f"\nMemoryError: this container's memory limit is {limit}.\n"
        elif result.memory_kills:
            result.logs += (
                f"\n{result.memory_kills} process(es) of this run were killed: this container's memory limit "
                f"({limit}) covers every process it runs and the files in /tmp.\n"
            )
        if self.store.get_container(container_id) is None:  # deleted while the code ran
            raise errors.not_found("container", container_id, param="container_id")
        if self.quota is not None and self.quota.filled(container_id, held):
            result.logs += (
                f"\n/mnt/data is full: {self.quota.limit_said()} (writes past it fail with 'No space left on "
                "device'); delete some files to make room.\n"
            )
        async with self.lock(container_id):
            # A few files are brought in line at once; more off the event loop (a scan grows with what the code left
            # in /mnt/data, and other clients must not wait).
            quick = self._watcher(container_id).quick()
            if quick is not None:
                changed = filesync.sync(self.store, container_id, quick)
            else:
                changed = await asyncio.to_thread(self._sync_files, container_id)
        if self.quota is not None:
            self.quota.changed(container_id)
        return result, changed

    def stopped_said(self, container_id: str) -> str | None:
        """What stopping the container's last run left of it (its state kept, or its process restarted), once."""
        return self._interrupted.pop(container_id, None)

    def _watcher(self, container_id: str) -> Watcher:
        watcher = self._watchers.get(container_id)
        if watcher is None:
            watcher = self._watchers[container_id] = Watcher(str(self.store.container_dir(container_id)))
        return watcher

    def _sync_files(self, container_id: str) -> list[dict]:
        """The rows brought in line with /mnt/data, looking only at what the container's watcher saw change
        (everything, the first time or when watching isn't possible)."""
        return filesync.sync(self.store, container_id, self._watcher(container_id).take())

    async def _watched(self, container_id: str, kernel: Kernel, code: str) -> Execution:
        """Runs code while its disk use is watched: a run past the container's quota, or writing while the disk
        runs out, is stopped (its kernel killed) and told why."""
        if self.quota is None:
            return await kernel.execute(code, timeout=self.exec_timeout)
        stopped: list[str] = []

        def stop(reason: str) -> None:
            stopped.append(reason)
            kernel.kill()

        watcher = asyncio.ensure_future(self.quota.watch(container_id, stop))
        try:
            result = await kernel.execute(code, timeout=self.exec_timeout)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if stopped:
            result.status, result.killed = "failed", True
            result.logs += (
                f"\nThe run was stopped: {stopped[0]}. Its Python process was restarted (variables are lost); "
                "files in /mnt/data are kept: delete some to make room.\n"
            )
        return result

    async def _guard_disk(self, quota: Quota) -> None:
        """Between runs too, every container whose kernel lives is looked at (a thread or a process the code left
        running keeps writing): measured where its quota is not its filesystem's, its kernel stopped past it or
        when it writes while the server's disk runs out (told at the next run). A run's own watch looks at its
        container while it runs. Looking takes at most a tenth of the time, for all containers together."""
        while True:
            await asyncio.sleep(MEASURE_EVERY)
            began = time.monotonic()
            for container_id, kernel in list(self._kernels.items()):
                if kernel.busy or not kernel.alive or quota.wait(container_id) > 0:
                    continue
                try:
                    reason = await quota.check(container_id)
                except OSError:  # gone meanwhile
                    continue
                if reason is not None and self._kernels.get(container_id) is kernel and not kernel.busy:
                    log.warning("container %s: its kernel was stopped between runs: %s", container_id, reason)
                    self._stopped[container_id] = f"{reason}, between runs"
                    kernel.kill()
            await asyncio.sleep(9 * (time.monotonic() - began))

    # -- ending a container -----------------------------------------------------------------------------

    def _drop_kernel(self, container_id: str) -> None:
        self._stopped.pop(container_id, None)
        if self.quota is not None:
            self.quota.forget(container_id)
        watcher = self._watchers.pop(container_id, None)
        if watcher is not None:
            watcher.close()
        task = self._starting.pop(container_id, None)
        if task is not None:
            task.cancel()
        kernel = self._kernels.pop(container_id, None)
        if kernel is not None:
            kernel.kill()

    def expire(self, container_id: str) -> None:
        log.info("container %s expired", container_id)
        self._drop_kernel(container_id)
        self.store.expire_container(container_id)
        self._locks.pop(container_id, None)

    async def delete(self, container_id: str) -> bool:
        self._drop_kernel(container_id)
        # Under the container's lock, so an upload or scan in progress finishes before the folder goes.
        async with self.lock(container_id):
            found = self.store.delete_container(container_id)
        self._locks.pop(container_id, None)
        return found

    async def _sweep(self) -> None:
        interval = max(0.2, min(5.0, self.seconds_per_minute / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                self.store.remove_expired_files()
            except Exception:
                log.exception("could not remove expired files")
            now = time.time()
            for row in self.store.running_containers():
                if now > self.deadline(row) and not self._busy(row["id"]):
                    try:
                        self.expire(row["id"])
                    except Exception:
                        log.exception("could not expire container %s", row["id"])


NEAR_LIMIT = 0.9  # the share of its memory limit a jail that used it is said to have run out of memory at


def _short_of_memory(result: Execution, limit: str, limit_bytes: int | None) -> str | None:
    """What shows that a run killed otherwise than by the memory limit had just run out of memory (a MemoryError in
    its output, its memory at the limit), said for the user; None when nothing does."""
    if limit_bytes and result.memory_peak is not None and result.memory_peak >= NEAR_LIMIT * limit_bytes:
        return f"it had used {result.memory_peak / limit_bytes:.0%} of this container's {limit}"
    if "MemoryError" in result.logs:
        return f"a MemoryError came first (this container has {limit})"
    return None


def _more_memory(limit: str) -> str:
    bigger = [size for size, limit_bytes in MEMORY_LIMITS.items() if limit_bytes > MEMORY_LIMITS.get(limit, 0)]
    less = "less data at once (fewer rows or columns, or in chunks)"
    if not bigger:
        return f" Give it {less}."
    more = f"a container with more memory (memory_limit {bigger[0]}: `--memory {bigger[0]}` in a notebook)"
    return f" Give it {more}, or {less}."


def _why_lost(kernel: Kernel | None) -> str | None:
    """Why a container's kernel state is gone before a run, or None when it is intact."""
    if kernel is None:
        return "the server restarted since its last run"
    if kernel.alive:
        return None
    if kernel.memory_kills():
        return "its memory limit ended it"
    return "it was ended from outside"
