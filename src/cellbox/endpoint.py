"""The endpoint file: how a running `cellbox serve` tells clients where it listens and which token it wants.

JSON `{"base_url": ..., "token": ..., "pid": ...}`, mode 0600, written atomically. Both sides of the contract live
here: the server writes and removes it, `cellbox.api.config` reads it. No imports from the rest of cellbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Endpoint", "claim", "pid_alive", "read", "remove", "write"]


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    token: str | None
    pid: int | None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive all the same
        return True
    return True


def read(path: Path) -> Endpoint | None:
    """The endpoint of a live server, or None (no file, an unreadable one, or one left by a dead server)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("base_url"), str):
        return None
    pid = data.get("pid")
    if isinstance(pid, int) and not pid_alive(pid):
        return None
    token = data.get("token")
    return Endpoint(data["base_url"], token if isinstance(token, str) else None, pid if isinstance(pid, int) else None)


_claims: dict[Path, int] = {}  # endpoint file -> the descriptor holding its lock, for this process's lifetime


def claim(path: Path) -> Endpoint | None:
    """Make this process the one server that owns endpoint file `path`, for as long as it runs: None once it does
    (or already did). When another live server owns it, that server's endpoint (or, if it has not written the file
    yet, one with its URL empty) and nothing is claimed: a second server must never take the file over, or clients
    would lose the first one and its running containers.

    The claim is an exclusive `flock` on `<path>.lock`, released by the kernel when the process ends however it
    ends, so a crashed server never blocks the next one."""
    path = path.absolute()
    if path in _claims:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return read(path) or Endpoint("", None, None)
    _claims[path] = fd
    return None


def write(path: Path, base_url: str, token: str) -> None:
    """Atomically, readable by this user only: the token is a secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"base_url": base_url, "token": token, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def remove(path: Path, base_url: str) -> None:
    """Removes the file only if it still describes this process's server (another may have started since)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid() and data.get("base_url") == base_url:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
