"""The optional parts of cellbox: which extra brings which modules, and whether they are installed.

`pip install cellbox` is the client and the magics; the extras declared in pyproject.toml add the rest. A part
that needs one checks here before it starts, so that a missing extra is one line naming it rather than an
ImportError from deep inside. tests/test_packaging.py keeps this table and pyproject.toml in step.
"""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["EXTRAS", "WIDGETS_SWITCH", "install_line", "live_widgets", "missing"]

# The modules cellbox itself imports from each extra's packages (not every package an extra installs: the local
# server runs without matplotlib, code in its sandboxes expects it).
EXTRAS: dict[str, tuple[str, ...]] = {
    "local": ("starlette", "uvicorn", "python_multipart"),
    "lab": ("jupyter_server",),
    "oci": ("oci",),
    "widgets": ("ipywidgets",),
}
WIDGETS_SWITCH = "CELLBOX_WIDGETS"  # "0": a kernel's views stay static HTML even where ipywidgets is installed
_WIDGETS_MISSING = (
    "ipywidgets is not installed in this kernel: galleries, progress and pool grids are shown as static HTML "
    "({install} makes them live)"
)
_said: set[str] = set()


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


def live_widgets() -> bool:
    """Whether a kernel's views are live ipywidgets: the `widgets` extra is installed and not switched off
    (WIDGETS_SWITCH). When it is missing that is said once, on stderr, and the views stay static HTML."""
    if os.environ.get(WIDGETS_SWITCH, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not missing("widgets"):
        return True
    if "widgets" not in _said:
        _said.add("widgets")
        print(f"cellbox: {_WIDGETS_MISSING.format(install=install_line('widgets'))}", file=sys.stderr)
    return False
