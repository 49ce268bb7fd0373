"""The `cellbox` command: `serve`, `stop`, `ls`, `files`, `rm`, `config`, `doctor`.

Every failure ends as one line on stderr and a non-zero exit: no traceback, never a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._version import __version__
from .api import CellboxError, Client, Container, load_settings
from .api.config import configured_secrets
from .api.lookup import find_container
from .common import endpoint, paths, text
from .common.polling import Backoff
from .common.redact import redact

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _resolve(client: Client, id_or_name: str) -> Container:
    # A name shared by several containers is refused here: `rm` must never guess which one to delete.
    return find_container(client, id_or_name, unique=True)


def _print_json(records: Iterable[Any]) -> None:
    print(json.dumps([r.to_dict() for r in records], indent=2))


def cmd_ls(args: argparse.Namespace) -> int:
    with Client() as client:
        boxes = list(client.containers.list(name=args.name, order="desc"))
    if args.json:
        _print_json(boxes)
        return 0
    now = time.time()
    rows = [
        (b.id, b.name or "", b.status or "", b.memory_limit or "-", text.time_left(b, now), text.ago(b.created_at, now))
        for b in boxes
    ]
    print(text.table(("ID", "NAME", "STATUS", "MEMORY", "EXPIRES IN", "CREATED"), rows))
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    with Client() as client:
        box = _resolve(client, args.container)
        files = sorted(client.containers.files.list(box.id), key=lambda f: f.path or "")
    if args.json:
        _print_json(files)
        return 0
    now = time.time()
    rows = [(f.id, f.path or "", text.size(f.bytes), f.source or "", text.ago(f.created_at, now)) for f in files]
    print(text.table(("ID", "PATH", "SIZE", "SOURCE", "CREATED"), rows))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    failed = 0
    with Client() as client:
        for name in args.containers:
            try:
                box = _resolve(client, name)
                client.containers.delete(box.id)
            except CellboxError as exc:
                print(redact(f"cellbox rm: {name}: {exc}", configured_secrets()), file=sys.stderr)
                failed += 1
            else:
                print(f"deleted {box.id}" + (f" ({box.name})" if box.name else ""))
    return EXIT_ERROR if failed else 0


def cmd_config(args: argparse.Namespace) -> int:
    described = load_settings().describe()
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    sources = described.pop("sources")
    if described["base_url"] is None:
        described["base_url"] = "(none: start the local server with `cellbox serve`)"
    for key, value in described.items():
        if value is None:
            continue
        origin = sources.get(key)
        print(f"{key:<16} {value}" + (f"   [{origin}]" if origin else ""))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the configured backend end to end (`cellbox.doctor`); exit 1 unless every check passed."""
    from . import doctor

    checks = doctor.run(billed=not args.no_run)
    if args.json:
        print(json.dumps({"ok": doctor.passed(checks), "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        print(text.table(("CHECK", "RESULT", "DETAIL"), [(c.name, c.status, c.detail) for c in checks]))
        steps = [c for c in checks if c.next_step]
        if steps:
            print("\nNext steps:")
            for check in steps:
                print(f"  {check.name}: {check.next_step}")
    return 0 if doctor.passed(checks) else EXIT_ERROR


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the local server that clients on this machine find through the endpoint file."""
    file = paths.endpoint_file()
    running = endpoint.read(file)
    # Said first: a sidebar refreshing meanwhile finds it stopped rather than starting another.
    endpoint.mark_stopped(file)
    if running is None or running.pid is None:
        print("cellbox: no local server is running")
        return 0
    os.kill(running.pid, signal.SIGTERM)
    pause = Backoff(args.timeout, first=0.05, most=0.05)
    # Stopped when it let go of the state folder (its endpoint file gone and its claim released): a `serve` or a
    # notebook right after this then finds the folder free, not a server still shutting down.
    while endpoint.read(file) is not None or endpoint.claimed(file):
        if not pause.wait():
            return _fail(f"the local server (pid {running.pid}) did not stop within {args.timeout:g}s")
    print(f"cellbox: stopped the local server at {running.base_url} (pid {running.pid})")
    return 0


def _add_serve(subparsers: Any) -> None:
    from .local.cli import add_serve_parser, run_serve

    add_serve_parser(subparsers).set_defaults(handler=run_serve)


def _add_env(subparsers: Any) -> None:
    from .local.sandbox_env.command import add_env_parser, run_env

    add_env_parser(subparsers).set_defaults(handler=run_env)


def _fail(message: str) -> int:
    # The message may quote what a backend or proxy said: credentials it echoed are taken out.
    print(redact(f"cellbox: {message}", configured_secrets()), file=sys.stderr)
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellbox", description="Sandboxes for notebook cells, through the OpenAI-compatible Containers API."
    )
    parser.add_argument("--version", action="version", version=f"cellbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _add_serve(sub)
    _add_env(sub)

    ls = sub.add_parser("ls", help="list containers")
    ls.add_argument("--name", help="only containers with this name")
    ls.add_argument("--json", action="store_true", help="print JSON records")
    ls.set_defaults(handler=cmd_ls)

    files = sub.add_parser("files", help="list a container's files")
    files.add_argument("container", metavar="CONTAINER", help="container id or name")
    files.add_argument("--json", action="store_true", help="print JSON records")
    files.set_defaults(handler=cmd_files)

    rm = sub.add_parser("rm", help="delete containers")
    rm.add_argument("containers", metavar="CONTAINER", nargs="+", help="container ids or names")
    rm.set_defaults(handler=cmd_rm)

    stop = sub.add_parser("stop", help="stop the local server started by `cellbox serve` or by a notebook")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it (default 30)")
    stop.set_defaults(handler=cmd_stop)

    config = sub.add_parser("config", help="show the backend, base URL and auth kind (never a secret)")
    config.add_argument("--json", action="store_true", help="print JSON")
    config.set_defaults(handler=cmd_config)

    doctor = sub.add_parser(
        "doctor",
        help="check the configured backend end to end and say what to change for each failure",
        description="Checks the configured backend end to end and says what to change for each failure. On a "
        "cloud service this costs money: it creates one container (billed as a code interpreter session where the "
        "service bills them), runs code in it through the model up to three times (a few hundred billed tokens "
        "each) and deletes it. --no-run checks only the configuration, the credentials, the project and that the model "
        "is offered, for free.",
    )
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.add_argument(
        "--no-run",
        action="store_true",
        help="only the checks that cost nothing: configuration, auth, project and model (no container, no model call)",
    )
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CellboxError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("cellbox: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cellbox ls | head`
        return 0
    except Exception as exc:  # a bug, or an OS error: still one line; CELLBOX_DEBUG=1 shows the traceback
        if os.environ.get("CELLBOX_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
