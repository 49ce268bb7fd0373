"""What the sidebar's REST API does, knowing nothing of tornado or jupyter_server.

`Sidebar` turns the sidebar's calls into `cellbox.api` calls against the configured backend and keeps the
workspace side safe: every workspace path is resolved under the server's root directory and refused outside it.
Answers are plain JSON-able dicts; failures are `cellbox.api` errors or `SidebarError`, which the handlers turn
into JSON in one place (`handlers.CellboxHandler.write_error`). `Clients` keeps one `AsyncClient` per effective
configuration, so calls share connections and, with OCI IAM auth, the signer's certificate and token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import posixpath
import shlex
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from .._version import __version__
from ..api import (
    MEMORY_LIMITS,
    AsyncClient,
    BadRequestError,
    Container,
    ContainerFile,
    NotFoundError,
    Settings,
    load_settings,
)
from ..api.lookup import LIVE
from ..boundary import local_paths
from ..common import endpoint, inuse, names, paths
from ..session import backend
from ..session.protocol import DATA_DIR, PRIVATE
from ..session.transfer import landing

__all__ = ["MEMORY_LIMITS", "Clients", "Sidebar", "SidebarError", "Workspace", "fingerprint"]


class SidebarError(Exception):
    """A call the sidebar can't carry out, with the HTTP status that says why."""

    def __init__(self, status: int, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.upstream_status = upstream_status


class Workspace:
    """The server's root directory; paths given by the browser are relative to it (API paths, `/`-separated).
    Hidden files and folders are refused, as the server's own contents API does, unless `allow_hidden`."""

    def __init__(self, root_dir: str | os.PathLike[str], *, allow_hidden: bool = False) -> None:
        self.root = Path(os.path.realpath(os.path.expanduser(root_dir)))
        self.allow_hidden = allow_hidden

    def resolve(self, path: str) -> Path:
        """The real path of workspace path `path`; a `SidebarError` (403) when it would leave the workspace."""
        if not isinstance(path, str) or "\0" in path:
            raise SidebarError(400, "a workspace path must be a string")
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:  # a leading "/" means the workspace root, as in JupyterLab's own paths
            raise SidebarError(403, f"{path!r} is outside the workspace; give a path relative to its root.")
        real = Path(os.path.realpath(self.root.joinpath(*parts)))
        if real != self.root and self.root not in real.parents:
            raise SidebarError(403, f"{path!r} is outside the workspace (a link leading out of it?).")
        if not self.allow_hidden and any(part.startswith(".") for part in real.relative_to(self.root).parts):
            raise SidebarError(403, f"{path!r} is hidden; the server is set not to serve hidden files.")
        return real

    def relative(self, real: Path) -> str:
        return real.relative_to(self.root).as_posix()


def _field(body: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    wrong = value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool))
    if wrong:
        raise SidebarError(400, f"`{name}` must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _made_below(folder: Path) -> tuple[Path, tuple[str, ...]]:
    """The deepest folder on the way to `folder` that exists, and the names of the folders below it still to make
    (none when `folder` exists): where a download's new file and folders start."""
    base = folder
    new: list[str] = []
    while not base.exists() and base.parent != base:
        new.insert(0, base.name)
        base = base.parent
    return base, tuple(new)


def _pull_name(item: ContainerFile) -> str:
    """The name `%container pull` takes for a container file: its path under /mnt/data."""
    path = item.path or item.name or ""
    return path.removeprefix(DATA_DIR + "/")


def _without_userinfo(url: str | None) -> str | None:
    """A base URL as the browser may see it: any `user:password@` taken out."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def container_json(box: Container, now: float) -> dict[str, Any]:
    """The container as the API sent it, plus what the panel shows: `expires_at` and `seconds_left`."""
    data = box.to_dict()
    data["expires_at"] = box.expires_at
    data["seconds_left"] = None if box.expires_at is None else max(0, int(box.expires_at - now))
    return data


def file_json(item: ContainerFile) -> dict[str, Any]:
    """The file entry as the API sent it, plus its `name` and `private`: cellbox's own files (its runtime, runs'
    requests and result records, pushed values under /mnt/data/.cellbox/), hidden by default as `%container files`
    hides them."""
    data = item.to_dict()
    data["name"] = item.name
    data["private"] = is_private(item)
    return data


def is_private(item: ContainerFile) -> bool:
    path = item.path or ""
    return path.startswith(f"{DATA_DIR}/{PRIVATE}/") or f"/{PRIVATE}/" in path


STOPPED = "The local server is stopped (`cellbox stop`): start it from the sidebar, or run a cell."

GONE = {
    "deleted": "This container was deleted; its files are gone.",
    "expired": "This container has expired; its files and Python state are gone.",
}


async def _gone(client: AsyncClient, container_id: str) -> SidebarError | None:
    """A 410 with one human line when the container expired or was deleted, decided by retrieving it (as
    `cellbox.session.sandbox.container_state` does), never by an error's wording; None when it is there."""
    try:
        box = await client.containers.retrieve(container_id)
    except NotFoundError:
        return SidebarError(404, "This container no longer exists (deleted); its files are gone.", 404)
    except BadRequestError as exc:  # an expired container answers every use with a 400
        return SidebarError(410, GONE["expired"]) if "expired" in str(exc).lower() else None
    return SidebarError(410, GONE[box.status]) if box.status in GONE else None


