"""cellbox: run notebook cells in sandboxes reached through the OpenAI-compatible Containers API.

    import cellbox
    sb = cellbox.Sandbox.create(name="demo", memory_limit="4g")
    sb.push(df, name="sales")
    run = sb.run("sales.groupby('region').price.sum()")

In a notebook: `%load_ext cellbox`, then `%%container` cells.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = [
    "Artifact",
    "NoSuchContainer",
    "Pool",
    "RemoteError",
    "Run",
    "Sandbox",
    "SandboxGone",
    "Usage",
    "__version__",
    "concat",
]


def __getattr__(name: str) -> Any:
    # Lazy: `cellbox.api` and the command line stay quick to import without pandas or IPython.
    if name == "Sandbox":
        from .session.sandbox import Sandbox

        return Sandbox
    if name in ("Pool", "concat"):
        from .pool import fanout

        return getattr(fanout, name)
    if name in ("Artifact", "RemoteError", "Run", "SandboxGone", "Usage"):
        from .session import results

        return getattr(results, name)
    if name == "NoSuchContainer":
        from .api.lookup import NoSuchContainer

        return NoSuchContainer
    raise AttributeError(f"module 'cellbox' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext cellbox`: registers `%container` and `%%container`."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)
