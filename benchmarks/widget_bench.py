"""The live views' cost, measured against the static ones side by side in one run.

    .venv/bin/python benchmarks/widget_bench.py                          # everything (about two minutes)
    .venv/bin/python benchmarks/widget_bench.py --base-src OLD/src       # `%%container pass` before/after too
    .venv/bin/python benchmarks/widget_bench.py --quick

1. A cell whose run leaves 200 artifacts (50 CSV tables, 50 text files, 50 PNG images, 50 other files), shown as
   the widget gallery vs the static gallery (`CELLBOX_WIDGETS=0`, as in a kernel without ipywidgets): the cell's
   time in a real kernel, p50 of interleaved rounds (target <= 1.25x), and what reaches the frontend (bytes of
   iopub messages: display bundles and widget messages).
2. `%%container pass` vs a raw execute of `pass`, in the kernel with widgets (the bar: <= 2.5x, as
   notebook_bench.py's), and with `--base-src` the same cell with cellbox from another checkout, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from cellbox.local.testing import running_server
from notebook_bench import Row, kernel

ARTIFACTS = """%%container
import os, pandas as pd, matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
os.makedirs("many", exist_ok=True)
for i in range(50):
    pd.DataFrame({"a": range(i, i + 40), "b": [f"row {j}" for j in range(40)]}).to_csv(f"many/t{i:02}.csv", index=False)
    open(f"many/n{i:02}.txt", "w").write("\\n".join(f"line {j} of {i}" for j in range(30)))
    open(f"many/b{i:02}.bin", "wb").write(os.urandom(2000))
figure = plt.figure(figsize=(2, 2))
plt.plot([1, 2, 3])
for i in range(50):
    figure.savefig(f"many/p{i:02}.png")
plt.close(figure)
"""


def execute(kc, code: str) -> tuple[float, int]:
    """Seconds the cell took and the bytes of what it sent the frontend (iopub contents)."""
    sent = 0

    def count(msg: dict) -> None:
        nonlocal sent
        sent += len(json.dumps(msg["content"], default=str))

    started = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=300, output_hook=count)
    elapsed = time.perf_counter() - started
    assert reply["content"]["status"] == "ok", reply["content"]
    return elapsed, sent


def env_for(server, src: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBOX_")}
    env.update(CELLBOX_BASE_URL=server.base_url, CELLBOX_API_KEY=server.token, CELLBOX_MODEL="cellbox-local")
    if src is not None:
        env["PYTHONPATH"] = src
    env.update(extra)
    return env


def bench_gallery(server, rounds: int) -> list[Row]:
    times: dict[str, list[float]] = {"widgets": [], "static": []}
    sizes: dict[str, int] = {}
    with (
        kernel(env_for(server)) as live,
        kernel(env_for(server, CELLBOX_WIDGETS="0")) as static,
    ):
        arms = [("widgets", live), ("static", static)]
        for name, kc in arms:
            execute(kc, f"%load_ext cellbox\n%container new bench-gallery-{name}")
            execute(kc, ARTIFACTS)  # warm: imports, the runtime, matplotlib in the container
        for i in range(rounds):
            for name, kc in arms if i % 2 else arms[::-1]:
                seconds, sent = execute(kc, ARTIFACTS)
                times[name].append(seconds)
                sizes[name] = sent
        for name, kc in arms:
            execute(kc, f"%container delete bench-gallery-{name}")
    a, b = statistics.median(times["widgets"]), statistics.median(times["static"])
    return [
        Row.timed(
            f"a cell leaving 200 artifacts: widget gallery vs static gallery (p50 of {rounds}, interleaved)",
            a,
            b,
            "<= 1.25x",
            a / b <= 1.25,
        ),
        Row(
            "what the cell sends the frontend (iopub), widget gallery vs static",
            f"{sizes['widgets'] / 1e6:.2f} MB",
            f"{sizes['static'] / 1e6:.2f} MB",
            sizes["widgets"] / sizes["static"],
            "(first page only: ten files)",
            True,
        ),
    ]


def bench_pass(server, rounds: int, base_src: str | None) -> list[Row]:
    arms = {"widgets": env_for(server), "raw": env_for(server)}
    if base_src:
        arms["before"] = env_for(server, base_src)
    times: dict[str, list[float]] = {name: [] for name in arms}
    kernels = {}
    from contextlib import ExitStack

    with ExitStack() as stack:
        for name, env in arms.items():
            kernels[name] = stack.enter_context(kernel(env))
        code = {name: "pass" if name == "raw" else "%%container\npass" for name in arms}
        for name, kc in kernels.items():
            if name != "raw":
                execute(kc, f"%load_ext cellbox\n%container new bench-pass-{name}")
            for _ in range(5):
                execute(kc, code[name])
        order = list(kernels.items())
        for i in range(rounds):
            for name, kc in order if i % 2 else order[::-1]:
                times[name].append(execute(kc, code[name])[0])
        for name, kc in kernels.items():
            if name != "raw":
                execute(kc, f"%container delete bench-pass-{name}")
    median = {name: statistics.median(seconds) for name, seconds in times.items()}
    rows = [
        Row.timed(
            f"`%%container pass` p50 (widgets installed) vs raw execute of `pass` ({rounds} each, interleaved)",
            median["widgets"],
            median["raw"],
            "<= 2.5x",
            median["widgets"] / median["raw"] <= 2.5,
        )
    ]
    if base_src:
        rows.append(
            Row.timed(
                "`%%container pass` p50, this cellbox vs --base-src (same rounds)",
                median["widgets"],
                median["before"],
                "<= 1.05x",
                median["widgets"] / median["before"] <= 1.05,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--base-src", help="another checkout's src folder, for `%%container pass` before/after")
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    with running_server(Path(os.environ.get("TMPDIR", "/tmp")) / f"widget-bench-{os.getpid()}") as server:
        rows = bench_gallery(server, rounds)
        rows += bench_pass(server, 10 if args.quick else 60, args.base_src)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()}\n"
    )
    print("| measurement | cellbox | baseline | ratio | target | |\n|---|---|---|---|---|---|")
    for row in rows:
        verdict = "pass" if row.ok else "FAIL"
        print(f"| {row.what} | {row.cellbox} | {row.baseline} | {row.ratio:.2f} | {row.target} | {verdict} |")
    sys.exit(0 if all(row.ok for row in rows) else 1)


if __name__ == "__main__":
    main()