# Keys are fingerprinted with a secret of this process's own: a fingerprint seen anywhere can't be checked against
# guessed keys.
_FINGERPRINT_SALT = os.urandom(32)


def fingerprint(settings: Settings) -> tuple[str | None, ...]:
    """What tells one effective configuration from another: everything a client is built from, with the API key
    replaced by a salted hash of it (the secret itself is never part of the key)."""
    key = settings.api_key
    digest = hmac.new(_FINGERPRINT_SALT, key.encode(), hashlib.sha256).hexdigest() if key else None
    return (
        settings.base_url,
        settings.auth,
        digest,
        settings.oci_config_file,
        settings.oci_profile,
        settings.project,
        settings.model,
    )


class Clients:
    """One `AsyncClient` for the current configuration, shared by every call that uses it.

    A call leases the client for its settings (`async with clients.lease(settings) as client`). When the
    configuration changes (another base URL, auth kind or key, a local server restarted with a new token), a new
    client takes over and the old one is closed as soon as the last call using it is done. `aclose` closes
    them all, at server shutdown."""

    def __init__(self, factory: Callable[[Settings], AsyncClient]) -> None:
        self._factory = factory
        self._key: tuple[str | None, ...] | None = None
        self._current: AsyncClient | None = None
        self._leases: dict[AsyncClient, int] = {}  # every open client, current or retiring: calls using it

    @asynccontextmanager
    async def lease(self, settings: Settings) -> AsyncIterator[AsyncClient]:
        key = fingerprint(settings)
        retired = None
        if self._current is None or key != self._key:
            client = self._factory(settings)  # may fail (no key, no OCI config): the current client stays
            retired, self._current, self._key = self._current, client, key
            self._leases[client] = 0
        client = self._current
        self._leases[client] += 1
        try:
            if retired is not None and self._leases.get(retired) == 0:
                await self._close(retired)
            yield client
        finally:
            if client in self._leases:  # else `aclose` has closed it already
                self._leases[client] -= 1
                if client is not self._current and self._leases[client] == 0:
                    await self._close(client)

    async def _close(self, client: AsyncClient) -> None:
        del self._leases[client]
        await client.aclose()

    async def aclose(self) -> None:
        """Close every client, in use or not (the server is shutting down); a later lease makes a new one."""
        clients, self._leases, self._current, self._key = list(self._leases), {}, None, None
        for client in clients:
            await client.aclose()


