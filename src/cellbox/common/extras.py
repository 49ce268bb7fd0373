"""The optional parts of cellbox: which extra brings which modules, and whether they are installed.

`pip install cellbox` is the client and the magics; the extras declared in pyproject.toml add the rest. A part
that needs one checks here before it starts, so that a missing extra is one line naming it rather than an
ImportError from deep inside. tests/test_packaging.py keeps this table and pyproject.toml in step.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "install_line", "missing"]

# The modules cellbox itself imports from each extra's packages (not every package an extra installs: the local
# server runs without matplotlib, code in its sandboxes expects it).
EXTRAS: dict[str, tuple[str, ...]] = {
    "local": ("starlette", "uvicorn", "python_multipart"),
    "lab": ("jupyter_server",),
    "oci": ("oci",),
}


def missing(extra: str) -> list[str]:
    """The modules of `extra` that can't be imported here (found without importing them)."""
    absent = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or one without a spec
            found = False
        if not found:
            absent.append(module)
    return absent


def install_line(extra: str) -> str:
    return f"pip install 'cellbox[{extra}]'"
