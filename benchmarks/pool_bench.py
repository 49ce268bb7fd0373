"""Benchmarks of `cellbox.Pool`, each side by side with its baseline in one run.

    python benchmarks/pool_bench.py [--rows 5000000] [--rounds 3] [--out benchmarks/results-pool.md]

1. 16 parts each sleeping 2 s on a server with --latency-ms 200, pool of 16: wall time vs one part alone
   (the same pool machinery, one part);
2. a 5M-row frame split 8 ways (`Pool.push`, 8 sandboxes at once) vs pushing it whole to one sandboxes
   (`Sandbox.push`); a new frame every round, so every push sends;
3. CPU-bound parts (a pure-Python loop) on a server with --cpu-limit 1: speedup of N parts on N sandboxes over
   one part alone (N x time of one / time of N), for N = cores and 2 x cores.

Rounds are interleaved (baseline, then cellbox) and the medians compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

import cellbox
from cellbox.api import Client, Settings
from cellbox.local.testing import isolation_available, running_server

CPU_LOOP = "total = 0\nfor i in range({n}):\n    total += i * i\n"


@contextmanager
def server_client(folder: Path, **options: object) -> Iterator[Client]:
    with running_server(folder, **options) as srv:
        os.environ["CELLBOX_MODEL"] = "cellbox-local"
        client = Client(settings=Settings(base_url=srv.base_url, api_key=srv.token, model="cellbox-local"))
        try:
            yield client
        finally:
            client.close()


def paired(rounds: int, baseline: Callable[[], float], ours: Callable[[], float]) -> tuple[float, float]:
    base, mine = [], []
    for _ in range(rounds):
        base.append(baseline())
        mine.append(ours())
    return statistics.median(base), statistics.median(mine)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def bench_sleep(data: Path, rounds: int, parts: int = 16) -> tuple[float, float]:
    with (
        server_client(data / "sleep", latency_ms=200, max_containers=parts + 2, pool_size=2) as client,
        cellbox.Pool(parts, client=client, show=False) as pool,
    ):
        pool.run("import time")  # the runtime loaded in every kernel, as after a first cell
        code = "time.sleep(2)"
        return paired(
            rounds,
            lambda: timed(lambda: pool.map(code, split={"i": [0]}).raise_for_error()),
            lambda: timed(lambda: pool.map(code, split={"i": list(range(parts))}).raise_for_error()),
        )


def bench_push(data: Path, rounds: int, rows: int, ways: int = 8) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "price": rng.random(rows) * 100,
            "qty": rng.integers(1, 10, rows),
            "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
            "score": rng.random(rows),
            "round": 0,
        }
    )
    counter = iter(range(1, 1_000_000))

    def fresh() -> pd.DataFrame:
        frame["round"] = next(counter)  # every row changes: nothing is skipped as already sent
        return frame

    with (
        server_client(data / "push", max_containers=ways + 2) as client,
        cellbox.Pool(ways, client=client, show=False) as pool,
    ):
        whole = cellbox.Sandbox.create(client=client)
        try:
            return paired(
                rounds,
                lambda: timed(lambda: whole.push(fresh(), name="sales")),
                lambda: timed(lambda: pool.push(split={"sales": fresh()})),
            )
        finally:
            whole.delete()


def bench_cpu(data: Path, rounds: int, loop: int) -> dict[int, tuple[float, float]]:
    cores = os.cpu_count() or 1
    out: dict[int, tuple[float, float]] = {}
    code = CPU_LOOP.format(n=loop)
    for n in (cores, 2 * cores):
        with (
            server_client(data / f"cpu-{n}", cpu_limit=1, max_containers=n + 2) as client,
            cellbox.Pool(n, client=client, show=False) as pool,
        ):
            pool.run("pass")
            out[n] = paired(
                rounds,
                lambda: timed(lambda: pool.map(code, split={"i": [0]}).raise_for_error()),
                lambda n=n: timed(lambda: pool.map(code, split={"i": list(range(n))}).raise_for_error()),
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", type=int, default=20_000_000, help="iterations of the CPU-bound part")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results-pool.md"))
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cellbox-bench-pool-"))
    try:
        alone, sixteen = bench_sleep(data, args.rounds)
        whole, split = bench_push(data, args.rounds, args.rows)
        cpu = bench_cpu(data, args.rounds, args.loop)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    cores = os.cpu_count() or 1
    sandbox = "bubblewrap jails" if isolation_available() else "no isolation (bubblewrap unavailable)"
    sleep_ratio, push_ratio = sixteen / alone, split / whole
    lines = [
        "## Scale-out (`cellbox.Pool`)",
        "",
        f"Measured by `python benchmarks/pool_bench.py` on {platform.machine()} Linux, {cores} cores, "
        f"Python {platform.python_version()}, {sandbox}; all numbers from one run, medians of {args.rounds} "
        "interleaved rounds.",
        "",
        "| measurement | pool | baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
        f"| 16 parts sleeping 2 s, pool of 16, server latency 200 ms, vs one part alone | {sixteen:.2f} s | "
        f"{alone:.2f} s | {sleep_ratio:.2f}x | <= 1.3x | {'pass' if sleep_ratio <= 1.3 else 'FAIL'} |",
        f"| push a {args.rows:,}-row frame split 8 ways (`Pool.push`) vs whole (`Sandbox.push`) | {split:.2f} s | "
        f"{whole:.2f} s | {push_ratio:.2f}x | <= 1.2x | {'pass' if push_ratio <= 1.2 else 'FAIL'} |",
    ]
    for n, (one, many) in cpu.items():
        speedup = n * one / many
        lines.append(
            f"| {n} CPU-bound parts on {n} sandboxes (--cpu-limit 1) vs one part alone | {many:.2f} s | "
            f"{one:.2f} s | speedup {speedup:.2f} | >= {0.7 * cores:.1f} (0.7 x {cores} cores) | "
            f"{'pass' if speedup >= 0.7 * cores else 'FAIL'} |"
        )
    report = "\n".join([*lines, ""])
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
