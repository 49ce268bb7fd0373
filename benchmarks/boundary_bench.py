"""What checking a container's output costs per cell, against its baselines side by side in one run.

    .venv/bin/python benchmarks/boundary_bench.py --base-src /path/to/older/checkout/src [--rounds 60]

1. In process: `Result.accept` of realistic records (a cell of `pass`; a 20-row frame's HTML with a figure; ten
   frames' HTML with a hundred printed lines) after the bounded parse, vs `json.loads` of the same bytes alone
   (the least any reader of the record pays).
2. In real kernels against one local server: `%%container pass` with this checkout vs with `--base-src` (cellbox
   before the boundary: its `src` folder put first on the kernel's path), interleaved, and a raw execute of `pass`
   beside them (the ratio the notebook benchmark's 2.5x target is about).

Results are printed as a Markdown table; benchmarks/README.md keeps the latest.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellbox.boundary import DisplayPolicy
from cellbox.boundary import record as record_bounds
from cellbox.local.testing import running_server
from cellbox.session import protocol
from cellbox.session.result_record import Result
from notebook_bench import execute, kernel


def _record(request: protocol.Request, events: list[dict[str, Any]], value: dict[str, Any] | None) -> bytes:
    return json.dumps(
        {
            "run_id": request.run_id,
            "ok": True,
            "error": None,
            "value": value,
            "outputs": {},
            "figures": [],
            "changed": [],
            "sizes": {},
            "inline": {},
            "notes": [],
            "events": events,
            "state_lost": False,
            "restored": [],
            "duration": 0.001,
            "runtime_version": 4,
        }
    ).encode()


def records() -> dict[str, tuple[protocol.Request, bytes]]:
    import pandas as pd

    frame = pd.DataFrame({"region": [f"r{i}" for i in range(20)], "total": [i * 1.5 for i in range(20)]})
    table = {"text/html": frame.to_html(), "text/plain": frame.to_string()}
    png = base64.b64encode(os.urandom(40_000)).decode()
    made = {}
    request = protocol.Request.new("pass")
    made["pass"] = (request, _record(request, [], None))
    request = protocol.Request.new("frame")
    figure = {"type": "display_data", "data": {"image/png": png, "text/plain": "<Figure>"}, "metadata": {}}
    made["a 20-row frame and a figure"] = (
        request,
        _record(request, [figure, {"type": "execute_result"}], {"kind": "repr", "bundle": {"data": table}}),
    )
    request = protocol.Request.new("many")
    lines = [{"type": "stream", "name": "stdout", "text": f"line {i}\n"} for i in range(100)]
    shown = [{"type": "display_data", "data": table, "metadata": {}} for _ in range(10)]
    made["ten frames' HTML, 100 printed lines"] = (request, _record(request, lines + shown, None))
    return made


def per_call(fn: Callable[[], Any], rounds: int = 300) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_accept() -> list[str]:
    rows = []
    for name, (request, raw) in records().items():

        def accept(request: protocol.Request = request, raw: bytes = raw) -> Result:
            return Result.accept(record_bounds.parse(raw), request, DisplayPolicy())

        accept()  # the schema is compiled once, at the first record
        ours = per_call(accept)
        theirs = per_call(lambda raw=raw: json.loads(raw))
        rows.append(
            f"| `Result.accept` of a record: {name} ({len(raw) / 1e3:,.1f} kB) | {ours * 1e6:,.0f} µs | "
            f"{theirs * 1e6:,.0f} µs `json.loads` alone | {ours / theirs:.1f} | |"
        )
    return rows


def bench_pass(base_src: Path, rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-") as tmp, running_server(Path(tmp), pool_size=3) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBOX_")}
        env.update(CELLBOX_BASE_URL=server.base_url, CELLBOX_API_KEY=server.token, CELLBOX_MODEL="cellbox-local")
        before = {**env, "PYTHONPATH": str(base_src)}
        with kernel(env) as now, kernel(before) as then, kernel(env) as raw:
            arms = [("now", now, "%%container\npass"), ("before", then, "%%container\npass"), ("raw", raw, "pass")]
            execute(now, "%load_ext cellbox\n%container new bench-now")
            execute(then, "%load_ext cellbox\n%container new bench-before")
            execute(then, f"import cellbox\nassert cellbox.__file__.startswith({str(base_src)!r})")
            times: dict[str, list[float]] = {name: [] for name, _, _ in arms}
            for i in range(rounds + 5):
                for name, kc, code in arms if i % 2 else arms[::-1]:
                    took = execute(kc, code)
                    if i >= 5:  # the first rounds warm imports, connections and the runtime upload
                        times[name].append(took)
            execute(now, "%container delete bench-now")
            execute(then, "%container delete bench-before")
    now_t, before_t, raw_t = (statistics.median(times[n]) for n in ("now", "before", "raw"))
    return [
        f"| `%%container pass` p50, with the boundary vs without ({rounds} interleaved rounds) | "
        f"{now_t * 1e3:.2f} ms | {before_t * 1e3:.2f} ms | {now_t / before_t:.2f} | <= 1.05 |",
        f"| `%%container pass` p50 vs a raw execute of `pass`, with the boundary / without | "
        f"{now_t / raw_t:.2f}x / {before_t / raw_t:.2f}x | {raw_t * 1e3:.2f} ms | | <= 2.5x |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", type=Path, help="the src folder of cellbox before the boundary")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    rows = bench_accept()
    if args.base_src:
        rows += bench_pass(args.base_src.resolve(), args.rounds)
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    print("| measurement | cellbox | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
