"""What the benchmarks that compare servers share: an earlier commit checked out beside this one (the baseline),
and cold container starts and cells timed on servers side by side."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checkout(commit: str, into: Path) -> Iterator[Path]:
    """`commit` checked out at `into` (a git worktree, removed after); yields its `src` folder, for PYTHONPATH."""
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "-q", "--detach", str(into), commit], check=True)
    try:
        yield into / "src"
    finally:
        subprocess.run([*git, "remove", "--force", str(into)], check=False)


def run_cell(h: httpx.Client, container_id: str, code: str) -> float:
    """Milliseconds to run `code` in the container through /responses (an error in it fails the benchmark)."""
    started = time.perf_counter()
    body = {"model": "cellbox-local", "input": code, "tools": [{"type": "code_interpreter", "container": container_id}]}
    said = h.post("/responses", json=body).raise_for_status().text
    elapsed = (time.perf_counter() - started) * 1000
    assert "Error" not in said, said[-2000:]
    return elapsed


def cold_starts(servers: dict[str, Any], rounds: int, cells: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    """For each server (started without a warm pool), `rounds` times: milliseconds to create a container (a cold
    kernel start) and to run each of `cells` ({label: code}) in it in turn; servers interleaved, their order
    alternating by round, so both meet the same load."""
    times: dict[str, dict[str, list[float]]] = {name: {} for name in servers}
    clients = {k: httpx.Client(base_url=s.base_url, headers=s.headers, timeout=300) for k, s in servers.items()}
    try:
        for i in range(rounds):
            for name in sorted(servers) if i % 2 == 0 else sorted(servers, reverse=True):
                h, seen = clients[name], times[name]
                started = time.perf_counter()
                cid = h.post("/containers", json={"name": "bench"}).raise_for_status().json()["id"]
                seen.setdefault("create (cold kernel)", []).append((time.perf_counter() - started) * 1000)
                for label, code in cells.items():
                    seen.setdefault(label, []).append(run_cell(h, cid, code))
                h.delete(f"/containers/{cid}").raise_for_status()
    finally:
        for h in clients.values():
            h.close()
    return times
