"""Where the client's settings come from: the environment, then `~/.config/cellbox/config.toml`, then defaults.

With no base URL and no region configured, the client uses the endpoint file that a running `cellbox serve`
writes (`cellbox.common.paths.endpoint_file()`), so `Client()` needs no arguments on a fresh machine.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..common import endpoint, paths
from ..common.endpoint import Endpoint
from .errors import ConfigurationError
from .operations import REASONING_EFFORTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "AUTH_KINDS",
    "CONTAINER_BINDINGS",
    "OCI_REGIONS",
    "RegionWarning",
    "Settings",
    "load_settings",
    "oci_base_url",
]

AUTH_KINDS: tuple[str, ...] = (
    "api_key",
    "oci_user_principal",
    "oci_session",
    "oci_instance_principal",
    "oci_resource_principal",
)

# setting name -> (environment variable, key in config.toml)
_SOURCES: dict[str, tuple[str, str]] = {
    "base_url": ("CELLBOX_BASE_URL", "base_url"),
    "oci_region": ("CELLBOX_OCI_REGION", "oci_region"),
    "auth": ("CELLBOX_AUTH", "auth"),
    "api_key": ("CELLBOX_API_KEY", "api_key"),
    "oci_config_file": ("OCI_CONFIG_FILE", "oci_config_file"),
    "oci_profile": ("OCI_CONFIG_PROFILE", "oci_config_profile"),
    "project": ("CELLBOX_PROJECT", "project"),
    "model": ("CELLBOX_MODEL", "model"),
    "reasoning_effort": ("CELLBOX_REASONING_EFFORT", "reasoning_effort"),
    "inline_max": ("CELLBOX_INLINE_MAX", "inline_max"),  # downloads a notebook's gallery embeds, in all
    # false: cells run as one foreground response, stored nowhere (zero data retention; no cancel on interrupt)
    "background": ("CELLBOX_BACKGROUND", "background"),
    # requests a minute to the container endpoints, for everything sharing a client (budget.py); default: the
    # service's documented limit
    "requests_per_minute": ("CELLBOX_REQUESTS_PER_MINUTE", "requests_per_minute"),
    # how code_interpreter is bound to a sandbox's container: `id` (the tool names it) or `auto` (the service
    # makes it for a first response and reuses it along the chain of `previous_response_id`)
    "container_binding": ("CELLBOX_CONTAINER_BINDING", "container_binding"),
}
CONTAINER_BINDINGS = ("id", "auto")
# Keys of config.toml the local server reads, not the client: `sandbox_packages`, the extra packages of the sandbox
# environment its containers run in (cellbox.local.sandbox_env).
_SERVER_KEYS = ("sandbox_packages",)
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}

# The regions OCI documents for the agentic APIs (Responses, Containers); docs/CLOUD.md.
OCI_REGIONS = (
    "us-ashburn-1",
    "us-chicago-1",
    "us-phoenix-1",
    "sa-saopaulo-1",
    "eu-frankfurt-1",
    "uk-london-1",
    "me-riyadh-1",
    "ap-hyderabad-1",
    "ap-osaka-1",
)
_OCI_HOST = re.compile(r"^https?://inference\.generativeai\.([a-z0-9-]+)\.oci\.oraclecloud\.com(?:[:/]|$)")
_warned_regions: set[str] = set()


class RegionWarning(UserWarning):
    """The configured OCI region is not one OCI documents for the Responses and Containers APIs."""


def oci_base_url(region: str) -> str:
    """The OCI Generative AI OpenAI-compatible base URL for a region such as `us-chicago-1`."""
    return f"https://inference.generativeai.{region}.oci.oraclecloud.com/openai/v1"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings. `origin` says where each came from (for `cellbox config`); secrets never print."""

    base_url: str | None = None
    oci_region: str | None = None
    auth: str = "api_key"
    api_key: str | None = dataclasses.field(default=None, repr=False)
    oci_config_file: str = "~/.oci/config"
    oci_profile: str = "DEFAULT"
    project: str | None = None
    model: str | None = None
    reasoning_effort: str | None = None
    inline_max: str | None = None
    # Whether cells run as background responses (cancellable; stored by the service while they run, for polling).
    background: bool = True
    requests_per_minute: int | None = None
    container_binding: str = "id"
    origin: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    # What the endpoint file said when the base URL came from it: a client makes the server there prove it holds
    # this token before it sends the server anything.
    endpoint: Endpoint | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def backend(self) -> str:
        """`oci`, `openai`, `local` (a `cellbox serve` found through its endpoint file), `custom` or `none`."""
        if not self.base_url:
            return "none"
        url = self.base_url
        if self.origin.get("base_url") == "endpoint file":
            return "local"
        if ".oci.oraclecloud.com" in url or self.auth.startswith("oci_"):
            return "oci"
        if "api.openai.com" in url:
            return "openai"
        return "custom"

    def describe(self) -> dict[str, Any]:
        """What `cellbox config` prints: every setting except secrets, which show only whether they are set."""
        return {
            "backend": self.backend,
            "base_url": self.base_url,
            "auth": self.auth,
            "api_key": "set" if self.api_key else "not set",
            "oci_config_file": self.oci_config_file if self.auth.startswith("oci_") else None,
            "oci_profile": self.oci_profile if self.auth.startswith("oci_") else None,
            "project": self.project,
            "model": self.model,
            "reasoning_effort": self.reasoning_effort,
            "inline_max": self.inline_max,
            "background": self.background,
            "requests_per_minute": self.requests_per_minute,
            "container_binding": self.container_binding,
            "sources": dict(self.origin),
        }


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"can't read {path}: {exc}. Fix or remove the file.") from None
    # Accept both a flat file and one with a [cellbox] table.
    table = data.get("cellbox", data)
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: expected key = value settings, found {type(table).__name__}.")
    return table


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    endpoint_file: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings: explicit overrides, then the environment, then config.toml, then defaults."""
    env = os.environ if env is None else env
    config_path = config_file or paths.config_file()
    toml = _read_toml(config_path)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, (variable, key) in _SOURCES.items():
        if overrides.get(name) is not None:
            values[name], origin[name] = overrides[name], "argument"
        elif env.get(variable):
            values[name], origin[name] = env[variable], variable
        elif toml.get(key) not in (None, ""):
            values[name], origin[name] = toml[key], str(config_path)
    unknown = sorted(set(toml) - {key for _, key in _SOURCES.values()} - set(_SERVER_KEYS))
    if unknown:
        known = ", ".join([*(key for _, key in _SOURCES.values()), *_SERVER_KEYS])
        raise ConfigurationError(f"{config_path}: unknown setting(s) {', '.join(unknown)}; known: {known}.")
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"setting {name} must be a string, got {value!r} (from {origin[name]}).")

    auth = values.get("auth", "api_key")
    if auth not in AUTH_KINDS:
        raise ConfigurationError(
            f"unknown auth kind {auth!r} (from {origin['auth']}); use one of: {', '.join(AUTH_KINDS)}."
        )
    if "base_url" not in values and "oci_region" in values:
        values["base_url"] = oci_base_url(values["oci_region"])
        origin["base_url"] = origin["oci_region"]
    if "base_url" not in values:
        found = endpoint.read(endpoint_file or paths.endpoint_file())
        if found is not None:
            values["base_url"], origin["base_url"] = found.base_url, "endpoint file"
            values["endpoint"] = found
            # The local server's own token, over a key from the environment or config.toml: that one is meant for
            # a remote service and must not be sent here.
            if origin.get("api_key") != "argument" and found.token is not None:
                values["api_key"], origin["api_key"] = found.token, "endpoint file"
    if "base_url" in values:
        values["base_url"] = values["base_url"].rstrip("/")
        if not values["base_url"].startswith(("http://", "https://")):
            raise ConfigurationError(
                f"base URL {values['base_url']!r} (from {origin['base_url']}) must start with http:// or https://."
            )
        _check_region(values["base_url"], origin["base_url"])
    effort = values.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise ConfigurationError(
            f"unknown reasoning effort {effort!r} (from {origin['reasoning_effort']}); use one of: "
            f"{', '.join(REASONING_EFFORTS)}."
        )
    if "background" in values:
        flag = _BOOLEANS.get(values["background"].strip().lower())
        if flag is None:
            raise ConfigurationError(
                f"background must be true or false, got {values['background']!r} (from {origin['background']})."
            )
        values["background"] = flag
    if "requests_per_minute" in values:
        given = values["requests_per_minute"].strip()
        if not given.isdigit() or int(given) < 1:
            raise ConfigurationError(
                f"requests_per_minute must be a whole number from 1, got {given!r} "
                f"(from {origin['requests_per_minute']})."
            )
        values["requests_per_minute"] = int(given)
    if "container_binding" in values:
        binding = values["container_binding"].strip().lower()
        if binding not in CONTAINER_BINDINGS:
            raise ConfigurationError(
                f"container_binding must be one of {', '.join(CONTAINER_BINDINGS)}, got "
                f"{values['container_binding']!r} (from {origin['container_binding']})."
            )
        values["container_binding"] = binding
    return Settings(**values, origin=origin)


def _check_region(base_url: str, source: str) -> None:
    """Warn (once per region) when an OCI base URL names a region OCI does not document for these APIs."""
    found = _OCI_HOST.match(base_url)
    if found is None or found.group(1) in OCI_REGIONS or found.group(1) in _warned_regions:
        return
    _warned_regions.add(found.group(1))
    warnings.warn(
        f"OCI region {found.group(1)!r} (from {source}) is not one OCI documents for the Responses and "
        f"Containers APIs ({', '.join(OCI_REGIONS)}); requests may fail there. `cellbox doctor` checks it.",
        RegionWarning,
        stacklevel=3,
    )


def configured_secrets() -> list[str]:
    """The secrets the current configuration holds (the API key, or the local server's token); none when the
    configuration can't be read."""
    try:
        key = load_settings().api_key
    except Exception:  # a broken configuration is reported elsewhere; redaction must not fail on it
        return []
    return [key] if key else []
