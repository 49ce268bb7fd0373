"""Run a real local server for tests: `with running_server(tmp_path) as server: ...`.

The server runs in a subprocess on a free loopback port and dies with the test process. `server.base_url`
ends in `/v1`; `server.token` is its bearer token. Options are the fields of `ServerOptions` (the `cellbox serve`
flags) as keyword arguments
(`latency_ms=5`, `pool_size=0`, `seconds_per_minute=1`, ...). Isolation is used when bubblewrap works here and
skipped otherwise, unless `unsafe_no_isolation` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .jail.launcher import IsolationUnavailable, check_isolation
from .options import ServerOptions, to_argv
from .sandbox_env import Spec, configured_packages, ensure

_isolation: bool | None = None
T = TypeVar("T")


def isolation_available() -> bool:
    global _isolation
    if _isolation is None:
        try:
            check_isolation()
            _isolation = True
        except IsolationUnavailable:
            _isolation = False
    return _isolation


@dataclass
class RunningServer:
    base_url: str
    token: str
    process: subprocess.Popen
    data_dir: Path
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash would (kernels die with it)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Polls `condition` until it returns something truthy (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition!r}")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """`wait_until` for coroutines: sleeps with `asyncio.sleep`, so the event loop (and a server on it) runs on."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition!r}")
        await asyncio.sleep(interval)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


@contextlib.contextmanager
def running_server(data_dir: str | os.PathLike, timeout: float = 60.0, **options) -> Iterator[RunningServer]:
    """A started server on 127.0.0.1 with its data in `data_dir`; stopped (and its kernels killed) on exit."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if options.get("unsafe_no_isolation") is None:
        options["unsafe_no_isolation"] = not isolation_available()
    options.setdefault("port", 0)
    chosen = ServerOptions.from_mapping(options)
    if not chosen.own_interpreter:
        # Built here, once for every server of the session (the others find it, or wait on its lock), so that
        # `timeout` bounds a server's start, not a first build's downloads.
        ensure(Spec((*configured_packages(), *chosen.sandbox_package), root=chosen.sandbox_env_dir))
    work = Path(tempfile.mkdtemp(prefix="cellbox-test-server-"))
    endpoint = work / "server.json"
    log_path = work / "server.log"
    argv = [sys.executable, "-m", "cellbox.local", "--data-dir", str(data_dir), "--endpoint-file", str(endpoint)]
    argv += to_argv(options)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBOX_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + timeout
        while not endpoint.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the local server exited ({process.returncode}):\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local server did not start in {timeout} s:\n{log_path.read_text()}")
            time.sleep(0.02)
        info = json.loads(endpoint.read_text())
        server = RunningServer(info["base_url"], info["token"], process, data_dir, log_path)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(OSError):
            endpoint.unlink()
        with contextlib.suppress(OSError):
            log_path.unlink()
        with contextlib.suppress(OSError):
            work.rmdir()
