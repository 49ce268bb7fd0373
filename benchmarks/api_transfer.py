"""Upload and download throughput of `cellbox.api` against bare httpx, same bytes, same server, one run.

    .venv/bin/python benchmarks/api_transfer.py               # 1 GiB each way, 7 rounds
    .venv/bin/python benchmarks/api_transfer.py --size 256M --rounds 2

The benchmark Containers API (benchmarks/fake_api.py: uploads parsed and counted, downloads served from
memory) runs in its own process. Every measurement runs in a fresh child process, so its peak RSS growth
(VmHWM after minus before, the client warmed up) is its own; the sides alternate, and which goes first alternates
too, to spread the machine's noise evenly. Targets: throughput ratio >= 0.90, RSS growth <= 64 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from api_common import TOKEN, machine, peak_rss_kb, served

CHUNK = 64 * 1024
MB = 1_000_000


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


# --- the children: one measurement each --------------------------------------------------------------------


def _child(side: str, base_url: str, container: str, file_id: str, path: str) -> dict[str, float]:
    from cellbox.api import Client

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with Client(base_url=base_url, api_key=TOKEN) as client, httpx.Client(timeout=60) as bare:
        client.containers.retrieve(container)  # warm both: connection, imports, first parse
        bare.get(f"{base_url}/containers/{container}", headers=headers).raise_for_status()
        before = peak_rss_kb()
        cpu_before = time.process_time()
        started = time.perf_counter()
        if side == "client-upload":
            made = client.containers.files.create(container, path)
            moved = made.bytes
        elif side == "httpx-upload":
            with open(path, "rb") as f:
                answer = bare.post(
                    f"{base_url}/containers/{container}/files",
                    files={"file": (os.path.basename(path), f, "application/octet-stream")},
                    headers=headers,
                )
            answer.raise_for_status()
            moved = answer.json()["bytes"]
        elif side == "client-download":
            client.containers.files.download(container, file_id, path)
            moved = os.path.getsize(path)
        elif side == "httpx-download":
            url = f"{base_url}/containers/{container}/files/{file_id}/content"
            with bare.stream("GET", url, headers=headers) as answer, open(path, "wb") as out:
                answer.raise_for_status()
                for chunk in answer.iter_raw(CHUNK):
                    out.write(chunk)
            moved = os.path.getsize(path)
        else:
            raise ValueError(side)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        growth_kb = peak_rss_kb() - before
    if side.endswith("download"):
        os.unlink(path)
    return {"seconds": seconds, "cpu_seconds": cpu, "bytes": moved, "rss_growth_mb": growth_kb * 1024 / MB}


def _measure(side: str, base_url: str, container: str, file_id: str, path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, base_url, container, file_id, path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


# --- the parent ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="bytes each way, e.g. 64M, 1G (default 1G)")
    parser.add_argument("--rounds", type=int, default=7, help="measurements per side (default 7)")
    parser.add_argument(
        "--dir",
        default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
        help="where the payload and downloads go (default /dev/shm when there is one: disk writeback is noise)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return

    from cellbox.api import Client

    size = _size(args.size)
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        source = work / "payload.bin"
        with source.open("wb") as f:  # incompressible, written in blocks
            block = os.urandom(CHUNK * 16)
            left = size
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
        with served() as base_url, Client(base_url=base_url, api_key=TOKEN) as client:
            container = client.containers.create("bench").id
            file_id = client.containers.files.create(container, source).id  # what the downloads fetch
            results: dict[str, list[dict[str, float]]] = {}
            pairs = [("client-upload", "httpx-upload"), ("client-download", "httpx-download")]
            for pair in pairs:  # a round not counted: page cache, CPU frequency, the server's first requests
                for side in pair:
                    path = str(source) if side.endswith("upload") else str(work / f"{side}.out")
                    _measure(side, base_url, container, file_id, path)
            for round_ in range(args.rounds):
                for pair in pairs:
                    for side in pair if round_ % 2 == 0 else pair[::-1]:
                        path = str(source) if side.endswith("upload") else str(work / f"{side}.out")
                        result = _measure(side, base_url, container, file_id, path)
                        if result["bytes"] != size:
                            raise RuntimeError(f"{side} moved {result['bytes']} bytes, not {size}")
                        results.setdefault(side, []).append(result)
                        print(
                            f"round {round_ + 1} {side:16} {size / result['seconds'] / MB:8.1f} MB/s "
                            f"rss +{result['rss_growth_mb']:.1f} MB",
                            file=sys.stderr,
                        )
    report = _report(results, size, args.rounds, args.dir or tempfile.gettempdir())
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _report(results: dict[str, list[dict[str, float]]], size: int, rounds: int, where: str) -> str:
    def rates(side: str) -> list[float]:  # MB/s of each round
        return [size / r["seconds"] / MB for r in results[side]]

    def cpu(side: str) -> float:  # median CPU seconds per GB moved
        return statistics.median(r["cpu_seconds"] / (size / 1e9) for r in results[side])

    def rss(side: str) -> float:
        return max(r["rss_growth_mb"] for r in results[side])

    lines = [
        f"{size / 2**20:.0f} MiB each way, {rounds} rounds, files in {where}; {machine()}",
        "",
        "Ratio: the median over rounds of cellbox/httpx throughput measured back to back in that round (the pair "
        "shares the machine's state); best: best-of-rounds of each side.",
        "",
        "| transfer | cellbox MB/s median (best) | bare httpx MB/s median (best) | ratio, paired median (>= 0.90) "
        "| ratio of bests | CPU s/GB cellbox / httpx | cellbox peak RSS growth (<= 64 MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("upload", "download"):
        ours, bare = rates(f"client-{kind}"), rates(f"httpx-{kind}")
        paired = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
        growth = rss(f"client-{kind}")
        lines.append(
            f"| {kind} | {statistics.median(ours):.0f} ({max(ours):.0f}) | {statistics.median(bare):.0f} "
            f"({max(bare):.0f}) | {paired:.2f} {'pass' if paired >= 0.90 else 'FAIL'} | {max(ours) / max(bare):.2f} "
            f"| {cpu(f'client-{kind}'):.2f} / {cpu(f'httpx-{kind}'):.2f} "
            f"| {growth:.1f} MB {'pass' if growth <= 64 else 'FAIL'} (bare httpx: {rss(f'httpx-{kind}'):.1f} MB) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
