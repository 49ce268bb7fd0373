"""`cellbox serve`: the argparse surface of the local server.

`add_serve_parser(subparsers)` registers the subcommand on the top-level `cellbox` command and
`run_serve(args)` runs it; `python -m cellbox.local` runs the same parser on its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .server import Options, serve


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="port to bind; 0 picks a free one (default: 8765, or a free one if it is taken)"
    )
    parser.add_argument("--data-dir", type=Path, help="where containers and files are kept")
    parser.add_argument("--token", help="bearer token clients must send (default: a random one)")
    parser.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="run kernels as plain processes when bubblewrap sandboxes are not available",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="add this delay to every response")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="answer this share of requests (0 to 1) with a retryable 503"
    )
    parser.add_argument("--max-upload-mb", type=int, default=512, help="largest file upload (default: 512)")
    parser.add_argument("--pool-size", type=int, default=2, help="warm sandboxes kept ready (default: 2)")
    parser.add_argument("--access-log", action="store_true", help="log every request (method, path, status)")
    parser.add_argument("--exec-timeout", type=float, help="interrupt code running longer than this (seconds)")
    # For tests: how many seconds a minute of `expires_after` lasts, and where to write the endpoint file.
    parser.add_argument("--seconds-per-minute", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint-file", type=Path, help=argparse.SUPPRESS)


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `serve` on an argparse subparsers object; the parser's default `func` is run_serve."""
    parser = subparsers.add_parser(
        "serve",
        help="run the local sandbox server (the default backend)",
        description="Run the embedded local sandbox server: the Containers API under /v1 with real sandboxes.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    return serve(
        Options(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            token=args.token,
            unsafe_no_isolation=args.unsafe_no_isolation,
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            max_upload_mb=args.max_upload_mb,
            pool_size=args.pool_size,
            exec_timeout=args.exec_timeout,
            access_log=args.access_log,
            seconds_per_minute=args.seconds_per_minute,
            endpoint_file=args.endpoint_file,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellbox.local", description="Run the local sandbox server.")
    _add_arguments(parser)
    return run_serve(parser.parse_args(argv))
