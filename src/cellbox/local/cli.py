"""`cellbox serve`: the argparse surface of the local server.

`add_serve_parser(subparsers)` registers the subcommand on the top-level `cellbox` command and
`run_serve(args)` runs it; `python -m cellbox.local` runs the same parser on its own.
"""

from __future__ import annotations

import argparse

from .options import add_arguments, from_namespace
from .server import serve


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `serve` on an argparse subparsers object; the parser's default `func` is run_serve."""
    parser = subparsers.add_parser(
        "serve",
        help="run the local sandbox server (the default backend)",
        description="Run the embedded local sandbox server: the Containers API under /v1 with real sandboxes.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    return serve(from_namespace(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellbox.local", description="Run the local sandbox server.")
    add_arguments(parser)
    return run_serve(parser.parse_args(argv))