class Sidebar:
    """The sidebar's operations. Each call resolves the settings afresh (a `cellbox serve` started or a
    config changed is picked up at once) and leases the one `AsyncClient` kept for those settings."""

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        *,
        autostart: bool = True,
        allow_hidden: bool = False,
        load: Callable[[], Settings] = load_settings,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.workspace = Workspace(root_dir, allow_hidden=allow_hidden)
        self.autostart = autostart
        self._load = load
        options = dict(client_options or {})
        self._clients = Clients(lambda settings: AsyncClient(settings=settings, **options))
        self._used_keys: set[str] = set()  # every key a call was sent with: never shown back (`secrets`)

    async def settings(self) -> Settings:
        found = self._load()
        if found.base_url or not self.autostart or self.server_stopped():
            return found
        # Nothing configured: the embedded local server, started if needed and shared with the kernels.
        return await asyncio.to_thread(backend.settings, True)

    def server_stopped(self) -> bool:
        """Whether the local server this sidebar would start was stopped by the user (`cellbox stop`): a refresh
        never starts it again; the user's Start (`start_server`) or a cell does."""
        return self.autostart and not self._load().base_url and endpoint.stopped(paths.endpoint_file())

    async def start_server(self) -> dict[str, Any]:
        """Start the local server (nothing else configured), stopped or not; the status once it serves."""
        if self._load().base_url or not self.autostart:
            raise SidebarError(409, "There is no local server to start: a backend is configured, or autostart is off.")
        endpoint.clear_stopped(paths.endpoint_file())
        await asyncio.to_thread(backend.settings, True)
        return await self.status()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncClient]:
        if self.server_stopped():
            raise SidebarError(503, STOPPED)
        settings = await self.settings()
        if settings.api_key:
            self._used_keys.add(settings.api_key)
        async with self._clients.lease(settings) as client:
            yield client

    def secrets(self) -> list[str]:
        """The keys this sidebar has sent and the one configured now: what its errors and logs must not show."""
        found = set(self._used_keys)
        try:
            key = self._load().api_key
        except Exception:  # a configuration that can't be read has no key to hide
            key = None
        if key:
            found.add(key)
        return sorted(found)

    async def aclose(self) -> None:
        """Close the clients kept for the calls (at server shutdown)."""
        await self._clients.aclose()

    # --- status -----------------------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """Which backend the sidebar talks to; never a secret (`api_key` says only whether one is set)."""
        found = await self.settings()  # with nothing configured: the local server, started as a list would
        described = found.describe()
        stopped = self.server_stopped()
        return {
            "version": __version__,
            "backend": "local" if stopped else described["backend"],
            "base_url": _without_userinfo(described["base_url"]),
            "auth": described["auth"],
            "api_key": described["api_key"],
            "project": described["project"],
            "autostart": self.autostart,
            "stopped": stopped,
            "workspace": str(self.workspace.root),
        }

    # --- containers -------------------------------------------------------------------------------------------

    async def list_containers(self) -> dict[str, Any]:
        if self.server_stopped():  # nothing to list, and no error: the sidebar offers to start it
            return {"data": [], "now": time.time(), "in_use": {}, "stopped": True}
        async with self.connect() as client:
            boxes = [box async for box in client.containers.list(order="desc")]
        now = time.time()
        return {"data": [container_json(box, now) for box in boxes], "now": now, "in_use": inuse.read()}

    async def create_container(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = (_field(body, "name", str) or "").strip()
        problem = names.container_name_problem(name)  # the form checks the same rule as it is typed
        if problem is not None:
            raise SidebarError(400, problem)
        memory = _field(body, "memory_limit", str)
        if memory is not None and memory not in MEMORY_LIMITS:
            raise SidebarError(400, f"memory_limit must be one of {', '.join(MEMORY_LIMITS)}; got {memory!r}")
        minutes = _field(body, "expires_after_minutes", int)
        async with self.connect() as client:
            # A name means one live container (as `Sandbox.create` and `%container new` have it).
            running = [b async for b in client.containers.list(name=name, order="desc") if b.name == name]
            running = [b for b in running if b.status in LIVE]
            if running:
                raise SidebarError(
                    409,
                    # Short first, the id last: the notification cuts long messages.
                    f'A container named "{name}" is already running: pick another name, or delete that one first '
                    f"({running[0].id}).",
                )
            box = await client.containers.create(name, memory_limit=memory, expires_after=minutes)
        return container_json(box, time.time())

    async def delete_container(self, container_id: str) -> dict[str, Any]:
        async with self.connect() as client:
            return (await client.containers.delete(container_id)).to_dict()

    # --- files ------------------------------------------------------------------------------------------------

    async def list_files(self, container_id: str, include_private: bool = False) -> dict[str, Any]:
        """The container's files sorted by path; cellbox's own only with `include_private`. A container that is
        gone is a 410 with one human line."""
        async with self.connect() as client:
            try:
                items = [item async for item in client.containers.files.list(container_id)]
            except (NotFoundError, BadRequestError) as exc:
                raise await _gone(client, container_id) or exc from None
        items.sort(key=lambda item: item.path or "")
        hidden = sum(1 for item in items if is_private(item))
        shown = items if include_private else [item for item in items if not is_private(item)]
        return {"data": [file_json(item) for item in shown], "hidden": 0 if include_private else hidden}

    async def delete_file(self, container_id: str, file_id: str) -> dict[str, Any]:
        async with self.connect() as client:
            return (await client.containers.files.delete(container_id, file_id)).to_dict()

    async def download(self, container_id: str, file_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Save a container file into workspace folder `directory` (default the root; made when missing with
        `make_folders`) under its own name, or `name`; an existing file is replaced only with `overwrite`. Code
        that would shadow a Python module there (`pandas.py`, a new folder `pandas/` holding Python files, a
        `.pth`) is refused, with the `%container pull --modules` line that saves it. Streamed, and written
        atomically."""
        folder = self.workspace.resolve(_field(body, "directory", str, ""))
        make = _field(body, "make_folders", bool, False) and not folder.exists()
        if not make and not folder.is_dir():
            raise SidebarError(404, f"no folder {self.workspace.relative(folder) or '/'!r} in the workspace")
        overwrite = bool(_field(body, "overwrite", bool, False))
        async with self.connect() as client:
            item = await client.containers.files.retrieve(container_id, file_id)
            name = _field(body, "name", str) or item.name
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise SidebarError(400, f"{name!r} is not a file name")
            target = self.workspace.resolve(posixpath.join(self.workspace.relative(folder), name))
            shown = self.workspace.relative(target)
            base, new = _made_below(folder)
            why = local_paths.shadows((*new, name), base)
            if why is not None:  # as a pull, which writes it only with --modules
                line = f"%container pull --modules {shlex.quote(_pull_name(item))}"
                raise SidebarError(400, f"{shown!r} can't be saved: {why}; in a notebook, `{line}` saves it")
            if make:
                folder.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise SidebarError(409, f"{shown!r} is a folder in the workspace")
            if target.exists() and not overwrite:
                raise SidebarError(409, f"{shown!r} already exists in the workspace")
            # The name may be the container's: written by the same rules as a pull (nothing planted meanwhile is
            # followed, a file that appeared meanwhile is not replaced).
            try:
                with local_paths.create(folder, (name,), hidden=self.workspace.allow_hidden, force=overwrite) as out:
                    async with client.containers.files.stream(container_id, file_id) as content:
                        async for chunk in content:
                            out.write(chunk)
            except local_paths.Refused as refused:
                if refused.kind == "existing":
                    raise SidebarError(409, f"{shown!r} already exists in the workspace") from None
                raise SidebarError(400, f"{shown!r} can't be saved: {refused.reason}") from None
        return {"path": shown, "bytes": (folder / name).stat().st_size}

    async def upload(self, container_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Upload workspace file `path` into the container, streamed from disk, where a push from the notebook in
        workspace folder `folder` (default the root) puts it (`transfer.landing`): `data/raw.csv` from that folder
        at /mnt/data/data/raw.csv, a file outside it by its name. The answer is the file entry, with `wanted`,
        where it was asked to be: a service that names uploads itself (OpenAI) may have stored it elsewhere."""
        path = _field(body, "path", str)
        if not path:
            raise SidebarError(400, "give the workspace `path` of the file to upload")
        source = self.workspace.resolve(path)
        if not source.is_file():
            if source.is_dir():
                raise SidebarError(400, f"{path!r} is a folder; upload a file")
            raise SidebarError(404, f"no file {path!r} in the workspace")
        base = self.workspace.resolve(_field(body, "folder", str, ""))
        overwrite = bool(_field(body, "overwrite", bool, False))
        remote = landing(source, base)
        if remote.split("/", 1)[0] == PRIVATE:
            raise SidebarError(400, f"{path!r} would land in {DATA_DIR}/{PRIVATE}, which is cellbox's own")
        target = f"{DATA_DIR}/{remote}"
        async with self.connect() as client:
            existing = [item async for item in client.containers.files.list(container_id) if item.path == target]
            if existing and not overwrite:
                raise SidebarError(409, f"{target} already exists in the container")
            uploaded = await client.containers.files.create(container_id, source, filename=remote)
            for item in existing:  # replaced: the old file entry goes, unless the backend reused it
                if item.id != uploaded.id:
                    with contextlib.suppress(NotFoundError):
                        await client.containers.files.delete(container_id, item.id)
            return {**file_json(uploaded), "wanted": target}
