"""What the model reads per cell, and what moving a cell's output out of its logs costs, side by side in one run.

    .venv/bin/python benchmarks/token_bench.py            # 20 timed rounds (about two minutes)
    .venv/bin/python benchmarks/token_bench.py --quick    # 8

Both arms run this cellbox in the same process against the same local server; "before" sets the knob that lets
the runtime print the result record into the call's logs up to 200,000 characters, as it did before the record
became a file (`Runner.log_limit`; "now" prints it only under 900).

1. Tokens the model reads per cell, as the local server bills them (`usage.input_tokens`: the prompt, the
   instructions and the call's logs, four characters a token), for `pass`, a cell printing 100 kB, one printing
   5 MB, a DataFrame as the last value and a figure (target: at most 1,000 each). Beside them the characters of
   the call's logs, and the tokens written (the call, and the local model's reply, which echoes the logs).
2. `%%container` printing 100 kB in a real kernel with the server at `--latency-ms 50`: now vs before,
   interleaved (target: p50 at most 1.3x).

Results are printed as Markdown tables; benchmarks/README.md keeps the latest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from cellbox.api import Client
from cellbox.api.config import load_settings
from cellbox.local.testing import RunningServer, running_server
from cellbox.session.results import Usage
from cellbox.session.sandbox import Sandbox
from notebook_bench import kernel

BEFORE = 200_000  # characters of the record the runtime printed into the logs before it became a file
TARGET_TOKENS = 1000
TARGET_RATIO = 1.3
LATENCY_MS = 50
CELLS = {
    "`pass`": "pass",
    "print 100 kB": "print('x' * 100_000)",
    "print 5 MB": "print('x' * 5_000_000)",
    "DataFrame value (1,000 x 3)": (
        "import pandas as pd\npd.DataFrame({'a': range(1000), 'b': [i / 7 for i in range(1000)], 'c': ['text'] * 1000})"
    ),
    "figure": "import matplotlib.pyplot as plt\nplt.plot(range(100), [i * i for i in range(100)])\nplt.title('x²')",
}
PRINT_100_KB = "%%container\nprint('x' * 100_000)"


class Logs(httpx.BaseTransport):
    """The real transport, keeping the characters of the loader's logs in the last finished response."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.last = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if "/responses" in request.url.path and request.method in ("GET", "POST") and response.status_code == 200:
            body = json.loads(response.read())
            if body.get("object") == "response" and body.get("status") == "completed":
                calls = [item for item in body["output"] if item["type"] == "code_interpreter_call"]
                self.last = sum(len(o.get("logs") or "") for call in calls for o in call.get("outputs") or [])
        return response


def client_for(server: RunningServer, transport: httpx.BaseTransport | None = None) -> Client:
    settings = dataclasses.replace(load_settings(base_url=server.base_url, api_key=server.token), model="cellbox-local")
    return Client(settings=settings, http_client=httpx.Client(transport=transport, timeout=120) if transport else None)


@dataclasses.dataclass
class Cost:
    usage: Usage
    logs: int  # characters of the loader's logs


def bench_tokens(server: RunningServer) -> list[tuple[str, Cost, Cost]]:
    """Each cell once in each arm: (cell, before, now)."""
    rows = []
    logs = Logs()
    with client_for(server, logs) as client:
        before, now = Sandbox.create("tokens-before", client=client), Sandbox.create("tokens-now", client=client)
        before.runner.log_limit = BEFORE
        try:
            for sandbox in (before, now):
                assert sandbox.run("pass").ok  # warm: the runtime's upload and first load are not a cell's cost
            for label, code in CELLS.items():
                costs, printed = [], []
                for sandbox in (before, now):
                    run = sandbox.run(code)
                    assert run.ok and run.usage is not None, (label, run.error)
                    costs.append(Cost(run.usage, logs.last))
                    printed.append(run.stdout)
                assert printed[0] == printed[1]  # the same cell, whichever way its output traveled
                rows.append((label, costs[0], costs[1]))
        finally:
            before.delete()
            now.delete()
    return rows


def execute(kc, code: str) -> tuple[float, int]:
    """Seconds the cell took and the characters it printed."""
    printed = [0]

    def count(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            printed[0] += len(msg["content"]["text"])

    started = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=120, output_hook=count)
    elapsed = time.perf_counter() - started
    assert reply["content"]["status"] == "ok", reply["content"]
    return elapsed, printed[0]


def bench_print(server: RunningServer, rounds: int) -> tuple[float, float]:
    """p50 seconds of `%%container` printing 100 kB: before, now."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBOX_")}
    env.update(CELLBOX_BASE_URL=server.base_url, CELLBOX_API_KEY=server.token, CELLBOX_MODEL="cellbox-local")
    knob = f"get_ipython().find_magic('container').__self__.current.runner.log_limit = {BEFORE}"
    with kernel(env) as old, kernel(env) as new:
        execute(old, f"%load_ext cellbox\n%container new print-before\n{knob}")
        execute(new, "%load_ext cellbox\n%container new print-now")
        for _ in range(3):  # warm both: imports, connections, the runtime upload
            execute(old, PRINT_100_KB)
            execute(new, PRINT_100_KB)
        times: dict[str, list[float]] = {"before": [], "now": []}
        for i in range(rounds):
            pair = [("before", old), ("now", new)]
            for name, kc in pair if i % 2 == 0 else reversed(pair):
                elapsed, printed = execute(kc, PRINT_100_KB)
                assert printed >= 100_001, printed  # the whole print reached the notebook
                times[name].append(elapsed)
        execute(old, "%container delete")
        execute(new, "%container delete")
    return statistics.median(times["before"]), statistics.median(times["now"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed rounds")
    args = parser.parse_args()
    rounds = 8 if args.quick else 20
    with (
        tempfile.TemporaryDirectory(prefix="cellbox-bench-") as tmp,
        running_server(Path(tmp) / "data", pool_size=2, latency_ms=LATENCY_MS) as server,
    ):
        tokens = bench_tokens(server)
        before, now = bench_print(server, rounds)
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    print(
        "| cell | tokens read, before | tokens read, now | logs (chars), before / now | tokens written, before / now "
        "| target | |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, old, new in tokens:
        ok = new.usage.input_tokens <= TARGET_TOKENS
        print(
            f"| {label} | {old.usage.input_tokens:,} | {new.usage.input_tokens:,} | {old.logs:,} / {new.logs:,} | "
            f"{old.usage.output_tokens:,} / {new.usage.output_tokens:,} | <= {TARGET_TOKENS:,} read | "
            f"{'pass' if ok else 'MISS'} |"
        )
    ratio = now / before
    print("\n| measurement | now | before | ratio | target | |")
    print("|---|---|---|---|---|---|")
    print(
        f"| `%%container` printing 100 kB, p50 of {rounds} interleaved, `--latency-ms {LATENCY_MS}` | "
        f"{now * 1e3:.0f} ms | {before * 1e3:.0f} ms | {ratio:.2f} | <= {TARGET_RATIO}x | "
        f"{'pass' if ratio <= TARGET_RATIO else 'MISS'} |"
    )


if __name__ == "__main__":
    main()
