"""What showing the interpreter through overlays costs (jail/overlays.py): a server of this checkout and one of an
earlier commit that bound the interpreter's folders themselves, side by side, creates and first cells interleaved.

    sudo python benchmarks/prefix_bench.py --before <commit> [--rounds 20]

Per round and server: create a container (no warm pool: a cold kernel start, whose imports all go through the
overlays), then its first cell importing what data cells import (numpy, pandas, matplotlib), then a second
cell that reads 2,000 files of the standard library (lookups in the overlay, warm).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from baseline import checkout
from cellbox.local.testing import running_server

FIRST_CELL = "import numpy, pandas, matplotlib.pyplot"
WALK_CELL = """
import os, sysconfig
n = 0
for folder, _, names in os.walk(sysconfig.get_paths()["stdlib"]):
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            f.read(64)
        n += 1
        if n == 2000:
            break
    if n == 2000:
        break
"""


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@contextlib.contextmanager
def _source(src: Path | None) -> Iterator[None]:
    """Servers started inside run the package from `src` (an earlier commit's), or this checkout's."""
    before = os.environ.pop("PYTHONPATH", None)
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def _run(h: httpx.Client, cid: str, code: str) -> float:
    started = time.perf_counter()
    body = {"model": "cellbox-local", "input": code, "tools": [{"type": "code_interpreter", "container": cid}]}
    said = h.post("/responses", json=body).raise_for_status().text
    elapsed = (time.perf_counter() - started) * 1000
    assert "Error" not in said, said[-2000:]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="a commit whose jail bound the interpreter's folders")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cellbox-prefix-bench-") as tmp,
        checkout(args.before, Path(tmp) / "b") as src,
        _source(src),
        running_server(Path(tmp) / "binds", pool_size=0) as binds,
        _source(None),
        running_server(Path(tmp) / "overlays", pool_size=0) as overlays,
    ):
        servers = {"overlays": overlays, "binds": binds}
        assert "prefixes" in os.listdir(overlays.data_dir) and "prefixes" not in os.listdir(binds.data_dir)
        times = _measure(servers, args.rounds)
    print("| step (median, p95) | binds (before) | overlays | ratio of medians |")
    print("|---|---|---|---|")
    for step in ("create (cold kernel)", FIRST_CELL, "read 2,000 stdlib files"):
        b, o = times["binds"][step], times["overlays"][step]
        ratio = statistics.median(o) / statistics.median(b)
        print(
            f"| {step} | {statistics.median(b):.1f} ms, {_p(b, 0.95):.1f} ms | "
            f"{statistics.median(o):.1f} ms, {_p(o, 0.95):.1f} ms | {ratio:.2f}x |"
        )


def _measure(servers: dict, rounds: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {k: {} for k in servers}
    clients = {k: httpx.Client(base_url=s.base_url, headers=s.headers, timeout=300) for k, s in servers.items()}
    try:
        for i in range(rounds):
            for mode in sorted(servers) if i % 2 == 0 else sorted(servers, reverse=True):
                h, seen = clients[mode], times[mode]
                started = time.perf_counter()
                cid = h.post("/containers", json={"name": "bench"}).raise_for_status().json()["id"]
                seen.setdefault("create (cold kernel)", []).append((time.perf_counter() - started) * 1000)
                seen.setdefault(FIRST_CELL, []).append(_run(h, cid, FIRST_CELL))
                seen.setdefault("read 2,000 stdlib files", []).append(_run(h, cid, WALK_CELL))
                h.delete(f"/containers/{cid}").raise_for_status()
    finally:
        for h in clients.values():
            h.close()
    return times


if __name__ == "__main__":
    main()
