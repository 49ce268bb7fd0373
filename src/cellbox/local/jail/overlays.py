"""The interpreter's host folders as the jail shows them: each a read-only overlay mount whose layers are named by
descriptor (`lowerdir=/proc/self/fd/N`), so the jail's /proc/self/mountinfo gives "/" as its root and names no
host path. A bind mount of the folder itself would show its path within its filesystem (the kernel prints it,
and nothing bubblewrap offers changes it): where the interpreter, its environment and the home they live in are.

Layout in the data dir::

    prefixes/<n>/     where the n-th folder's overlay is mounted (the jail binds it at its fixed path, JailPython)
    prefixes/.empty   the second layer overlayfs needs when it has no upper one

Mounted at start, unmounted at shutdown (lazily: a kernel still running keeps its view); what a killed server
left mounted is unmounted at the next start. Needs root (mount) and overlayfs: without them the server binds the
folders themselves and says at start that mountinfo names them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from ..store import mounts

_EMPTY = ".empty"


class OverlaysUnavailable(RuntimeError):
    """This host can't show the interpreter's folders without their host paths; the message says why."""


class PrefixOverlays:
    """The overlays of one server's interpreter folders, under `folder` (the data dir's `prefixes`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._points: list[Path] = []

    def show(self, sources: Iterable[str]) -> dict[str, str]:
        """Each host folder in `sources` mounted as a read-only overlay: {host folder: where it is mounted}.
        Raises OverlaysUnavailable (having unmounted what it mounted) when one can't be."""
        if os.geteuid() != 0:
            raise OverlaysUnavailable("mounting needs the server to run as root")
        self.unmount_stale()
        empty = self.folder / _EMPTY
        empty.mkdir(parents=True, exist_ok=True)
        shown: dict[str, str] = {}
        try:
            for source in dict.fromkeys(sources):
                point = self.folder / str(len(self._points))
                point.mkdir(exist_ok=True)
                _mount_overlay(source, str(empty), point)
                self._points.append(point)
                shown[source] = str(point)
        except OSError as exc:
            self.close()
            raise OverlaysUnavailable(f"an overlay mount failed ({exc.strerror or exc})") from exc
        return shown

    def unmount_stale(self) -> None:
        """Unmounts what a killed server left mounted here."""
        for point in sorted(mounts.mounts_under(self.folder), key=len, reverse=True):
            with contextlib.suppress(OSError):
                mounts.unmount(point)

    def close(self) -> None:
        """Unmounts every overlay (a kernel still running keeps its view until it is gone)."""
        while self._points:
            point = self._points.pop()
            with contextlib.suppress(OSError):
                mounts.unmount(point)
            with contextlib.suppress(OSError):
                point.rmdir()


def _mount_overlay(lower: str, empty: str, point: Path) -> None:
    # The layers are opened here and named through this process's descriptors: the mount's options keep the
    # names as given, and those are what mountinfo shows.
    layers = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in (lower, empty)]
    try:
        lowerdir = ":".join(f"/proc/self/fd/{fd}" for fd in layers)
        flags = mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV
        mounts.mount("cellbox", point, "overlay", flags, f"lowerdir={lowerdir}")
    finally:
        for fd in layers:
            os.close(fd)
