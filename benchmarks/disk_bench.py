"""What a filesystem per container costs at creation: servers with `--disk-quota filesystem` and `measured` side
by side, creates interleaved between them.

    sudo python benchmarks/disk_bench.py [--rounds 30]

1. create container, no pool (a cold kernel start, the image copied and mounted first) and with the warm pool (the
   image made ahead with the kernel, handed over by a bind mount);
2. the image's own steps, alone: the template at server start, a sparse copy and mount, unmount and removal.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from cellbox.local.store.diskimages import DiskImages
from cellbox.local.testing import running_server


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_create(data: Path, rounds: int, pool: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"filesystem": [], "measured": []}
    with (
        running_server(data / f"fs-{pool}", pool_size=pool, disk_quota="filesystem") as fs,
        running_server(data / f"measured-{pool}", pool_size=pool, disk_quota="measured") as measured,
    ):
        servers = {"filesystem": fs, "measured": measured}
        clients = {k: httpx.Client(base_url=s.base_url, headers=s.headers, timeout=120) for k, s in servers.items()}
        try:
            for i in range(rounds):
                order = ["filesystem", "measured"] if i % 2 == 0 else ["measured", "filesystem"]
                for mode in order:
                    time.sleep(1.0 if pool else 0.1)  # lets the pool refill between creates, as between cells
                    h = clients[mode]
                    started = time.perf_counter()
                    cid = h.post("/containers", json={"name": "bench"}).raise_for_status().json()["id"]
                    times[mode].append((time.perf_counter() - started) * 1000)
                    h.delete(f"/containers/{cid}").raise_for_status()
        finally:
            for h in clients.values():
                h.close()
    return times


def bench_steps(data: Path, rounds: int, limit: int) -> dict[str, list[float]]:
    folder = data / "steps"
    (folder / "containers").mkdir(parents=True)
    disks = DiskImages(folder, folder / "containers", limit)
    started = time.perf_counter()
    disks.start()
    out: dict[str, list[float]] = {"template at start": [(time.perf_counter() - started) * 1000]}
    out["copy and mount"], out["unmount and remove"] = [], []
    for i in range(rounds):
        where = folder / "containers" / f"cntr_{i}"
        started = time.perf_counter()
        disks.make(where)
        out["copy and mount"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        disks.release(where)
        out["unmount and remove"].append((time.perf_counter() - started) * 1000)
    disks.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellbox-disk-bench-") as tmp:
        data = Path(tmp)
        print("| measurement | filesystem (median, p95) | measured (median, p95) |")
        print("|---|---|---|")
        for pool, label in ((0, "create, no pool (cold kernel)"), (2, "create, warm pool")):
            times = bench_create(data, args.rounds, pool)
            fs, me = times["filesystem"], times["measured"]
            print(
                f"| {label} | {statistics.median(fs):.1f} ms, {_p(fs, 0.95):.1f} ms | "
                f"{statistics.median(me):.1f} ms, {_p(me, 0.95):.1f} ms |"
            )
        for limit, said in ((256 << 20, "256 MiB"), (10 << 30, "10 GiB")):
            steps = bench_steps(data / said.replace(" ", ""), args.rounds, limit)
            for name, values in steps.items():
                print(f"| {name} ({said} image) | {statistics.median(values):.1f} ms, {_p(values, 0.95):.1f} ms | |")


if __name__ == "__main__":
    main()
