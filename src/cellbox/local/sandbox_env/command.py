"""`cellbox env`: what the sandbox environment holds (name and version), building it first if it is not there, and
`cellbox env upgrade`, which builds it again."""

from __future__ import annotations

import argparse
import json
import sys

from .environment import SandboxEnvError, Spec, configured_packages, ensure, table


def add_env_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `env` on an argparse subparsers object; the parser's default `func` is run_env."""
    parser = subparsers.add_parser(
        "env",
        help="list the packages local containers have (building their environment if it is not built yet)",
        description="The sandbox environment local containers run in: the packages of cellbox's lock file, plus "
        "sandbox_packages from config.toml and --sandbox-package. Built on first use (by this command or the "
        "server's first start) and reused after.",
    )
    parser.add_argument(
        "action", nargs="?", choices=("list", "upgrade"), default="list",
        help="list (the default) what it holds; upgrade: build it again, the extra packages at their newest "
        "versions (then restart the local server: `cellbox stop`)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--sandbox-package", action="append", default=[], metavar="NAME", help="as for serve")
    parser.add_argument("--sandbox-env-dir", help="as for serve")
    parser.set_defaults(func=run_env)
    return parser


def run_env(args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(f"cellbox: {line}", file=sys.stderr)

    try:
        spec = Spec((*configured_packages(), *args.sandbox_package), root=args.sandbox_env_dir)
        built = ensure(spec, say=say, rebuild=args.action == "upgrade")
    except SandboxEnvError as exc:
        say(str(exc))
        return 1
    if args.action == "upgrade":
        say(
            "built again; a local server running now keeps the old one until it stops, and uses this one once "
            "restarted (`cellbox stop`, then any cell)"
        )
    if args.json:
        print(json.dumps(built.as_json(), indent=2))
        return 0
    version = ".".join(map(str, built.version))
    print(f"# local containers run CPython {version} with {len(built.distributions)} packages ({built.folder})")
    print(table(built.distributions))
    return 0
