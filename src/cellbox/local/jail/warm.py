"""A few warm kernels, started ahead of time so that creating a container does not wait for a kernel.

Warm kernels have the default memory limit (1g, what most containers use); a container asking for more gets
a cold one. Each warm kernel owns a folder `containers/.pool-*` (with its disk image, where containers have
them) that becomes the container's folder when it is handed out (the jail's bind mount follows the renamed
folder, or the image it mounted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from ..store import Store
from .kernel import Kernel
from .launcher import Launcher, Limits

log = logging.getLogger("cellbox.local")


class WarmPool:
    def __init__(self, launcher: Launcher, store: Store, size: int, limits: Limits) -> None:
        self.launcher = launcher
        self.store = store
        self.folder = store.containers_dir
        self.size = size
        self.limits = limits
        self._ready: list[Kernel] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failures = 0

    def start(self) -> None:
        if self.size > 0:
            self._task = asyncio.get_running_loop().create_task(self._fill())

    def take(self) -> Kernel | None:
        """A ready kernel (its folder still `.pool-*`: the caller renames it), or None if none is warm."""
        while self._ready:
            kernel = self._ready.pop()
            self._wake.set()
            if kernel.alive:
                return kernel
            self._discard(kernel)
        return None

    async def _fill(self) -> None:
        while True:
            while len(self._ready) < self.size:
                folder = self.folder / f".pool-{secrets.token_hex(8)}"
                try:
                    await asyncio.to_thread(self.store.make_folder, folder)
                except OSError as exc:
                    self._failures += 1
                    log.warning("could not make a warm kernel's folder: %s", exc)
                    await asyncio.sleep(min(30.0, 0.5 * 2**self._failures))
                    continue
                kernel = Kernel(self.launcher, folder, self.limits)
                try:
                    await kernel.start()
                except asyncio.CancelledError:
                    self._discard(kernel)
                    raise
                except Exception as exc:
                    self._discard(kernel)
                    self._failures += 1
                    log.warning("could not start a warm kernel: %s", exc)
                    # Back off rather than spin when kernels cannot start at all.
                    await asyncio.sleep(min(30.0, 0.5 * 2**self._failures))
                    continue
                self._failures = 0
                self._ready.append(kernel)
            self._wake.clear()
            await self._wake.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for kernel in self._ready:
            self._discard(kernel)
        self._ready.clear()

    def _discard(self, kernel: Kernel) -> None:
        kernel.kill()
        self.store.remove_folder(kernel.workdir)
