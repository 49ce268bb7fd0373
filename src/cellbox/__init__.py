"""cellbox: run notebook cells in sandboxes reached through the OpenAI-compatible Containers API.

    import cellbox
    sb = cellbox.Sandbox.create(name="demo", memory_limit="4g")
    sb.push(df, name="sales")
    run = sb.run("sales.groupby('region').price.sum()")

In a notebook: `%load_ext cellbox`, then `%%container` cells.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

# What `cellbox` offers, and where each lives (imported when first used: `cellbox.api` and the command line stay
# quick to import without pandas or IPython).
_PUBLIC = {
    "Sandbox": "session.sandbox",
    "Pool": "pool.fanout",
    "concat": "pool.fanout",
    "Run": "session.results",
    "Artifact": "session.results",
    "Display": "session.results",
    "Usage": "session.results",
    # the errors, one tree (cellbox.session.errors draws it)
    "CellboxError": "api",
    "ConfigurationError": "api",
    "ValidationError": "api",
    "APIError": "api",
    "APIConnectionError": "api",
    "APITimeoutError": "api",
    "APIStatusError": "api",
    "APIResponseValidationError": "api",
    "BadRequestError": "api",
    "ConflictError": "api",
    "UnprocessableEntityError": "api",
    "InternalServerError": "api",
    "RegionWarning": "api.config",
    "AuthenticationError": "api",
    "PermissionDeniedError": "api",
    "NotFoundError": "api",
    "RateLimitError": "api",
    "NoSuchContainer": "api.lookup",
    "AmbiguousName": "api.lookup",
    "NameTaken": "api.lookup",
    "RecordRefused": "boundary.record",
    "Refused": "boundary.local_paths",
    "TooLarge": "session.frames",
    "SandboxGone": "session.errors",
    "NotAuthorized": "session.errors",
    "RunFailed": "session.errors",
    "LoaderMismatch": "session.errors",
    "ProcessDied": "session.errors",
    "TimeLimit": "session.errors",
    "RemoteError": "session.errors",
    "Interrupted": "session.errors",
    "PartsFailed": "pool.parts",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    where = _PUBLIC.get(name)
    if where is None:
        raise AttributeError(f"module 'cellbox' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{where}"), name)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext cellbox`: registers `%container` and `%%container`."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)
