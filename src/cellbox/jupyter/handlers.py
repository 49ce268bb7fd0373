"""The REST API under `/cellbox/api/` that the JupyterLab sidebar talks to.

One base handler turns every failure into JSON (`{"message", "reason", "upstream_status", "request_id"}`) and
logs it on one line, credentials taken out of both (`cellbox.common.redact`: what a backend or proxy echoes back); the
handlers are thin calls into `core.Sidebar`; `ROUTES` is the whole API.
"""

from __future__ import annotations

from http.client import responses
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..api import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    CellboxError,
    ConfigurationError,
    ValidationError,
)
from ..common.redact import redact
from .core import Sidebar, SidebarError

__all__ = ["ROUTES", "CellboxHandler", "setup_handlers"]

API_PREFIX = "cellbox/api"
SETTINGS_KEY = "cellbox_sidebar"


def error_status(exc: BaseException) -> tuple[int, int | None]:
    """The status to answer with for `exc`, and the backend's own status when it answered at all."""
    if isinstance(exc, SidebarError):
        return exc.status, exc.upstream_status
    if isinstance(exc, ConfigurationError):
        return 503, None
    if isinstance(exc, ValidationError):
        return 400, None
    if isinstance(exc, APIStatusError):
        upstream = exc.status_code
        # The backend refusing the server's credentials is not the browser's session failing: a gateway error.
        if upstream >= 500 or upstream in (401, 403):
            return 502, upstream
        return upstream, upstream
    if isinstance(exc, APIResponseValidationError):
        return 502, exc.status_code
    if isinstance(exc, APITimeoutError):
        return 504, None
    if isinstance(exc, APIConnectionError):
        return 502, None
    return 500, None


class CellboxHandler(APIHandler):
    """Base of the sidebar's handlers: `self.sidebar`, JSON in and out, errors as JSON."""

    @property
    def sidebar(self) -> Sidebar:
        return self.settings[SETTINGS_KEY]

    def body(self) -> dict[str, Any]:
        try:
            body = self.get_json_body()
        except tornado.web.HTTPError:
            raise SidebarError(400, "the request body is not valid JSON") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise SidebarError(400, "the request body must be a JSON object")
        return body

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(data)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, (CellboxError, SidebarError)):
            super().write_error(status_code, **kwargs)
            return
        status, upstream = error_status(exc)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        message = getattr(exc, "message", None) or str(exc)
        request_id = getattr(exc, "request_id", None)
        self.finish(
            {
                "message": self.redact(message),
                "reason": responses.get(status, "Error"),
                "upstream_status": upstream,
                "request_id": None if request_id is None else self.redact(str(request_id)),
            }
        )

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (CellboxError, SidebarError)):
            self.log.warning("cellbox: %s %s: %s", self.request.method, self.request.path, self.redact(str(value)))
        else:
            super().log_exception(typ, value, tb)

    def redact(self, text: str) -> str:
        """`text` without the sidebar's credentials, or anything that looks like one."""
        return redact(text, self.sidebar.secrets())


class StatusHandler(CellboxHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.sidebar.status())


class ServerHandler(CellboxHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        """Start the local server (after `cellbox stop`): the sidebar's Start button."""
        self.reply(await self.sidebar.start_server())


class ContainersHandler(CellboxHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.sidebar.list_containers())

    @tornado.web.authenticated
    async def post(self) -> None:
        self.reply(await self.sidebar.create_container(self.body()), status=201)


class ContainerHandler(CellboxHandler):
    @tornado.web.authenticated
    async def delete(self, container_id: str) -> None:
        self.reply(await self.sidebar.delete_container(container_id))


class FilesHandler(CellboxHandler):
    @tornado.web.authenticated
    async def get(self, container_id: str) -> None:
        include_private = self.get_query_argument("all", "0") in ("1", "true")
        self.reply(await self.sidebar.list_files(container_id, include_private))

    @tornado.web.authenticated
    async def post(self, container_id: str) -> None:
        """Upload a workspace file: `{"path": "data/raw.csv"}`."""
        self.reply(await self.sidebar.upload(container_id, self.body()), status=201)


class FileHandler(CellboxHandler):
    @tornado.web.authenticated
    async def delete(self, container_id: str, file_id: str) -> None:
        self.reply(await self.sidebar.delete_file(container_id, file_id))


class DownloadHandler(CellboxHandler):
    @tornado.web.authenticated
    async def post(self, container_id: str, file_id: str) -> None:
        """Save the file into the workspace: `{"directory": "results", "overwrite": false}`."""
        self.reply(await self.sidebar.download(container_id, file_id, self.body()))


_ID = r"(?P<{}>[^/]+)"
ROUTES: list[tuple[str, type[CellboxHandler]]] = [
    ("status", StatusHandler),
    ("server", ServerHandler),
    ("containers", ContainersHandler),
    ("containers/" + _ID.format("container_id"), ContainerHandler),
    ("containers/" + _ID.format("container_id") + "/files", FilesHandler),
    ("containers/" + _ID.format("container_id") + "/files/" + _ID.format("file_id"), FileHandler),
    ("containers/" + _ID.format("container_id") + "/files/" + _ID.format("file_id") + "/download", DownloadHandler),
]


def setup_handlers(web_app: tornado.web.Application, sidebar: Sidebar) -> None:
    """Register `ROUTES` under `<base_url>/cellbox/api/` and make `sidebar` available to the handlers."""
    web_app.settings[SETTINGS_KEY] = sidebar
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$", [(url_path_join(base_url, API_PREFIX, pattern) + "/?$", handler) for pattern, handler in ROUTES]
    )
