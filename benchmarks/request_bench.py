"""Requests per cell, and per minute of a long cell, against a local server: this checkout beside an earlier
commit (the baseline), each in a process of its own on the same server, cells interleaved.

    python benchmarks/request_bench.py --before <commit> [--long 10,30,60]

For each: five `print(1)` cells (requests per cell: to the container endpoints, which services count against a
per-organisation limit, OpenAI's 100 a minute; to /responses; billed responses), then one cell printing a line
every quarter second for each duration in `--long`, its output watched live as a notebook does (container
requests in all, live reads, and their rate a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from baseline import checkout
from cellbox.local.testing import running_server

CLIENT = r"""
import json, os, sys, time
import httpx
import cellbox
from cellbox.api import Client
from cellbox.session.protocol import LiveOutput

base_url, token, long = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split(",")]
sent = []
http = httpx.Client(timeout=120, event_hooks={"request": [lambda r: sent.append((r.method, r.url.path))]})
client = Client(base_url, api_key=token, http_client=http)

def counts(since):
    part = sent[since:]
    return {
        "containers": sum(1 for _, p in part if p.startswith("/v1/containers")),
        "reads": sum(1 for m, p in part if m == "GET" and "/files/" in p and p.endswith("/content")),
        "responses": sum(1 for _, p in part if p.startswith("/v1/responses")),
        "billed": sum(1 for m, p in part if m == "POST" and p == "/v1/responses"),
    }

out = {}
with cellbox.Sandbox.create(name=f"bench-{os.getpid()}", client=client) as sandbox:
    sandbox.run("0")  # the runtime uploaded once, as in any session
    start = len(sent)
    for _ in range(5):
        sandbox.run("print(1)")
    out["print"] = {k: v / 5 for k, v in counts(start).items()}
    for seconds in long:
        start, began = len(sent), time.monotonic()
        n = int(seconds / 0.25)
        sandbox.run(
            f"import time\nfor i in range({n}):\n    print(i, flush=True)\n    time.sleep(0.25)",
            live=LiveOutput(lambda event: None),
        )
        took = time.monotonic() - began
        found = counts(start)
        found["seconds"] = took
        found["containers_per_minute"] = found["containers"] * 60 / took
        out[f"long {seconds:g}"] = found
    sandbox.delete()
print(json.dumps(out))
"""


def _measure(server, src: Path | None, long: str) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    env = {k: v for k, v in env.items() if not k.startswith("CELLBOX_")} | {"CELLBOX_MODEL": "cellbox-local"}
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, server.base_url, server.token, long],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="the baseline commit")
    parser.add_argument("--long", default="10,30,60", help="seconds of the long cells, comma separated")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cellbox-request-bench-") as tmp,
        checkout(args.before, Path(tmp) / "b") as src,
        running_server(Path(tmp) / "data", pool_size=1) as server,
    ):
        before = _measure(server, src, args.long)
        after = _measure(server, None, args.long)
    print("| per cell | before | after |")
    print("|---|---|---|")
    for key, label in (
        ("containers", "container-endpoint requests"),
        ("responses", "/responses requests"),
        ("billed", "billed responses"),
    ):
        print(f"| `print(1)`: {label} | {before['print'][key]:.1f} | {after['print'][key]:.1f} |")
    print()
    print("| long printing cell, live output watched | before | after | ratio |")
    print("|---|---|---|---|")
    for seconds in args.long.split(","):
        b, a = before[f"long {float(seconds):g}"], after[f"long {float(seconds):g}"]
        for key, label in (("reads", "live reads"), ("containers", "container requests in all")):
            print(f"| {seconds} s: {label} | {b[key]} | {a[key]} | {a[key] / max(1, b[key]):.2f}x |")
        print(
            f"| {seconds} s: container requests a minute | {b['containers_per_minute']:.0f} | "
            f"{a['containers_per_minute']:.0f} | {a['containers_per_minute'] / b['containers_per_minute']:.2f}x |"
        )


if __name__ == "__main__":
    main()
