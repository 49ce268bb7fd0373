"""Which container each notebook uses: one small JSON file per kernel, so the sidebar can mark it.

The magics write `<state_dir>/kernels/<kernel id>.json` (`{"container_id", "name", "pid"}`) whenever the kernel's
current container changes, and remove it when there is none. The kernel id is the one Jupyter gave the kernel (its
connection file is `kernel-<id>.json`), which the JupyterLab frontend knows for each notebook; the server extension
answers with `read()`. A file whose kernel process has died is ignored (and removed): a crash leaves nothing stale.
Files, not a request to the kernel: the sidebar learns it without running code in a busy kernel.

Which container each *notebook* used last outlives its kernel: `<state_dir>/notebooks.json` maps the notebook's
identity (`notebook_identity`) to that container, so the first cell after a kernel restart reattaches to it rather
than making a new one. The identity is the notebook's path as Jupyter gives it to the kernel (`JPY_SESSION_NAME`,
set by jupyter_server for JupyterLab and Notebook 7; VS Code's `__vsc_ipynb_file__`), else the kernel's id, which a
restart keeps (a `jupyter console` restarted in place). A kernel with neither (papermill, plain IPython) has none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import filelock

from . import endpoint, paths

__all__ = [
    "LastUsed",
    "forget",
    "forget_last_used",
    "kernel_id",
    "last_used",
    "notebook_identity",
    "read",
    "record",
    "record_last_used",
]

NOTEBOOKS_KEPT = 500  # notebooks whose last container is remembered, the most recently used
LOCK_WAIT = 5.0  # seconds to wait for another kernel's write of the notebooks' file

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


# --- the container each notebook used last -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LastUsed:
    """The container a notebook used last, on the backend at `base_url`."""

    container_id: str
    name: str | None
    base_url: str | None


def notebook_identity(namespace: Mapping[str, Any] | None = None) -> str | None:
    """This notebook's identity, which a kernel restart keeps: its path as the frontend gave it to the kernel, else
    the kernel's id; None in a kernel that has neither. A relative path (JupyterLab's, from the server's root) is
    made absolute from the kernel's folder (the notebook's), so two servers' `analysis.ipynb` stay two."""
    path = os.environ.get("JPY_SESSION_NAME") or (namespace or {}).get("__vsc_ipynb_file__")
    if isinstance(path, str) and path:
        return "notebook:" + os.path.abspath(path)
    kernel = kernel_id()
    return f"kernel:{kernel}" if kernel else None


def _notebooks_file() -> Path:
    return paths.state_dir() / "notebooks.json"


def _read_notebooks(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def last_used(identity: str) -> LastUsed | None:
    """The container the notebook `identity` used last, or None (never, forgotten, or a file that isn't ours)."""
    entry = _read_notebooks(_notebooks_file()).get(identity)
    if not entry or not isinstance(entry.get("container_id"), str):
        return None
    name, base_url = entry.get("name"), entry.get("base_url")
    return LastUsed(
        entry["container_id"], name if isinstance(name, str) else None, base_url if isinstance(base_url, str) else None
    )


def _change_notebooks(change: Any) -> None:
    """Applies `change` to the notebooks' file under its lock (kernels of other notebooks write it too), written
    whole and renamed into place. Best effort: a read-only state folder, or a lock held too long, is no error."""
    path = _notebooks_file()
    with contextlib.suppress(OSError, filelock.Timeout):
        path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(path) + ".lock", timeout=LOCK_WAIT):
            notebooks = _read_notebooks(path)
            change(notebooks)
            kept = sorted(notebooks.items(), key=lambda item: item[1].get("at", 0), reverse=True)[:NOTEBOOKS_KEPT]
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(dict(kept)))
            os.replace(tmp, path)


def record_last_used(identity: str, container_id: str, name: str | None, base_url: str | None) -> None:
    """The notebook `identity` now uses this container."""
    entry = {"container_id": container_id, "name": name, "base_url": base_url, "at": time.time()}
    _change_notebooks(lambda notebooks: notebooks.__setitem__(identity, entry))


def forget_last_used(identity: str, container_id: str) -> None:
    """The notebook's container `container_id` was deleted: nothing to reattach to."""

    def drop(notebooks: dict[str, dict[str, Any]]) -> None:
        if notebooks.get(identity, {}).get("container_id") == container_id:
            del notebooks[identity]

    _change_notebooks(drop)
