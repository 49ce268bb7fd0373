"""`Sandbox`: a session with one container — create or attach, push data, run code, pull results, revive.

The session composes two parts and owns the container's lifecycle: `cellbox.protocol` says how a run travels
(request, loader line, check of the code the model ran, result record), `cellbox.transfer` moves the bytes
(pushes with their manifest, pulls, a run's files). Every API call goes through `Sandbox._call`, the one place
where "the container is gone" becomes `SandboxGone`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import backend, protocol
from .api import (
    APIError,
    APIStatusError,
    BadRequestError,
    CellboxError,
    Client,
    Container,
    ContainerFile,
    NotFoundError,
)
from .api.lookup import NoSuchContainer, find_container
from .progress import TrackerFactory
from .protocol import loader_line
from .results import Run, SandboxGone
from .transfer import Pushed, Transfers

__all__ = ["Sandbox"]

GONE_STATUSES = ("expired", "deleted")


class Sandbox:
    """A container plus what cellbox knows about it. Use `create`, `attach` or `get_or_create`."""

    def __init__(self, client: Client, container: Container, *, model: str | None = None) -> None:
        self.client = client
        self.container = container
        self.model = model or backend.model_for(client.settings)
        self.transfers = Transfers(client, lambda: self.container, self._call)
        self._owns_client = False
        self._options: dict[str, Any] = {"memory_limit": container.memory_limit}

    # --- making and finding -----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str | None = None,
        *,
        memory_limit: str | None = None,
        expires_after: int | None = None,
        client: Client | None = None,
    ) -> Sandbox:
        owns = client is None
        client = client or backend.connect()
        box = client.containers.create(
            name or f"cellbox-{uuid.uuid4().hex[:8]}", memory_limit=memory_limit, expires_after=expires_after
        )
        sandbox = cls(client, box)
        sandbox._owns_client = owns
        sandbox._options = {"memory_limit": memory_limit, "expires_after": expires_after}
        return sandbox

    @classmethod
    def attach(cls, id_or_name: str, *, client: Client | None = None) -> Sandbox:
        owns = client is None
        client = client or backend.connect()
        sandbox = cls(client, find_container(client, id_or_name))
        sandbox._owns_client = owns
        return sandbox

    @classmethod
    def get_or_create(cls, name: str, **options: Any) -> Sandbox:
        given = options.pop("client", None)
        client = given or backend.connect()
        try:
            sandbox = cls(client, find_container(client, name, running_only=True))
        except NoSuchContainer:
            sandbox = cls.create(name, client=client, **options)
        sandbox._owns_client = given is None
        return sandbox

    @staticmethod
    def default_client() -> Client:
        """A client for the configured backend (the local server, started if needed, when none is)."""
        return backend.connect()

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def name(self) -> str | None:
        return self.container.name

    @property
    def manifest(self) -> dict[str, Pushed]:
        """What was pushed, by remote path (relative to /mnt/data)."""
        return self.transfers.manifest

    @property
    def pending(self) -> dict[str, str]:
        """Variables pushed since the last run (name -> remote path), loaded at the next run."""
        return self.transfers.pending

    @property
    def progress(self) -> TrackerFactory | None:
        """Shows long pushes and pulls (the magics set it); None shows nothing."""
        return self.transfers.progress

    @progress.setter
    def progress(self, factory: TrackerFactory | None) -> None:
        self.transfers.progress = factory

    def __repr__(self) -> str:
        return f"Sandbox(id={self.id!r}, name={self.name!r}, status={self.container.status!r})"

    def refresh(self) -> Container:
        """Fetch the container's current record (status, last activity)."""
        self.container = self._call(self.client.containers.retrieve, self.id)
        return self.container

    def delete(self) -> None:
        with contextlib.suppress(NotFoundError):
            self.client.containers.delete(self.id)
        self.close()

    def close(self) -> None:
        """Forget local state (the manifest, cached copies) and close the client if this sandbox made it."""
        self.transfers.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def revive(self) -> Sandbox:
        """A new container with the same name and options, with everything in the manifest pushed again."""
        self.container = self.client.containers.create(self.name or "cellbox", **self._options)
        self.transfers.push_again()
        return self

    # --- data in and out ----------------------------------------------------------------------------------------

    def push(self, *items: Any, name: str | None = None, to: str | None = None) -> list[str]:
        """Send values or files. A DataFrame/Series/JSON value needs `name` (its variable in the container);
        paths, folders and globs land under /mnt/data (or `to`). Returns the remote paths; unchanged data is
        not sent again."""
        return self.transfers.push(*items, name=name, to=to)

    def files(self, *, include_private: bool = False) -> list[ContainerFile]:
        return self.transfers.files(include_private=include_private)

    def pull(self, *patterns: str, to: str | Path = ".") -> list[Path]:
        """Download the files matching these globs (relative to /mnt/data) into folder `to`."""
        return self.transfers.pull(*patterns, to=to)

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
        timeout: float | None = None,
    ) -> Run:
        """Run `code` in the container. `inputs` are pushed as variables first, `files` as files; `outputs` name
        variables to bring back (`Run.variables`); `pull` globs of files to download into `to` afterwards."""
        for var, value in (inputs or {}).items():
            self.push(value, name=var)
        if files:
            self.push(*files)
        request = protocol.Request.new(code, inputs=self.transfers.input_specs(), variables=outputs)
        runtime = self.transfers.runtime()
        uploaded = self.transfers.upload(request.body(), request.filename)
        loader = loader_line(runtime, uploaded.path or "")
        response = self._call(
            self.client.responses.create,
            model=self.model,
            input=protocol.run_prompt(loader),
            container=self.id,
            tool_choice="required",
            timeout=timeout,
        )
        logs = protocol.checked_logs(response.code_interpreter_calls, loader, self.model)
        self.transfers.pending.clear()
        record = protocol.result_from_logs(logs)
        if record is None:
            record = self._result_file(request.result_path, logs)
        run = self.transfers.collect(protocol.Result.parse(record))
        if pull:
            self.pull(*pull, to=to)
        return run

    def _result_file(self, path: str, logs: str) -> dict[str, Any]:
        content = self.transfers.content_at(path)
        if content is None:
            raise CellboxError(
                f"the run left no result record ({path}); the container may have restarted mid-run. "
                f"Output it printed:\n{logs[-2000:]}"
            )
        record: dict[str, Any] = json.loads(content)
        return record

    # --- errors ---------------------------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API, turning "the container is gone" into one clear error."""
        try:
            return fn(*args, **kwargs)
        except (NotFoundError, BadRequestError) as exc:
            if _is_gone(exc, lambda: self.client.containers.retrieve(self.id)):
                raise SandboxGone(
                    f"container {self.name or self.id} ({self.id}) has expired or was deleted. "
                    "Call revive() (the next %%container cell does it for you) to make a new one with the same "
                    "data pushed again."
                ) from None
            raise


def _is_gone(exc: APIStatusError, retrieve: Callable[[], Container]) -> bool:
    """Whether a 400/404 means the container itself is gone (expired or deleted).

    Decided by the API's error code and parameter, or, when those don't say, by asking for the container; never by
    the message's wording, which names the container for a missing file too ("No container file found", "File
    cfile_… not found on container cntr_…")."""
    if exc.code == "container_expired":
        return True
    if isinstance(exc, NotFoundError) and exc.param == "container_id":
        return True
    try:
        container = retrieve()
    except (NotFoundError, BadRequestError):  # 404 unknown, or 400 "Container is expired." for any use of it
        return True
    except APIError:  # can't tell: the original error stands
        return False
    return container.status in GONE_STATUSES
