"""The cellbox jupyter-server extension: the REST API behind the JupyterLab sidebar (`/cellbox/api/…`).

Enabled on install (`jupyter-config/jupyter_server_config.d/cellbox.json`). Credentials stay on the server: the
browser sees container and file records, and which backend is in use, never a key.

    # jupyter_server_config.py
    c.CellboxSidebar.autostart = False   # don't start the local server when nothing is configured
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool
from traitlets.config import Configurable

from .core import Sidebar
from .handlers import setup_handlers

__all__ = ["CellboxSidebar"]


class CellboxSidebar(Configurable):
    """Settings of the sidebar's server extension."""

    autostart = Bool(
        True,
        config=True,
        help="With no backend configured, start the embedded local server (shared with the kernels), as the "
        "magics do. When False, the sidebar reports that nothing is configured instead.",
    )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "cellbox.jupyter"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    config = CellboxSidebar(parent=server_app)
    allow_hidden = bool(getattr(server_app.contents_manager, "allow_hidden", False))
    sidebar = Sidebar(server_app.root_dir, autostart=config.autostart, allow_hidden=allow_hidden)
    setup_handlers(server_app.web_app, sidebar)
    server_app.log.info("cellbox: sidebar API at /cellbox/api/ (workspace %s)", sidebar.workspace.root)
