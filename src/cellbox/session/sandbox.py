"""`Sandbox`: a session with one container — create or attach, push data, run code, pull results, revive.

The session composes three parts and owns the container's lifecycle: `transfer` moves the bytes (pushes with their
manifest, pulls), `remote_files` reads what a run leaves, and `running` drives a run
(the request, the response that runs it, the result record). They share one `ContainerLink`: the current container
(a revived session has a new one) and the one way to call the API on it, where "the container is gone" becomes
`SandboxGone`.

How each run's tool reaches the container is the client's binding (`binding.py`): by its id, the container made
with `POST /containers`; or `auto`, the container made by a first response and reused along the chain of
responses. A backend that refuses the id moves the session to an auto container at its first run, once.

The session knows which values pushed into the container its kernel has yet to load (`pending`): those pushed
since the last run, or all of them again in a revived container. Each run is handed them, and once it has loaded
them they are forgotten.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..api import BadRequestError, CellboxError, Client, Container, ContainerFile, NotFoundError
from ..api.lookup import NameTaken, NoSuchContainer, find_container, live_named
from ..boundary.local_paths import Pulled
from ..common.polling import Backoff
from . import backend, binding, protocol
from .errors import NotAuthorized
from .link import ContainerLink
from .liveness import container_state
from .progress import Operation, TrackerFactory
from .remote_files import RemoteFiles
from .results import Run, Usage
from .running import Runner, stopping
from .transfer import Inputs, Pushed, Transfers

__all__ = ["Sandbox"]

DELETE_WAIT = 10.0  # seconds a deleted container may take to stop being listed as running


class Sandbox:
    """A container plus what cellbox knows about it. Use `create`, `attach` or `get_or_create`."""

    def __init__(
        self, client: Client, container: Container, *, model: str | None = None, chain: str | None = None
    ) -> None:
        self.client = client
        self.link = ContainerLink(client, container, binding=client.container_binding, chain=chain)
        self.transfers = Transfers(self.link)
        self.remote_files = RemoteFiles(self.link, self.transfers.cache)
        self.runner = Runner(
            self.link, self.transfers, self.remote_files, model=model or backend.model_for(client.settings)
        )
        self._unloaded: Inputs = {}  # values pushed that the container's kernel has yet to load
        self._owns_client = False
        self._made = False  # whether this sandbox made its container (an attached one is someone's)
        self._options: dict[str, Any] = {"memory_limit": container.memory_limit}
        self._untold: list[str] = []  # notes for the next run's: what making its container could not do

    # --- making and finding -----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str | None = None,
        *,
        memory_limit: str | None = None,
        expires_after: int | None = None,
        client: Client | None = None,
        trust_output: bool = False,
    ) -> Sandbox:
        """A new container. A name means one live container: when one of that name is running this raises
        `NameTaken` (which carries it) instead of making a second; `get_or_create` uses it, `attach` too.
        `trust_output` shows what its code displays unchanged (see `Sandbox.trust_output`)."""
        owns = client is None
        client = client or backend.connect()
        if name:
            running = live_named(client, name)
            if running:
                if owns:
                    client.close()
                raise NameTaken(
                    f"a container named {name!r} is already running ({running[0].id}); "
                    f"Sandbox.get_or_create({name!r}) or Sandbox.attach({name!r}) uses it, or delete it first.",
                    running[0],
                )
        chain = None
        try:
            if client.container_binding == "auto":
                box, chain = binding.start(client, backend.model_for(client.settings), memory_limit)
            else:
                box = client.containers.create(
                    name or f"cellbox-{uuid.uuid4().hex[:8]}", memory_limit=memory_limit, expires_after=expires_after
                )
        except BaseException:
            if owns:
                client.close()
            raise
        sandbox = cls(client, box, chain=chain)
        sandbox.link.name = name if chain is not None else None
        sandbox._owns_client = owns
        sandbox._made = True
        sandbox._options = {"memory_limit": memory_limit, "expires_after": expires_after}
        if chain is not None:
            sandbox._note_auto_expiry()
        sandbox.trust_output = trust_output
        return sandbox

    @classmethod
    def attach(
        cls, id_or_name: str, *, client: Client | None = None, trust_output: bool = False, running_only: bool = False
    ) -> Sandbox:
        """The container with this id, or the live one with this name (several: `AmbiguousName`, listing their
        ids); a name no live container has finds the newest gone one, which `revive` makes anew (with
        `running_only`, `NoSuchContainer` instead)."""
        owns = client is None
        client = client or backend.connect()
        try:
            found = find_container(client, id_or_name, running_only=running_only)
        except BaseException:
            if owns:  # nothing to hand the client to: a failed lookup must not leave it open
                client.close()
            raise
        sandbox = cls(client, found)
        sandbox._owns_client = owns
        sandbox.trust_output = trust_output
        return sandbox

    @classmethod
    def get_or_create(cls, name: str, **options: Any) -> Sandbox:
        """The live container named `name`, else a new one of that name."""
        given = options.pop("client", None)
        client = given or backend.connect()
        try:
            try:
                sandbox = cls(client, find_container(client, name, running_only=True))
                sandbox.trust_output = bool(options.get("trust_output"))
            except NoSuchContainer:
                sandbox = cls.create(name, client=client, **options)
        except BaseException:
            if given is None:
                client.close()
            raise
        sandbox._owns_client = given is None
        return sandbox

    @staticmethod
    def default_client() -> Client:
        """A client for the configured backend (the local server, started if needed, when none is)."""
        return backend.connect()

    @property
    def container(self) -> Container:
        """The container's record as last fetched (`refresh`); a new one once revived."""
        return self.link.container

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def name(self) -> str | None:
        """The container's name; for an auto container, which the service names, the name it was made with (known
        to this sandbox only: another process can't find it by that name)."""
        return self.link.name or self.container.name

    @property
    def model(self) -> str:
        """The model asked to run each cell (it must support the code_interpreter tool)."""
        return self.runner.model

    @model.setter
    def model(self, model: str) -> None:
        self.runner.model = model

    @property
    def trust_output(self) -> bool:
        """Whether what this sandbox's code displays is shown unchanged. False (the default): its HTML is
        sanitized, and JavaScript, widget views and types that could run script are left out, so the code in the
        container can't act in the user's page (README: "Security model"). True is for a sandbox that runs only
        the user's own code: then its output can do whatever the user's own output could."""
        return self.runner.trust_output

    @trust_output.setter
    def trust_output(self, trusted: bool) -> None:
        self.runner.trust_output = bool(trusted)

    @property
    def usage(self) -> Usage | None:
        """The model tokens every cell of this session has cost so far (None before any backend reported usage)."""
        return self.runner.usage

    @property
    def manifest(self) -> dict[str, Pushed]:
        """What was pushed, by remote path (relative to /mnt/data)."""
        return self.transfers.manifest

    @property
    def pending(self) -> Inputs:
        """Variables pushed since the last run (name -> remote path), loaded at the next run."""
        return self._unloaded

    @property
    def progress(self) -> TrackerFactory | None:
        """Shows long pushes, pulls and values read back from runs (the magics set it); None shows nothing."""
        return self.transfers.progress

    @progress.setter
    def progress(self, factory: TrackerFactory | None) -> None:
        self.transfers.progress = self.remote_files.progress = factory

    def __repr__(self) -> str:
        return f"Sandbox(id={self.id!r}, name={self.name!r}, status={self.container.status!r})"

    def refresh(self) -> Container:
        """Fetch the container's current record (status, last activity)."""
        self.link.container = self.link.call(self.client.containers.retrieve, self.id)
        return self.container

    def delete(self) -> None:
        """Delete the container and confirm it is gone (a retrieve that answers 404, or status deleted)."""
        try:
            self.client.containers.delete(self.id)
        except (NotFoundError, BadRequestError) as exc:  # already gone, expired, or not ours to see
            if container_state(self.client, self.id) == "unauthorized":
                raise NotAuthorized(f"can't delete container {self.name or self.id} ({self.id}): {exc}") from None
        pause = Backoff(DELETE_WAIT, first=0.2)
        while (state := container_state(self.client, self.id)) != "gone":
            if state == "unauthorized" or not pause.wait():
                raise CellboxError(
                    f"container {self.name or self.id} ({self.id}) was deleted but the backend still shows it "
                    f"({state}) after {DELETE_WAIT:.0f}s; check with `cellbox ls` and delete it again."
                )
        self.close()

    def close(self) -> None:
        """Forget local state (the manifest, cached copies) and close the client if this sandbox made it; cellbox's
        own leftovers of the last cells are deleted first (with an auto container, the response its chain would
        have continued from too: no run can follow)."""
        self.runner.cleanup.wait()
        if self.link.chain is not None:
            with contextlib.suppress(CellboxError):
                self.client.responses.delete(self.link.chain)
            self.link.chain = None
        self.transfers.close()
        self._unloaded.clear()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def revive(self) -> Sandbox:
        """A new container with the same name and options, with everything in the manifest pushed again. The old
        one is deleted first (best effort: it is usually gone already). With an auto container, the new one starts
        a new chain of responses (`binding.start`: one billed response)."""
        with contextlib.suppress(CellboxError):
            self.client.containers.delete(self.id)
        if self.client.container_binding == "auto":
            self._start_auto()
        else:
            self.link.container = self.client.containers.create(self.name or "cellbox", **self._options)
            self._made = True
        for var, remote in self.transfers.push_again().items():
            self._unloaded.setdefault(var, remote)
        return self

    def _start_auto(self) -> None:
        """The session's container is now a new auto container; the old chain's last response is deleted."""
        old = self.link.chain
        memory_limit = self._options.get("memory_limit") or self.container.memory_limit
        container, chain = binding.start(self.client, self.model, memory_limit)
        self.link.bind_auto(container, chain)
        self._made = True
        self._note_auto_expiry()
        if old is not None:
            with contextlib.suppress(CellboxError):
                self.client.responses.delete(old)

    def _note_auto_expiry(self) -> None:
        minutes = self._options.get("expires_after")
        if minutes is not None:  # the tool's auto container takes a memory limit, and no expiry [Doc]
            expiry = self.container.expires_after
            own = f" ({expiry.minutes} minutes after its last use)" if expiry and expiry.minutes else ""
            self._untold.append(
                f"an expiry of {minutes} minutes can't be set on an auto container: the service's own applies{own}"
            )

    def _to_auto(self, refusal: str | None) -> str:
        """Move this session from its container (named by id in the tool) to a new auto container, with everything
        in the manifest pushed again; the old container is deleted if this sandbox made it (an attached one, and
        what is in it, is left as it is). Returns the note that says so."""
        old = f"{self.link.label} ({self.id})"
        self.link.name = self.name
        self.client.container_binding = "auto"
        if self._made:
            with contextlib.suppress(CellboxError):
                self.client.containers.delete(self.id)
        else:
            old += ", left as it is"
        self._start_auto()
        for var, remote in self.transfers.push_again().items():
            self._unloaded.setdefault(var, remote)
        why = (
            f"the backend refused a container id in the code_interpreter tool ({refusal})"
            if refusal is not None
            else "the backend refuses a container id in the code_interpreter tool"
        )
        return (
            f"{why}, so this sandbox moved from {old} to an auto container, {self.id}, reused along a chain of "
            "responses (its first one billed); what you pushed was sent again, earlier cells' variables are not "
            "there. Sandboxes of this client bind auto containers from now on; CELLBOX_CONTAINER_BINDING=auto does "
            "so from the start"
        )

    # --- data in and out ----------------------------------------------------------------------------------------

    def push(self, *items: Any, name: str | None = None, to: str | None = None) -> list[str]:
        """Send values or files. A DataFrame/Series/JSON value needs `name` (its variable in the container);
        paths, folders and globs land under /mnt/data (or `to`), at their path from the current folder when they
        are in it (`data/raw.csv` at /mnt/data/data/raw.csv), else by their name (`transfer.landing`). Returns the
        remote paths; unchanged data is not sent again."""
        sent = self.transfers.push(*items, name=name, to=to)
        self._unloaded.update(sent.inputs)
        return sent.remotes

    def files(self, *, include_private: bool = False) -> list[ContainerFile]:
        return self.transfers.files(include_private=include_private)

    def pull(
        self, *patterns: str, to: str | Path = ".", hidden: bool = False, force: bool = False, modules: bool = False
    ) -> Pulled:
        """Download the files matching these globs (relative to /mnt/data) into folder `to`, each at its path
        under /mnt/data. Hidden files (any part of the path starting with ".") come only with `hidden`; code that
        would shadow a Python module (`pandas.py`, `sitecustomize.py`, a package folder `pandas/`, any `.pth`) only
        with `modules`, even when named exactly; an existing file is replaced only with `force`; nothing is written
        outside `to`. Returns the files written (a list of paths); `.note` says in one line what was skipped."""
        return self.transfers.pull(*patterns, to=to, hidden=hidden, force=force, modules=modules)

    # --- run ----------------------------------------------------------------------------------------------------

    def run(
        self,
        code: str,
        *,
        inputs: dict[str, Any] | None = None,
        outputs: Sequence[str] = (),
        files: Sequence[str] = (),
        pull: Sequence[str] = (),
        to: str | Path = ".",
        hidden: bool = False,
        force: bool = False,
        modules: bool = False,
        timeout: float | None = None,
        live: protocol.LiveOutput | None = None,
        on_wait: Callable[[float], None] | None = None,
        execution_count: int | None = None,
        operation: Operation | None = None,
    ) -> Run:
        """Run `code` in the container. `inputs` are pushed as variables first, `files` as files; `outputs` name
        variables to bring back (`Run.variables`); `pull` globs of files to download into `to` afterwards (`hidden`,
        `force` and `modules` as for `pull`; what was skipped is said in `Run.notes`).

        `timeout` bounds the run (not the pushes or pulls): past it the run is stopped and `TimeLimit` raised. With
        `live`, what the cell prints and displays is read while it runs and handed to it (the rest, once the run is
        read, by `live.finish(run.events)`); `on_wait` is called with the seconds the run has taken at every look
        while it runs (about four a second). An interrupt raises `Interrupted`, saying what was stopped: a push, the
        run or a pull. `execution_count` is the notebook cell's number: tracebacks then name the cell `In[N]`, as
        IPython names a local one. `operation` is the user's action this run is part of (a notebook cell's
        progress line): its pushes, the reading of its values and its pulls are phases of it; without one each is
        an operation of its own, shown through `progress`."""
        with stopping("a push before the cell ran; the cell did not run"):
            for var, value in (inputs or {}).items():  # each kept as it is sent: a failed push keeps the earlier ones
                self._unloaded.update(self.transfers.push(value, name=var, operation=operation).inputs)
            if files:
                self.transfers.push(*files, operation=operation)
        moved = None
        if self.link.binding == "id" and self.client.container_binding == "auto":  # another sandbox learnt it
            with stopping("moving to an auto container before the cell ran; the cell did not run"):
                moved = self._to_auto(None)
        with self.runner.cleanup.running():  # the leftovers of earlier cells wait: deleting them now would slow this
            for attempt in (1, 2):
                try:
                    ran = self.runner.run(
                        code,
                        inputs=dict(self._unloaded),
                        outputs=outputs,
                        timeout=timeout,
                        live=live,
                        on_wait=on_wait,
                        execution_count=execution_count,
                    )
                    break
                except binding.IdRefused as refused:
                    if attempt == 2:
                        raise
                    with stopping("moving to an auto container before the cell ran; the cell did not run"):
                        moved = self._to_auto(refused.refusal.message)
            self._unloaded.clear()  # the runtime loaded them
            run = self.runner.read(ran, operation)
        run.notes[:0] = [*([moved] if moved is not None else []), *self._untold]
        self._untold = []
        if pull:
            with stopping("a pull after the cell ran; the cell ran, some files may not have been downloaded"):
                pulled = self.transfers.pull(
                    *pull, to=to, hidden=hidden, force=force, modules=modules, operation=operation
                )
            if pulled.note:
                run.notes.append(pulled.note)
        return run
