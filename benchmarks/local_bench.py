"""Benchmarks of the local sandbox server, each side by side with its baseline in one run.

    python benchmarks/local_bench.py [--size-mb 1024] [--out benchmarks/results-local.md]

1. create container: warm pool vs. no pool (cold kernel start);
2. `print(1)` through POST /v1/responses vs. a raw jupyter_client execute round trip of the same code;
3. `print(1)` as the container fills: empty, 2,000 and 20,000 files in /mnt/data;
4. 20 containers executing at once: all must succeed; throughput;
5. content download of a large file vs. `python -m http.server` serving the same file.

The server runs as `cellbox serve` would (bubblewrap jails when available) in a subprocess; downloads are
read with curl, so the client is the same C program for both servers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from jupyter_client.manager import start_new_kernel

from cellbox.local.testing import isolation_available, running_server, wait_until


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _run(h: httpx.Client, container_id: str, code: str) -> dict:
    r = h.post(
        "/responses",
        json={
            "model": "cellbox-local",
            "input": code,
            "tools": [{"type": "code_interpreter", "container": container_id}],
            "include": ["code_interpreter_call.outputs"],
        },
    )
    r.raise_for_status()
    return r.json()


def bench_create(data: Path, rounds: int) -> dict[str, float]:
    out = {}
    for label, pool in (("warm pool", 2), ("no pool (cold start)", 0)):
        with running_server(data / f"create-{pool}", pool_size=pool) as srv, _client(srv) as h:
            times = []
            for _ in range(rounds):
                time.sleep(0.8 if pool else 0.05)  # lets the pool refill between creates, as between cells
                started = time.perf_counter()
                cid = h.post("/containers", json={"name": "bench"}).raise_for_status().json()["id"]
                times.append(time.perf_counter() - started)
                h.delete(f"/containers/{cid}")
            out[label] = statistics.median(times) * 1000
            out[f"{label} p95"] = _p(times, 0.95) * 1000
    return out


def bench_print(data: Path, rounds: int) -> dict[str, float]:
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        raw = []
        for _ in range(rounds):
            started = time.perf_counter()
            kc.execute_interactive("print(1)", output_hook=lambda msg: None, timeout=30)
            raw.append(time.perf_counter() - started)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    with running_server(data / "print") as srv, _client(srv) as h:
        cid = h.post("/containers", json={"name": "bench"}).json()["id"]
        _run(h, cid, "print(1)")
        served = []
        for _ in range(rounds):
            started = time.perf_counter()
            body = _run(h, cid, "print(1)")
            served.append(time.perf_counter() - started)
            assert body["output"][0]["outputs"][0]["logs"] == "1\n"
    return {"raw": statistics.median(raw) * 1000, "served": statistics.median(served) * 1000}


def bench_growth(data: Path, rounds: int, sizes: tuple[int, ...] = (0, 2_000, 20_000)) -> dict[int, float]:
    """`print(1)` p50 as the container fills with files: the cost of bringing the file list up to date after a
    run must not grow with what /mnt/data holds."""
    out: dict[int, float] = {}
    with running_server(data / "growth") as srv, _client(srv) as h:
        cid = h.post("/containers", json={"name": "growth"}).json()["id"]
        made = 0
        for size in sizes:
            if size > made:
                _run(h, cid, f"import os\nos.makedirs('f', exist_ok=True)\nfor i in range({made}, {size}):\n"
                     "    open(f'f/{i}.txt', 'w').write('x')")  # fmt: skip
                made = size
            _run(h, cid, "print(1)")
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                _run(h, cid, "print(1)")
                times.append(time.perf_counter() - started)
            out[size] = statistics.median(times) * 1000
    return out


def bench_parallel(data: Path, containers: int, runs_each: int) -> dict[str, float]:
    code = "import hashlib\nprint(hashlib.sha256(b'x' * 1_000_000).hexdigest()[:8])"
    with running_server(data / "parallel") as srv, _client(srv) as h:
        started = time.perf_counter()
        ids = [h.post("/containers", json={"name": f"p{i}"}).raise_for_status().json()["id"] for i in range(containers)]
        created = time.perf_counter() - started

        def work(cid: str) -> int:
            ok = 0
            with _client(srv) as own:
                for _ in range(runs_each):
                    body = _run(own, cid, code)
                    ok += body["output"][0]["status"] == "completed" and "logs" in str(body)
            return ok

        started = time.perf_counter()
        with ThreadPoolExecutor(containers) as pool:
            ok = sum(pool.map(work, ids))
        elapsed = time.perf_counter() - started
    total = containers * runs_each
    return {"ok": ok, "total": total, "seconds": elapsed, "per_s": total / elapsed, "create_s": created}


def _curl_rate(url: str, headers: dict[str, str]) -> float:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", url]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    return float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout) / 1e6


def bench_download(data: Path, size_mb: int, rounds: int) -> dict[str, float]:
    with running_server(data / "download", max_upload_mb=size_mb + 1) as srv, _client(srv) as h:
        cid = h.post("/containers", json={"name": "dl"}).json()["id"]
        # Written by code in the container (random bytes, not a sparse file), then found by the post-run scan.
        _run(
            h,
            cid,
            f"import os\nwith open('big.bin', 'wb') as f:\n    for _ in range({size_mb}):\n"
            "        f.write(os.urandom(1024 * 1024))",
        )
        files = h.get(f"/containers/{cid}/files").json()["data"]
        fid = next(f["id"] for f in files if f["path"] == "/mnt/data/big.bin")
        folder = srv.data_dir / "containers" / cid
        port = _free_port()
        static = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            ours, theirs = [], []
            _curl_rate(f"http://127.0.0.1:{port}/big.bin", {})  # both then read from a warm page cache
            for _ in range(rounds):  # interleaved, so both see the same page cache and machine load
                ours.append(_curl_rate(f"{srv.base_url}/containers/{cid}/files/{fid}/content", srv.headers))
                theirs.append(_curl_rate(f"http://127.0.0.1:{port}/big.bin", {}))
        finally:
            static.terminate()
            static.wait()
    return {"served": statistics.median(ours), "http.server": statistics.median(theirs)}


def _client(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers=srv.headers, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int) -> None:
    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    wait_until(listening, what="http.server to listen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results-local.md"))
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cellbox-bench-"))
    try:
        create = bench_create(data, args.rounds)
        printed = bench_print(data, args.rounds * 2)
        growth = bench_growth(data, args.rounds)
        parallel = bench_parallel(data, 20, 5)
        download = bench_download(data, args.size_mb, 9)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    ratio = printed["served"] / printed["raw"]
    share = download["served"] / download["http.server"]
    sandbox = "bubblewrap jails" if isolation_available() else "no isolation (bubblewrap unavailable)"
    lines = [
        "## Local server (`cellbox serve`)",
        "",
        f"Measured by `python benchmarks/local_bench.py` on {platform.machine()} Linux, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {sandbox}; all numbers from one run.",
        "",
        "| benchmark | cellbox local | baseline | target | result |",
        "|---|---|---|---|---|",
        f"| create container, p50 ({args.rounds} creates) | {create['warm pool']:.1f} ms with warm pool "
        f"(p95 {create['warm pool p95']:.1f} ms) | {create['no pool (cold start)']:.0f} ms without pool "
        f"(cold kernel start) | ≤ 50 ms | {'pass' if create['warm pool'] <= 50 else 'FAIL'} |",
        f"| `print(1)` via POST /v1/responses, p50 ({args.rounds * 2} runs) | {printed['served']:.1f} ms | "
        f"{printed['raw']:.1f} ms raw jupyter_client round trip | ≤ 3x | {ratio:.2f}x: "
        f"{'pass' if ratio <= 3 else 'FAIL'} |",
        f"| `print(1)` p50 with 20,000 files in /mnt/data vs the same container empty ({args.rounds} runs each) | "
        f"{growth[20_000]:.1f} ms (2,000 files: {growth[2_000]:.1f} ms) | {growth[0]:.1f} ms empty | ≤ 1.5x | "
        f"{growth[20_000] / growth[0]:.2f}x: {'pass' if growth[20_000] <= 1.5 * growth[0] else 'FAIL'} |",
        f"| 20 containers executing at once (5 runs each) | {parallel['ok']}/{parallel['total']} succeeded, "
        f"{parallel['per_s']:.1f} runs/s ({parallel['seconds']:.1f} s; 20 creates took "
        f"{parallel['create_s']:.1f} s) | | all succeed | "
        f"{'pass' if parallel['ok'] == parallel['total'] else 'FAIL'} |",
        f"| download of a {args.size_mb} MiB file (curl, median of 9 interleaved) | {download['served']:.0f} MB/s | "
        f"{download['http.server']:.0f} MB/s `python -m http.server` | ≥ 80% | {share:.0%}: "
        f"{'pass' if share >= 0.8 else 'FAIL'} |",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
