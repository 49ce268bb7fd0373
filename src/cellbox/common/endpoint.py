"""The endpoint file: how a running `cellbox serve` tells clients where it listens and which token it wants.

JSON `{"base_url": ..., "token": ..., "pid": ...}`, mode 0600, written atomically. Both sides of the contract live
here: the server claims the file, writes and removes it and answers the endpoint proof; clients read it, wait for a
server that is starting or stopping, and check the proof before they send a server anything. No imports from the
rest of cellbox.

Beside the endpoint file `F`:
- `F.lock` is held by a server process for its whole life (`claim`): held while `F` is missing means a server is
  starting (it has not written `F` yet) or stopping (it has removed `F` but not exited), and clients wait for it.
- `F.autostart.lock` is held by a client while it starts a server (`autostarting`), so two clients never both do.
- `F.stopped` says the user stopped the server (`cellbox stop`): clients that start one on their own (the sidebar's
  refresh) leave it stopped; one the user asks for (a cell, the sidebar's Start) starts it, and writing `F` clears it.

Both are `flock`-style locks (the `filelock` package), released by the kernel when their process ends however it
ends, so a crash never blocks the next server or client.

The proof: a live pid and an answering port don't make a server ours (the server may have died and its pid and
port been reused, or another user's server may listen there). Before sending the token or any data, a client sends
a fresh nonce to `GET /cellbox/proof?nonce=…` (no credentials), and the server answers the HMAC-SHA256 of it keyed
by its token, which only the server that wrote `F` can compute; the token itself never travels for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "PROOF_PATH",
    "Endpoint",
    "autostarting",
    "claim",
    "claimed",
    "clear_stopped",
    "mark_stopped",
    "new_nonce",
    "not_proven",
    "pid_alive",
    "proof",
    "proof_url",
    "proves",
    "read",
    "remove",
    "stopped",
    "valid_nonce",
    "write",
]

PROOF_PATH = "/cellbox/proof"
# Long enough that no answer can be replayed, short enough that the query stays small.
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# A client's check whether a server holds the claim takes the lock for an instant; a server claiming at that
# instant waits this long rather than mistaking the client for a running server.
_CLAIM_WAIT = 2.0
# Windows' names for asking whether a process runs (OpenProcess, GetExitCodeProcess).
_QUERY_LIMITED_INFORMATION = 0x1000
_ACCESS_DENIED = 5
_STILL_ACTIVE = 259


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    token: str | None
    pid: int | None
    path: Path | None = None  # the endpoint file it was read from


def pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive all the same
        return True
    return True


def _alive_on_windows(pid: int) -> bool:
    # Not os.kill(pid, 0): on Windows that ends the process (TerminateProcess with exit code 0), and the server
    # extension asks this of every notebook's kernel.
    if sys.platform == "win32":  # says so to type checkers on other systems too, where ctypes has no WinDLL
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
        kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
        handle = kernel32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return ctypes.get_last_error() == _ACCESS_DENIED  # someone else's process: alive all the same
        try:
            code = wintypes.DWORD()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == _STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
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
    return Endpoint(
        data["base_url"], token if isinstance(token, str) else None, pid if isinstance(pid, int) else None, path
    )


def _lock(path: Path, suffix: str) -> Any:
    # Imported here: filelock takes ~70 ms to import, and a client that finds a running server never needs it.
    from filelock import FileLock

    return FileLock(path.with_name(path.name + suffix), mode=0o600)


_claims: dict[Path, Any] = {}  # endpoint file -> the lock this process holds on it, for its lifetime


def claim(path: Path) -> Endpoint | None:
    """Make this process the one server that owns endpoint file `path`, for as long as it runs: None once it does
    (or already did). When another live server owns it, that server's endpoint (or, if it has not written the file
    yet, one with its URL empty) and nothing is claimed: a second server must never take the file over, or clients
    would lose the first one and its running containers."""
    from filelock import Timeout

    path = path.absolute()
    if path in _claims:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(path, ".lock")
    try:
        lock.acquire(timeout=_CLAIM_WAIT)
    except Timeout:
        return read(path) or Endpoint("", None, None, path)
    _claims[path] = lock
    return None


def claimed(path: Path) -> bool:
    """Whether a server process holds the claim on endpoint file `path`: one is running, starting or stopping."""
    from filelock import Timeout

    path = path.absolute()
    if path in _claims:
        return True
    if not path.with_name(path.name + ".lock").exists():
        return False
    probe = _lock(path, ".lock")
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


@contextlib.contextmanager
def autostarting(path: Path, timeout: float) -> Iterator[None]:
    """Held by a client while it looks for, and if need be starts, the server for endpoint file `path`: other
    clients wait here and then find the server it started. Raises `filelock.Timeout` after `timeout` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path.absolute(), ".autostart.lock").acquire(timeout=max(0.0, timeout)):
        yield


def write(path: Path, base_url: str, token: str) -> None:
    """Atomically, readable by this user only: the token is a secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"base_url": base_url, "token": token, "pid": os.getpid()}, f)
    os.replace(tmp, path)
    clear_stopped(path)  # a server serves again: whoever started it, it is no longer stopped


def _stopped_file(path: Path) -> Path:
    return path.with_name(path.name + ".stopped")


def mark_stopped(path: Path) -> None:
    """The user stopped the server of endpoint file `path`: nothing starts it again unasked."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        _stopped_file(path).touch()


def stopped(path: Path) -> bool:
    """Whether the user stopped the server of endpoint file `path`, and none has started since."""
    return _stopped_file(path).exists()


def clear_stopped(path: Path) -> None:
    with contextlib.suppress(OSError):
        _stopped_file(path).unlink()


def remove(path: Path, base_url: str) -> None:
    """Removes the file only if it still describes this process's server (another may have started since)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid() and data.get("base_url") == base_url:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# -- the endpoint proof ------------------------------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def valid_nonce(nonce: str) -> bool:
    return _NONCE.fullmatch(nonce) is not None


def proof(token: str, nonce: str) -> str:
    """What the server that holds `token` answers to `nonce` (the label keeps this HMAC from meaning anything
    else keyed by the same token)."""
    return hmac.new(token.encode(), b"cellbox endpoint proof\n" + nonce.encode(), hashlib.sha256).hexdigest()


def proves(token: str | None, nonce: str, answer: object) -> bool:
    """Whether `answer` is the proof of `token` for `nonce` (constant time). An endpoint with no token can't be
    proven: cellbox never writes one."""
    if token is None or not isinstance(answer, str):
        return False
    return hmac.compare_digest(answer.encode(), proof(token, nonce).encode())


def proof_url(base_url: str) -> str:
    """Where the server at `base_url` (…/v1) answers the proof: the root of its origin."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}{PROOF_PATH}"


def not_proven(found: Endpoint) -> str:
    """The one line a client says when what answers at `found.base_url` can't prove it holds the token."""
    where = f" in {found.path}" if found.path else ""
    port = urlsplit(found.base_url).port
    return (
        f"the process answering at {found.base_url} could not prove it is the local cellbox server recorded{where} "
        f"(pid {found.pid}), so neither the token nor any data was sent to it; if that server runs an older cellbox, "
        f"restart it, otherwise find out what listens on port {port}."
    )
