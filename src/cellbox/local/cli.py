"""`cellbox serve`: the argparse surface of the local server.

`add_serve_parser(subparsers)` registers the subcommand on the top-level `cellbox` command and
`run_serve(args)` runs it; `python -m cellbox.local` runs the same parser on its own.
"""

from __future__ import annotations

import argparse
import sys

from ..common import extras, isolation
from .options import add_arguments, from_namespace

LIMITS = """limits on each container (README: "Security model"):
  memory        the container's memory_limit (1g, 4g, 16g, 64g; more than the host has is refused) covers
                every process it starts and what it writes to /tmp and /dev/shm (a control group where the
                host allows; the server says at start when it doesn't)
  processes     --max-processes; CPU: --cpu-limit; disk: --disk-limit (507 for uploads past it)
  time          --exec-timeout; output: 4 MiB of text and 64 images (16 MiB) per run
  containers    --max-containers at once (429 past it); uploads: --max-upload-mb
  isolation     bubblewrap: only system libraries, /etc and Python visible, no network, nobody (when the
                server is root), a seccomp filter; the server keeps 64 MiB of disk back for itself
"""


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `serve` on an argparse subparsers object; the parser's default `func` is run_serve."""
    parser = subparsers.add_parser(
        "serve",
        help="run the local sandbox server (the default backend)",
        description="Run the embedded local sandbox server: the Containers API under /v1 with real sandboxes.",
        epilog=LIMITS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    options = from_namespace(args)
    unable = None if options.unsafe_no_isolation else isolation.missing()
    if unable is not None:  # said before the server's modules are imported: some exist only on POSIX systems
        print(f"cellbox serve: {isolation.refusal(unable)}", file=sys.stderr)
        return 2
    # The server's packages are an extra: `cellbox` without it still lists, configures and talks to other backends.
    absent = extras.missing("local")
    if absent:
        needs = ", ".join(absent)
        print(
            f"cellbox serve: the local server needs {needs}, not installed here: {extras.install_line('local')}",
            file=sys.stderr,
        )
        return 1
    from .server import serve

    return serve(options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cellbox.local",
        description="Run the local sandbox server.",
        epilog=LIMITS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run_serve(parser.parse_args(argv))
