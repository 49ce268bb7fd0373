"""What carrying any value pandas holds costs the ordinary path, against cellbox before it, side by side in one run.

    .venv/bin/python benchmarks/values_bench.py --base-src /path/to/older/checkout/src [--rounds 30]

1. In process: writing a plain numeric frame as `-i` writes it (fingerprint, then Parquet) with this checkout's
   values module vs the base's, interleaved; and a frame of the same size whose one object column mixes ints,
   strings and None (which the base can't write at all) against the plain one.
2. In real kernels against one local server: `%%container pass`, and a cell that takes a 1,000,000 x 4 numeric
   frame in and brings it back changed (`-i df -o df`, so each round pushes and reads it anew), with this checkout
   vs with `--base-src` (its `src` folder first on the kernel's path), interleaved, a raw execute of `pass` beside.

Results are printed as a Markdown table; benchmarks/README.md keeps the latest.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from cellbox.local.testing import running_server
from cellbox.runtime import values
from cellbox.session import frames
from notebook_bench import execute, kernel

ROWS = 1_000_000
MAKE = (
    "import numpy as np, pandas as pd\n"
    f"df = pd.DataFrame({{c: np.random.default_rng(0).normal(size={ROWS}) for c in 'abcd'}})"
)


def module_at(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def paired(arms: dict[str, Callable[[], Any]], rounds: int, warm: int = 2) -> dict[str, float]:
    """The median seconds of each arm, run in turns (the order flipped every round)."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    order = list(arms.items())
    for i in range(rounds + warm):
        for name, fn in order if i % 2 else order[::-1]:
            started = time.perf_counter()
            fn()
            if i >= warm:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def bench_write(base_src: Path, rounds: int) -> list[str]:
    base = module_at(base_src / "cellbox" / "runtime" / "values.py", "base_values")
    rng = np.random.default_rng(0)
    plain = pd.DataFrame({c: rng.normal(size=ROWS) for c in "abcd"})
    dirty = plain.copy()
    dirty["d"] = pd.Series([101, "A7", None, 2.5] * (ROWS // 4), dtype=object)
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-") as tmp:

        def write(module: Any, frame: pd.DataFrame) -> Callable[[], Any]:
            return lambda: module.write_frame(frame, f"{tmp}/f", "dataframe")

        got = paired({"now": write(values, plain), "base": write(base, plain)}, rounds)
        ready = paired({"ready": lambda: values.arrow_ready(plain)}, 200)["ready"]
        odd = paired(
            {
                "dirty": lambda: (frames.fingerprint(dirty), values.write_frame(dirty, f"{tmp}/f", "dataframe")),
                "plain": lambda: (frames.fingerprint(plain), values.write_frame(plain, f"{tmp}/f", "dataframe")),
            },
            max(3, rounds // 5),
        )
    return [
        f"| `write_frame` of a {ROWS:,} x 4 numeric frame, now vs base (in process, {rounds} paired rounds) | "
        f"{got['now'] * 1e3:.1f} ms | {got['base'] * 1e3:.1f} ms | {got['now'] / got['base']:.2f} | <= 1.05 |",
        f"| of which `arrow_ready` finding nothing to change (also paid once by the fingerprint) | "
        f"{ready * 1e6:.0f} µs | | | |",
        f"| fingerprint + write, one column of mixed objects (ints, strings, None, floats) vs all numbers | "
        f"{odd['dirty'] * 1e3:.0f} ms | {odd['plain'] * 1e3:.1f} ms | {odd['dirty'] / odd['plain']:.1f} | |",
    ]


def bench_cells(base_src: Path, rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-") as tmp, running_server(Path(tmp), pool_size=3) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBOX_")}
        env.update(CELLBOX_BASE_URL=server.base_url, CELLBOX_API_KEY=server.token, CELLBOX_MODEL="cellbox-local")
        before = {**env, "PYTHONPATH": str(base_src)}
        with kernel(env) as now, kernel(before) as then, kernel(env) as raw:
            execute(then, f"import cellbox\nassert cellbox.__file__.startswith({str(base_src)!r})")
            for name, kc in (("now", now), ("base", then)):
                execute(kc, f"%load_ext cellbox\n{MAKE}\n%container new bench-{name}")
            rows = []
            for label, code in (
                ("`%%container pass`", "%%container\npass"),
                (f"`%%container -i df -o df` of a {ROWS:,} x 4 numeric frame", "%%container -i df -o df\ndf['a'] += 1"),
            ):
                arms = {"now": lambda c=code: execute(now, c), "base": lambda c=code: execute(then, c)}
                if code.endswith("pass"):
                    arms["raw"] = lambda: execute(raw, "pass")
                got = paired(arms, rounds if code.endswith("pass") else max(5, rounds // 3), warm=3)
                row = (
                    f"| {label} p50, now vs base (interleaved) | {got['now'] * 1e3:.1f} ms | {got['base'] * 1e3:.1f} ms"
                    f" | {got['now'] / got['base']:.2f} | <= 1.05 |"
                )
                rows.append(row)
                if "raw" in got:
                    rows.append(
                        f"| `%%container pass` p50 vs a raw execute of `pass`, now / base | "
                        f"{got['now'] / got['raw']:.2f}x / {got['base'] / got['raw']:.2f}x | {got['raw'] * 1e3:.2f} ms"
                        " | | <= 2.5x |"
                    )
            for name, kc in (("now", now), ("base", then)):
                execute(kc, f"%container delete bench-{name}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", type=Path, required=True, help="the src folder of cellbox before this change")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    base = args.base_src.resolve()
    rows = bench_write(base, args.rounds) + bench_cells(base, args.rounds)
    load = os.getloadavg()[0]
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, load {load:.1f}\n"
    )
    print("| measurement | cellbox | base | ratio | target |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
