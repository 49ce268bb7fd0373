"""Run every benchmark, one after another (`make bench`). Each prints its own table; benchmarks/README.md keeps
the latest figures. `--quick` passes smaller sizes where a benchmark has them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

BENCHMARKS = [
    ("api_transfer.py", ["--size", "64M", "--rounds", "2"]),
    ("api_overhead.py", ["--requests", "1000"]),
    ("local_bench.py", ["--size-mb", "64", "--rounds", "10", "--out", "/dev/null"]),
    ("notebook_bench.py", ["--quick"]),
    ("token_bench.py", ["--quick"]),
    ("widget_bench.py", ["--quick"]),
    ("pool_bench.py", ["--rows", "500000", "--rounds", "1", "--loop", "5000000", "--out", "/dev/null"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds")
    args = parser.parse_args()
    failed = 0
    for script, quick in BENCHMARKS:
        print(f"\n## {script}\n", flush=True)
        command = [sys.executable, str(HERE / script), *(quick if args.quick else [])]
        failed += subprocess.run(command, cwd=HERE.parent).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
