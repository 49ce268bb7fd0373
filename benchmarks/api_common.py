"""What the `api_*` benchmarks share: the benchmark Containers API (fake_api.py) in its own process, and
peak-RSS readings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fake_api import TOKEN

FAKE_API = Path(__file__).resolve().parent / "fake_api.py"

__all__ = ["TOKEN", "machine", "peak_rss_kb", "served"]


@contextmanager
def served() -> Iterator[str]:
    """Run the fake API in a separate process (no shared GIL with the client); yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(FAKE_API)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError("the fake server did not start")
        yield base_url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM) so far, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def machine() -> str:
    python = platform.python_version()
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {python}, {time.strftime('%Y-%m-%d')}"
