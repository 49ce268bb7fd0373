"""What the artifact gallery's previews cost, bounded (this cellbox) vs unbounded (an older one), on ordinary files
and hostile ones.

    .venv/bin/python benchmarks/preview_bench.py --base-src OLD/src             # 7 rounds
    .venv/bin/python benchmarks/preview_bench.py --base-src OLD/src --quick     # 3

`OLD` is a checkout of cellbox from before the previews were bounded (`git archive 06a3832^ src | tar -x -C OLD`).
Each round runs both arms in fresh processes, one after the other (their order alternating), on the same files:
a process per file draws its gallery (`ArtifactGallery._repr_html_`, the file's bytes already in memory, so only
the preview is timed) `--reps` times and reports the median wall and CPU time, and its peak RSS growth over the
drawings. The tables give the median over rounds, per file, and the ratios bounded / unbounded: first for ordinary
files, then (drawn once a round) for hostile ones as a container could leave them. CPU time is the steadier figure
on a shared host.

Results are printed as a Markdown table; benchmarks/README.md keeps the latest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


def make_files(folder: Path) -> dict[str, Path]:
    """Tables as cells commonly leave them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)

    def sales(rows: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "region": rng.choice(["north", "south", "east", "west"], rows),
                "product": [f"item-{i % 997}" for i in range(rows)],
                "price": rng.random(rows) * 100,
                "qty": rng.integers(1, 50, rows),
                "when": pd.date_range("2024-01-01", periods=rows, freq="min"),
            }
        )

    files = {
        "small.csv (50 x 5)": ("small.csv", sales(50)),
        "sales.csv (6,000 x 5, 0.4 MB)": ("sales.csv", sales(6000)),
        "big.csv (200,000 x 5: its first MiB)": ("big.csv", sales(200_000)),
        "sales.parquet (6,000 x 5)": ("sales.parquet", sales(6000)),
        "big.parquet (1,000,000 x 5, 11 MB)": ("big.parquet", sales(1_000_000)),
        "wide.parquet (1,000 x 40)": ("wide.parquet", pd.DataFrame({f"c{i}": rng.random(1000) for i in range(40)})),
    }
    paths = {}
    for label, (name, frame) in files.items():
        path = folder / name
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)
        paths[label] = path
    return paths


def make_hostile(folder: Path) -> dict[str, Path]:
    """Files a container's code can leave to hurt the notebook that previews them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    bomb = pa.array(["a" * (64 << 20)])  # one 64 MiB entry per column, zstd: 2 kB each
    path = folder / "bomb.parquet"
    pq.write_table(pa.table({f"c{i}": bomb for i in range(4)}), path, compression="zstd")
    paths[f"dictionary bomb (4 x 64 MiB in {path.stat().st_size / 1000:.0f} kB)"] = path
    path = folder / "repeated.parquet"
    table = pa.table({"s": ["z" * (2 << 20)] * 1000})  # a 2 MiB entry every row repeats
    pq.write_table(table, path, compression="zstd", dictionary_pagesize_limit=8 << 20)
    paths[f"a 2 MiB entry in every row ({path.stat().st_size / 1000:.0f} kB)"] = path
    path = folder / "wide.csv"
    header = b",".join(b"c%d" % i for i in range(100_000)) + b"\n"
    path.write_bytes(header + (b"1," * 99_999 + b"1\n") * 2)
    paths["CSV of 100,000 columns (1 MB)"] = path
    return paths


ARM = """
import json, statistics, sys, time
import pandas, pyarrow, pyarrow.parquet
from cellbox.api import ContainerFile
try:
    from cellbox.notebook import views
    from cellbox.session.results import Artifact
except ImportError:  # cellbox before its modules were arranged in folders
    from cellbox import views
    from cellbox.results import Artifact


def peak():
    # This process's own peak resident set (VmHWM starts again at exec; ru_maxrss keeps the parent's at fork).
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


reps, files = int(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for label, path in files.items():
    data = open(path, "rb").read()
    record = ContainerFile(id="f", container_id="c", path="/mnt/data/" + path.rsplit("/", 1)[-1], bytes=len(data))
    gallery = views.ArtifactGallery([Artifact(record, lambda f, data=data: data, lambda f, target: target)])
    before = peak()
    times, cpu = [], []
    for _ in range(reps):
        started, used = time.perf_counter(), time.process_time()
        page = gallery._repr_html_()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    grown = peak() - before
    out[label] = {
        "median": statistics.median(times), "cpu": statistics.median(cpu), "grown": grown, "html": len(page)
    }
print(json.dumps(out))
"""


def run_arm(src: Path, reps: int, files: dict[str, Path]) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(src), "CELLBOX_INLINE_MAX": "0"}  # downloads aren't previews
    listing = json.dumps({label: str(path) for label, path in files.items()})
    done = subprocess.run(
        [sys.executable, "-c", ARM, str(reps), listing], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, dict[str, float]] = json.loads(done.stdout.splitlines()[-1])
    return result


def table(got: dict[str, list[dict[str, dict[str, float]]]], files: dict[str, Path]) -> None:
    print(
        "| file | bounded | unbounded | ratio | CPU, bounded / unbounded | ratio "
        "| peak RSS growth, bounded / unbounded | HTML, bounded / unbounded |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label in files:

        def median(arm: str, key: str, label: str = label) -> float:
            return statistics.median(run[label][key] for run in got[arm])

        now, before = median("now", "median"), median("before", "median")
        cpu_now, cpu_before = median("now", "cpu"), median("before", "cpu")
        cpu = f"{cpu_now * 1000:.2f} / {cpu_before * 1000:.2f} ms | {cpu_now / cpu_before:.2f}"
        grown = f"{median('now', 'grown') / 2**20:.1f} / {median('before', 'grown') / 2**20:.1f} MiB"
        sizes = f"{median('now', 'html') / 1000:,.1f} / {median('before', 'html') / 1000:,.1f} kB"
        wall = f"{now * 1000:.2f} ms | {before * 1000:.2f} ms | {now / before:.2f}"
        print(f"| {label} | {wall} | {cpu} | {grown} | {sizes} |")
    print()


def compare(base: Path, files: dict[str, Path], rounds: int, reps: int) -> dict[str, list[dict[str, dict[str, float]]]]:
    got: dict[str, list[dict[str, dict[str, float]]]] = {"now": [], "before": []}
    for r in range(rounds):
        arms = [("now", SRC), ("before", base)]
        for name, src in arms if r % 2 == 0 else arms[::-1]:
            # a process per file: its peak RSS is that file's alone
            got[name].append(
                {k: v for label, path in files.items() for k, v in run_arm(src, reps, {label: path}).items()}
            )
    return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", type=Path, required=True, help="src/ of cellbox before the bounds")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(Path(folder))
        hostile = make_hostile(Path(folder))
        print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {rounds} rounds\n")
        table(compare(args.base_src, files, rounds, args.reps), files)
        table(compare(args.base_src, hostile, min(rounds, 3), 1), hostile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
