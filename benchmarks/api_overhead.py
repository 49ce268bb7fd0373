"""Per-request overhead of `cellbox.api`: `containers.retrieve` against a bare `httpx.Client.get` of the same URL.

    .venv/bin/python benchmarks/api_overhead.py                # 5000 requests each
    .venv/bin/python benchmarks/api_overhead.py --requests 1000

The fake Containers API runs in its own process; both sides run in this one, interleaved request by request
(which goes first alternates), over one keep-alive connection each. The bare side only reads the body; the
client also checks the status, parses the JSON and builds the `Container` record. Target: p50 ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import httpx

from api_common import TOKEN, machine, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per side (default 5000)")
    args = parser.parse_args()

    from cellbox.api import Client

    with (
        served() as base_url,
        Client(base_url=base_url, api_key=TOKEN) as client,
        httpx.Client(timeout=60) as bare,
    ):
        container = client.containers.create("bench", memory_limit="4g").id
        url = f"{base_url}/containers/{container}"
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def ours() -> None:
            client.containers.retrieve(container)

        def theirs() -> None:
            bare.get(url, headers=headers).raise_for_status()

        for _ in range(200):  # warm up both
            ours()
            theirs()
        times: dict[str, list[float]] = {"cellbox": [], "httpx": []}
        gc.collect()
        for i in range(args.requests):
            order = (("cellbox", ours), ("httpx", theirs)) if i % 2 == 0 else (("httpx", theirs), ("cellbox", ours))
            for name, call in order:
                started = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - started)

    def q(name: str, p: float) -> float:
        return statistics.quantiles(times[name], n=100)[p - 1] * 1e6

    p50 = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    ratio = p50["cellbox"] / p50["httpx"]
    print(f"{args.requests} requests each, interleaved; {machine()}")
    print()
    print("| request | cellbox p50 µs | bare httpx p50 µs | ratio (<= 1.2) | cellbox p90 µs | httpx p90 µs |")
    print("|---|---|---|---|---|---|")
    print(
        f"| containers.retrieve vs httpx GET | {p50['cellbox']:.0f} | {p50['httpx']:.0f} | "
        f"{ratio:.2f} {'pass' if ratio <= 1.2 else 'FAIL'} | {q('cellbox', 90):.0f} | {q('httpx', 90):.0f} |"
    )


if __name__ == "__main__":
    main()
