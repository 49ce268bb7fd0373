"""The environment local containers run in, declared by cellbox (environment.py): built once from the lock file
here, the same whichever Python starts the server."""

from .environment import (
    CONFIG_KEY,
    LOCK,
    ROOT_VARIABLE,
    STALE_DAYS,
    Environment,
    SandboxEnvError,
    Spec,
    configured_packages,
    default_root,
    ensure,
    find,
    sweep,
    table,
)

__all__ = [
    "CONFIG_KEY",
    "LOCK",
    "ROOT_VARIABLE",
    "STALE_DAYS",
    "Environment",
    "SandboxEnvError",
    "Spec",
    "configured_packages",
    "default_root",
    "ensure",
    "find",
    "sweep",
    "table",
]
