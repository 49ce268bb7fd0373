"""The local server's options, declared once: `cellbox serve` flags, the server's wiring and the test helper all
come from `ServerOptions`.

Each field's metadata holds its help text (None: a flag for tests only, hidden from `--help`); the field's
name is its flag (`max_upload_mb` is `--max-upload-mb`), and a profile that makes the server behave like a given
service is just a set of field values (emulation/profiles.py): `--profile oci` sets `error_shape="oci"`,
`require_project=True` and `unstored_background="temporary"` (`--profile oci-auto` also `auto_containers_only`),
and a field given explicitly wins over its profile's value.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .emulation.profiles import PROFILES
from .emulation.quirks import QUIRKS, parse_quirks
from .emulation.ratelimit import per_minute

DEFAULT_PORT = 8765


def _help(text: str | None, choices: tuple[str, ...] | None = None, convert: Any = None) -> dict[str, object]:
    return {"help": text, "choices": choices, "convert": convert}


def _quirks_flag(text: str) -> str:
    try:
        parse_quirks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _rate_flag(text: str) -> int:
    try:
        return per_minute(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size_flag(text: str) -> str:
    try:
        parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 2g, 500m or 1048576, got {text!r}") from None
    return text


def parse_size(text: str) -> int:
    """Bytes in a size like `2g`, `500m`, `64k` or `1048576`; ValueError otherwise."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    cleaned = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if value <= 0:
        raise ValueError(f"a size must be positive: {text!r}")
    return value


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
    rate_limit: int | None = field(
        default=None,
        metadata=_help(
            "answer 429 (with Retry-After) past this many requests a minute to the container endpoints per API "
            "key, as OpenAI does (100/min per organisation): N/min",
            convert=_rate_flag,
        ),
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
    disk_limit: str | None = field(
        default=None,
        metadata=_help(
            "disk one container may use in /mnt/data, e.g. 2g or 500m (default: an eighth of what is free where "
            "the data lives, at least 256m); the server also keeps 64 MiB back so it can always answer",
            convert=_size_flag,
        ),
    )
    disk_quota: str = field(
        default="auto",
        metadata=_help(
            "how the disk limit is kept: 'filesystem' (each container's /mnt/data is a filesystem of the limit's "
            "size, an ext4 image loop-mounted: writes past it fail at once; needs root and loop devices), "
            "'measured' (the server measures each container's usage every second or so, between runs too, and "
            "stops a kernel past it: about a second's worth of writing can pass), or 'auto' (filesystem where the "
            "host allows it, else measured; the server says at start which)",
            choices=("auto", "filesystem", "measured"),
        ),
    )
    max_containers: int | None = field(
        default=None,
        metadata=_help(
            "containers at once; more are refused with 429 (default: sized to the host, one per 96 MiB of RAM and "
            "20 open files)"
        ),
    )
    cpu_limit: float | None = field(
        default=None,
        metadata=_help("CPUs one container may use, e.g. 1.5 (default: all of the host's but one, at least 1)"),
    )
    profile: str | None = field(
        default=None,
        metadata=_help(
            "behave like a real service: 'openai' stores uploads as /mnt/data/<32 hex>-<basename>; 'oci' answers "
            "errors as {code, message} with opc-request-id, an authorization failure as 404 "
            "NotAuthorizedOrNotFound, refuses requests without an OpenAI-Project header, and keeps a background "
            "response with store: false temporarily; 'oci-auto' is 'oci' that also refuses a container id in the "
            "code_interpreter tool (--auto-containers-only)",
            choices=tuple(PROFILES),
        ),
    )
    model_quirks: str | None = field(
        default=None,
        metadata=_help(
            "make the cellbox-local model misbehave the way an LLM may: 'all' or a comma list of "
            + ", ".join(QUIRKS)
            + ". rerun-on-error: code that raised is run again in a second call (unless max_tool_calls is 1); "
            "reformat: every call's code is restyled (quotes, spacing), same meaning; no-call and incomplete: the "
            "2nd, 5th, 8th... request on a container gets a reply without a call, or a call that ends incomplete "
            "without running (both on: no-call on the 2nd, 8th..., incomplete on the 5th, 11th...; the 1st request "
            "and the one after each quirky one are always clean); ignore-limits: max_tool_calls and tool_choice "
            "are ignored",
            convert=_quirks_flag,
        ),
    )
    listing_lag_ms: float = field(
        default=0.0,
        metadata=_help(
            "files written by code are missing from file lists for this long after the run, then listed for as "
            "long again with bytes null and content answering 404, as clouds have been seen to do (default: 0)"
        ),
    )
    upload_names: str = field(
        default="as-named",
        metadata=_help(
            "where an upload lands: 'as-named' (/mnt/data/<its name>, folders kept) or 'prefixed' "
            "(/mnt/data/<32 hex>-<basename>, like OpenAI's example); --profile openai sets 'prefixed'",
            choices=("as-named", "prefixed"),
        ),
    )
    error_shape: str = field(
        default="openai",
        metadata=_help(
            "errors as OpenAI's {error: {message, type, param, code}} or OCI's {code, message} with "
            "opc-request-id; --profile oci sets 'oci'",
            choices=("openai", "oci"),
        ),
    )
    streaming: str = field(
        default="on",
        metadata=_help(
            "responses with stream: true: 'on' (server-sent events), 'refused' (400 unsupported_parameter, as a "
            "gateway without streaming answers) or 'cut' (the stream ends once the code is running, without its "
            "last events, as a proxy closing long connections does)",
            choices=("on", "refused", "cut"),
        ),
    )
    unstored_background: str = field(
        default="refused",
        metadata=_help(
            "a response with background: true and store: false: 'refused' (400, param store) or 'temporary' "
            "(accepted and kept, in memory only, while it runs and 10 minutes after it ends: polled, cancelled and "
            "streamed again like a stored one, then gone, as OCI documents); --profile oci sets 'temporary'",
            choices=("refused", "temporary"),
        ),
    )
    require_project: bool = field(
        default=False,
        metadata=_help("refuse requests without an OpenAI-Project header, as OCI does; --profile oci sets it"),
    )
    auto_containers_only: bool = field(
        default=False,
        metadata=_help(
            'refuse a container id in the code_interpreter tool with 400: only {"type": "auto"} containers, as OCI '
            "documents them (whether OCI refuses ids is not known); --profile oci-auto sets it"
        ),
    )
    sandbox_package: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "a package the sandbox environment also has, e.g. duckdb or 'xgboost==2.1' (repeatable; with "
            "sandbox_packages in config.toml): installed from PyPI when the environment is built, as containers "
            "have no network"
        ),
    )
    sandbox_env_dir: Path | None = field(
        default=None,
        metadata=_help(
            "where sandbox environments are built and kept (default: $CELLBOX_SANDBOX_ENV_DIR, else "
            "cellbox/sandbox-env in the user's cache folder)"
        ),
    )
    # For benchmarks: containers run the server's own interpreter and packages instead of the sandbox environment.
    own_interpreter: bool = field(default=False, metadata=_help(None))
    # For tests: how many seconds a minute of `expires_after` lasts, and where to write the endpoint file.
    seconds_per_minute: float = field(default=60.0, metadata=_help(None))
    endpoint_file: Path | None = field(default=None, metadata=_help(None))

    def __post_init__(self) -> None:
        self.sandbox_package = tuple(self.sandbox_package or ())
        if self.profile is not None:
            if self.profile not in PROFILES:
                raise ValueError(f"unknown profile {self.profile!r}: expected one of {', '.join(PROFILES)}")
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name, value in PROFILES[self.profile].items():
                if getattr(self, name) == defaults[name]:
                    setattr(self, name, value)
        parse_quirks(self.model_quirks)  # refuse an unknown quirk now, not at the first request

    @property
    def quirks(self) -> frozenset[str]:
        """The --model-quirks turned on."""
        return parse_quirks(self.model_quirks)

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
        if kind.startswith("tuple"):
            parser.add_argument(flag(f.name), action="append", metavar="NAME", help=help_text)
            continue
        convert = Path if "Path" in kind else int if kind.startswith("int") else float if "float" in kind else str
        convert = f.metadata.get("convert") or convert
        choices = f.metadata.get("choices")
        parser.add_argument(flag(f.name), type=convert, default=f.default, choices=choices, help=help_text)


def from_namespace(args: argparse.Namespace) -> ServerOptions:
    return ServerOptions(**{name: getattr(args, name) for name in ServerOptions.names()})


def to_argv(options: Mapping[str, Any]) -> list[str]:
    """The `cellbox serve` flags that give these option values (the inverse of add_arguments)."""
    ServerOptions.from_mapping(options)  # refuse unknown names here, not as a usage error in a subprocess
    argv: list[str] = []
    for name, value in options.items():
        if value is True:
            argv.append(flag(name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [flag(name), str(item)]
        elif value is not None and value is not False:
            argv += [flag(name), str(value)]
    return argv
