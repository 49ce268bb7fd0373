"""The local server's options, declared once: `cellbox serve` flags, the server's wiring and the test helper all
come from `ServerOptions`.

Each field's metadata holds its help text (None: a flag for tests only, hidden from `--help`); the field's
name is its flag (`max_upload_mb` is `--max-upload-mb`), and a profile that makes the server behave like a given
service is just a set of field values.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8765


def _help(text: str | None) -> dict[str, str | None]:
    return {"help": text}


@dataclass
class ServerOptions:
    host: str = field(default="127.0.0.1", metadata=_help("address to bind (default: 127.0.0.1)"))
    port: int | None = field(
        default=None,
        metadata=_help(f"port to bind; 0 picks a free one (default: {DEFAULT_PORT}, or a free one if it is taken)"),
    )
    data_dir: Path | None = field(default=None, metadata=_help("where containers and files are kept"))
    token: str | None = field(default=None, metadata=_help("bearer token clients must send (default: a random one)"))
    unsafe_no_isolation: bool = field(
        default=False, metadata=_help("run kernels as plain processes when bubblewrap jails are not available")
    )
    latency_ms: float = field(default=0.0, metadata=_help("add this delay to every response"))
    error_rate: float = field(
        default=0.0, metadata=_help("answer this share of requests (0 to 1) with a retryable 503")
    )
    max_upload_mb: int = field(default=512, metadata=_help("largest file upload (default: 512)"))
    pool_size: int = field(default=2, metadata=_help("warm kernels kept ready for new containers (default: 2)"))
    access_log: bool = field(default=False, metadata=_help("log every request (method, path, status)"))
    exec_timeout: float | None = field(
        default=1800.0, metadata=_help("interrupt code running longer than this (seconds; default: 1800)")
    )
    max_processes: int = field(
        default=256, metadata=_help("processes and threads one container may run at once (default: 256)")
    )
    cpu_limit: float | None = field(
        default=None,
        metadata=_help("CPUs one container may use, e.g. 1.5 (default: all of the host's but one, at least 1)"),
    )
    # For tests: how many seconds a minute of `expires_after` lasts, and where to write the endpoint file.
    seconds_per_minute: float = field(default=60.0, metadata=_help(None))
    endpoint_file: Path | None = field(default=None, metadata=_help(None))

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ServerOptions:
        """Options from keyword values; an unknown name is a TypeError naming it."""
        unknown = set(values) - cls.names()
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of ServerOptions, typed by the field's annotation."""
    for f in dataclasses.fields(ServerOptions):
        help_text = f.metadata["help"] if f.metadata["help"] is not None else argparse.SUPPRESS
        kind = str(f.type)
        if kind == "bool":
            parser.add_argument(flag(f.name), action="store_true", help=help_text)
            continue
        convert = Path if "Path" in kind else int if kind.startswith("int") else float if "float" in kind else str
        parser.add_argument(flag(f.name), type=convert, default=f.default, help=help_text)


def from_namespace(args: argparse.Namespace) -> ServerOptions:
    return ServerOptions(**{name: getattr(args, name) for name in ServerOptions.names()})


def to_argv(options: Mapping[str, Any]) -> list[str]:
    """The `cellbox serve` flags that give these option values (the inverse of add_arguments)."""
    ServerOptions.from_mapping(options)  # refuse unknown names here, not as a usage error in a subprocess
    argv: list[str] = []
    for name, value in options.items():
        if value is True:
            argv.append(flag(name))
        elif value is not None and value is not False:
            argv += [flag(name), str(value)]
    return argv
