"""The sandbox environment: building it (a server's first start), and a cold container start in it vs in the
server's own interpreter as before it existed.

    python benchmarks/sandbox_env_bench.py [--rounds 10] [--cold-download]

1. first start: the environment built from the lock into an empty folder, uv's cache warm (what a second checkout
   or a changed lock costs), and with --cold-download also from an empty uv cache (every wheel from PyPI);
2. a server's start once it is built (finding it: reading its manifest);
3. per round, each server without a warm pool: create a container (a cold kernel start), its first cell `pass`,
   then `import numpy, pandas, matplotlib.pyplot`; rounds interleaved so both servers see the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from baseline import cold_starts
from cellbox.local import sandbox_env
from cellbox.local.testing import running_server

DATA_CELL = "import numpy, pandas, matplotlib.pyplot"


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _build(root: Path, uv_cache: Path | None) -> float:
    before = os.environ.get("UV_CACHE_DIR")
    if uv_cache is not None:
        os.environ["UV_CACHE_DIR"] = str(uv_cache)
    try:
        started = time.perf_counter()
        sandbox_env.ensure(sandbox_env.Spec(root=root), say=lambda line: print(f"  {line}"))
        return time.perf_counter() - started
    finally:
        if uv_cache is not None:
            os.environ.pop("UV_CACHE_DIR")
            if before is not None:
                os.environ["UV_CACHE_DIR"] = before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cold-download", action="store_true", help="also build with an empty uv cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellbox-env-bench-") as tmp:
        work = Path(tmp)
        print("| first start | seconds |")
        print("|---|---|")
        if args.cold_download:
            seconds = _build(work / "cold", work / "uv-cache")
            print(f"| environment built, empty uv cache (downloads from PyPI) | {seconds:.1f} s |")
        seconds = _build(work / "warm", None)
        print(f"| environment built, uv's cache warm | {seconds:.1f} s |")
        started = time.perf_counter()
        found = sandbox_env.ensure(sandbox_env.Spec(root=work / "warm"))
        print(f"| environment found at a later start | {(time.perf_counter() - started) * 1000:.1f} ms |")
        print(f"\n{len(found.distributions)} packages, {_size(found.folder) / 2**20:.0f} MiB on disk\n")
        with (
            running_server(work / "own", pool_size=0, own_interpreter=True) as own,
            running_server(work / "env", pool_size=0, sandbox_env_dir=work / "warm") as env,
        ):
            cells = {"first cell `pass`": "pass", f"first data cell `{DATA_CELL}`": DATA_CELL}
            times = cold_starts({"own interpreter (before)": own, "sandbox environment": env}, args.rounds, cells)
    steps = ("create (cold kernel)", "first cell `pass`", f"first data cell `{DATA_CELL}`")
    print(f"| step ({args.rounds} each, median / p95) | own interpreter (before) | sandbox environment | ratio |")
    print("|---|---|---|---|")
    for step in steps:
        b, e = times["own interpreter (before)"][step], times["sandbox environment"][step]
        ratio = statistics.median(e) / statistics.median(b)
        print(
            f"| {step} | {statistics.median(b):.1f} / {_p(b, 0.95):.1f} ms | "
            f"{statistics.median(e):.1f} / {_p(e, 0.95):.1f} ms | {ratio:.2f}x |"
        )


def _size(folder: Path) -> int:
    seen, total = set(), 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if path.is_file() and not path.is_symlink() and info.st_ino not in seen:
            seen.add(info.st_ino)
            total += info.st_size
    return total


if __name__ == "__main__":
    main()
