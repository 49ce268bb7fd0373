"""Which container each notebook uses: one small JSON file per kernel, so the sidebar can mark it.

The magics write `<state_dir>/kernels/<kernel id>.json` (`{"container_id", "name", "pid"}`) whenever the kernel's
current container changes, and remove it when there is none. The kernel id is the one Jupyter gave the kernel (its
connection file is `kernel-<id>.json`), which the JupyterLab frontend knows for each notebook; the server extension
answers with `read()`. A file whose kernel process has died is ignored (and removed): a crash leaves nothing stale.
Files, not a request to the kernel: the sidebar learns it without running code in a busy kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from . import endpoint, paths

__all__ = ["forget", "kernel_id", "read", "record"]

_KERNEL_FILE = re.compile(r"^kernel-(\w[\w-]*)\.json$")


def _folder() -> Path:
    return paths.state_dir() / "kernels"


def kernel_id() -> str | None:
    """This kernel's id as Jupyter knows it, or None outside a Jupyter kernel."""
    try:
        from ipykernel.connect import get_connection_file

        found = _KERNEL_FILE.search(os.path.basename(get_connection_file()))
    except Exception:  # not in a kernel (plain IPython, a script): nobody to tell
        return None
    return found.group(1) if found else None


def record(kernel: str, container_id: str, name: str | None) -> None:
    """Kernel `kernel` (this process) now uses this container. Best effort: a read-only state folder is no error."""
    folder = _folder()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{kernel}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"container_id": container_id, "name": name, "pid": os.getpid()}))
        os.replace(tmp, folder / f"{kernel}.json")


def forget(kernel: str) -> None:
    with contextlib.suppress(OSError):
        (_folder() / f"{kernel}.json").unlink()


def read() -> dict[str, str]:
    """Container id by kernel id, for the kernels still running."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for path in _folder().glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict) or not isinstance(data.get("container_id"), str):
                continue
            pid = data.get("pid")
            if isinstance(pid, int) and not endpoint.pid_alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            found[path.stem] = data["container_id"]
    return found


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (where displays reach a notebook), not a plain IPython or Python."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")
