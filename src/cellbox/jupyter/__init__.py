"""The cellbox jupyter-server extension: the REST API behind the JupyterLab sidebar (`/cellbox/api/…`).

Enabled on install (`jupyter-config/jupyter_server_config.d/cellbox.json`). Credentials stay on the server: the
browser sees containers and file entries, and which backend is in use, never a key.

    # jupyter_server_config.py
    c.CellboxSidebar.autostart = False   # don't start the local server when nothing is configured
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Instance

from .core import Sidebar
from .handlers import setup_handlers

__all__ = ["CellboxSidebar"]


class CellboxSidebar(ExtensionApp):
    """The sidebar's server extension: its settings, its routes, and the clients it closes at shutdown."""

    name = "cellbox"
    load_other_extensions = True

    autostart = Bool(
        True,
        config=True,
        help="With no backend configured, start the embedded local server (shared with the kernels), as the "
        "magics do. When False, the sidebar reports that nothing is configured instead.",
    )

    sidebar = Instance(Sidebar, allow_none=True)

    def initialize_handlers(self) -> None:
        server_app = self.serverapp
        assert server_app is not None
        allow_hidden = bool(getattr(server_app.contents_manager, "allow_hidden", False))
        self.sidebar = Sidebar(server_app.root_dir, autostart=self.autostart, allow_hidden=allow_hidden)
        setup_handlers(server_app.web_app, self.sidebar)
        self.log.info("cellbox: sidebar API at /cellbox/api/ (workspace %s)", self.sidebar.workspace.root)

    async def stop_extension(self) -> None:
        """Close the sidebar's clients (and with them their connections, tokens and certificates)."""
        if self.sidebar is not None:
            await self.sidebar.aclose()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "cellbox.jupyter", "app": CellboxSidebar}]
