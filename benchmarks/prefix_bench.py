"""What showing the interpreter through overlays costs (jail/overlays.py): a server of this checkout and one of an
earlier commit that bound the interpreter's folders themselves, side by side, creates and first cells interleaved.

    sudo python benchmarks/prefix_bench.py --before <commit> [--rounds 20]

Per round and server: create a container (no warm pool: a cold kernel start, whose imports all go through the
overlays), then its first cell importing what data cells import (numpy, pandas, matplotlib), then a second
cell that reads 2,000 files of the standard library (lookups in the overlay, warm).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from baseline import checkout, cold_starts
from cellbox.local.testing import running_server

FIRST_CELL = "import numpy, pandas, matplotlib.pyplot"
WALK_CELL = """
import os, sysconfig
n = 0
for folder, _, names in os.walk(sysconfig.get_paths()["stdlib"]):
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            f.read(64)
        n += 1
        if n == 2000:
            break
    if n == 2000:
        break
"""


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@contextlib.contextmanager
def _source(src: Path | None) -> Iterator[None]:
    """Servers started inside run the package from `src` (an earlier commit's), or this checkout's."""
    before = os.environ.pop("PYTHONPATH", None)
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="a commit whose jail bound the interpreter's folders")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cellbox-prefix-bench-") as tmp,
        checkout(args.before, Path(tmp) / "b") as src,
        _source(src),
        running_server(Path(tmp) / "binds", pool_size=0) as binds,
        _source(None),
        running_server(Path(tmp) / "overlays", pool_size=0) as overlays,
    ):
        servers = {"overlays": overlays, "binds": binds}
        assert "prefixes" in os.listdir(overlays.data_dir) and "prefixes" not in os.listdir(binds.data_dir)
        times = cold_starts(servers, args.rounds, {FIRST_CELL: FIRST_CELL, "read 2,000 stdlib files": WALK_CELL})
    print("| step (median, p95) | binds (before) | overlays | ratio of medians |")
    print("|---|---|---|---|")
    for step in ("create (cold kernel)", FIRST_CELL, "read 2,000 stdlib files"):
        b, o = times["binds"][step], times["overlays"][step]
        ratio = statistics.median(o) / statistics.median(b)
        print(
            f"| {step} | {statistics.median(b):.1f} ms, {_p(b, 0.95):.1f} ms | "
            f"{statistics.median(o):.1f} ms, {_p(o, 0.95):.1f} ms | {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
