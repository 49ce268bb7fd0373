"""Mounting and unmounting from Python (libc's mount(2) and umount2(2)), and finding what is mounted where."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
_MNT_DETACH = 2
_ESCAPE = re.compile(r"\\([0-7]{3})")
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | Path, target: str | Path, fstype: str | None, flags: int, options: str | None) -> None:
    """mount(2); OSError when it fails."""
    _checked(
        _libc.mount(
            os.fsencode(source), os.fsencode(target), fstype and fstype.encode(), flags, options and options.encode()
        )
    )


def unmount(target: str | Path, detach: bool = True) -> None:
    """umount2(2), lazily by default: a process still using the mount keeps its view until it is gone."""
    _checked(_libc.umount2(os.fsencode(target), _MNT_DETACH if detach else 0))


def mounts_under(folder: Path) -> list[str]:
    """Mount points below `folder`, as /proc/self/mountinfo has them."""
    top = os.path.realpath(folder).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
            for line in info:
                fields = line.split()
                if len(fields) > 4:
                    point = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
                    if point.startswith(top):
                        found.append(point)
    except OSError:
        pass
    return found


def _checked(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
