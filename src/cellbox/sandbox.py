"""`Sandbox`: a session with one container — create or attach, push data, run code, pull results, revive.

The session composes two parts and owns the container's lifecycle: `cellbox.protocol` says how a run travels
(request, loader line, check of the code the model ran, result record), `cellbox.transfer` moves the bytes
(pushes with their manifest, pulls, a run's files). Every API call goes through `Sandbox._call`, the one place
where "the container is gone" becomes `SandboxGone`.

"Gone" is decided by retrieving the container (404, or status expired or deleted), never by a 404 on something
else: OCI answers 404 NotAuthorizedOrNotFound when authorization fails ([Obs], shared/reference/
cloud-behaviour.md), so that answer is checked against a listing, and an authorization failure is said as one.
A run is a `background: true` response where the backend takes it ([Doc]: only those can be polled and
cancelled): polled with backoff, cancelled on interrupt or when the run's time limit passes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import backend, protocol
from .api import (
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CellboxError,
    Client,
    Container,
    ContainerFile,
    NotFoundError,
    PermissionDeniedError,
    Response,
)
from .api.lookup import NameTaken, NoSuchContainer, find_container, live_named
from .progress import TrackerFactory
from .protocol import loader_line
from .results import Interrupted, Run, SandboxGone, TimeLimit
from .transfer import Backoff, Pushed, Transfers

__all__ = ["Sandbox"]

log = logging.getLogger("cellbox")

GONE_STATUSES = ("expired", "deleted")
PENDING_STATUSES = ("queued", "in_progress")
OCI_AUTH_OR_MISSING = "NotAuthorizedOrNotFound"
DELETE_WAIT = 10.0  # seconds a deleted container may take to stop being listed as running
CANCEL_TIMEOUT = 10.0


class NotAuthorized(CellboxError):
    """The backend refused access to the container (OCI says so with a 404 NotAuthorizedOrNotFound)."""


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
        """A new container. A name means one live container: when one of that name is running this raises
        `NameTaken` (which carries it) instead of making a second; `get_or_create` uses it, `attach` too."""
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
        try:
            box = client.containers.create(
                name or f"cellbox-{uuid.uuid4().hex[:8]}", memory_limit=memory_limit, expires_after=expires_after
            )
        except BaseException:
            if owns:
                client.close()
            raise
        sandbox = cls(client, box)
        sandbox._owns_client = owns
        sandbox._options = {"memory_limit": memory_limit, "expires_after": expires_after}
        return sandbox

    @classmethod
    def attach(cls, id_or_name: str, *, client: Client | None = None) -> Sandbox:
        """The container with this id, or the live one with this name (several: `AmbiguousName`, listing their
        ids); a name no live container has finds the newest gone one, which `revive` makes anew."""
        owns = client is None
        client = client or backend.connect()
        try:
            found = find_container(client, id_or_name)
        except BaseException:
            if owns:  # nothing to hand the client to: a failed lookup must not leave it open
                client.close()
            raise
        sandbox = cls(client, found)
        sandbox._owns_client = owns
        return sandbox

    @classmethod
    def get_or_create(cls, name: str, **options: Any) -> Sandbox:
        """The live container named `name`, else a new one of that name."""
        given = options.pop("client", None)
        client = given or backend.connect()
        try:
            try:
                sandbox = cls(client, find_container(client, name, running_only=True))
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
        """Forget local state (the manifest, cached copies) and close the client if this sandbox made it."""
        self.transfers.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def revive(self) -> Sandbox:
        """A new container with the same name and options, with everything in the manifest pushed again. The old
        one is deleted first (best effort: it is usually gone already)."""
        with contextlib.suppress(CellboxError):
            self.client.containers.delete(self.id)
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
        live: protocol.LiveOutput | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Run:
        """Run `code` in the container. `inputs` are pushed as variables first, `files` as files; `outputs` name
        variables to bring back (`Run.variables`); `pull` globs of files to download into `to` afterwards.

        `timeout` bounds the run (not the pushes or pulls): past it the run is stopped and `TimeLimit` raised.
        With `live`, what the cell prints and displays is read while it runs and handed to it (the rest, once the
        run is read, by `live.finish(run.events)`); `on_wait` is called with the seconds the run has taken at
        every poll. An interrupt raises `Interrupted`, saying what was stopped: a push, the run or a pull."""
        with _stopping("a push before the cell ran; the cell did not run"):
            for var, value in (inputs or {}).items():
                self.push(value, name=var)
            if files:
                self.push(*files)
        moves = self.transfers.take_placements()
        request = protocol.Request.new(
            code,
            inputs=self.transfers.input_specs(),
            variables=outputs,
            place=moves,
            restore=self.transfers.restore_specs(),
        )
        try:
            with _stopping("the upload of the cell before it ran; the cell did not run"):
                runtime = self.transfers.runtime()
                uploaded = self.transfers.upload_private(request.body(), request.filename)
        except BaseException:
            self.transfers.restore_placements()
            raise
        loader = loader_line(runtime, uploaded.path or "")
        watch = None
        if live is not None:
            watch = functools.partial(self._watch, live, uploaded.id, on_wait)
        try:
            record, notes = self._run_loader(request, loader, timeout, watch)
        except BaseException:
            self.transfers.restore_placements()  # moved already if the run started: the runtime skips them
            raise
        finally:
            self.transfers.delete_private(uploaded)  # read by the runtime at its start; not the user's
        self.transfers.pending.clear()
        with _stopping("reading the cell's results; the cell ran, its variables are in the container"):
            run = self.transfers.collect(protocol.Result.parse(record))
        run.notes[:0] = notes
        if pull:
            with _stopping("a pull after the cell ran; the cell ran, some files may not have been downloaded"):
                self.pull(*pull, to=to)
        return run

    def _watch(
        self, live: protocol.LiveOutput, file_id: str, on_wait: Callable[[float], None] | None, elapsed: float
    ) -> None:
        """One look at a running cell: the live output it added since the last look, then `on_wait`."""
        with contextlib.suppress(CellboxError):  # live output is a courtesy: the record has everything
            live.feed(self.transfers.read_from(file_id, live.offset))
        if on_wait is not None:
            on_wait(elapsed)

    def _run_loader(
        self,
        request: protocol.Request,
        loader: str,
        timeout: float | None,
        watch: Callable[[float], None] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """Ask the model to run the loader (again, once, when it did not start the run); the result record and
        notes for the user. A model that ran other code is refused: the container's state is then uncertain."""
        notes: list[str] = []
        for attempt in (1, 2):
            response = self._respond(loader, timeout, watch)
            reading = protocol.read_response(response, loader)
            if reading.foreign:
                raise protocol.deviation(reading.foreign, self.model, reading.started)
            if reading.record is not None or reading.started:
                if response.status not in (None, "completed"):
                    notes.extend(reading.problems)
                record = reading.record or self._result_file(request.result_path, reading.problems)
                return record, notes
            said = "; ".join(reading.problems) or "the model did not run the cell"
            if container_state(self.client, self.id) == "gone":  # e.g. deleted while it ran
                raise self._gone() from None
            if attempt == 1 and response.status not in ("failed", "cancelled"):
                log.info("cellbox: %s; asking the model again", said)
                continue
            raise protocol.RunFailed(
                f"the cell did not run: {said}."
                + (" Asked twice." if attempt == 2 else "")
                + f" Check that CELLBOX_MODEL ({self.model}) supports the code_interpreter tool."
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _respond(self, loader: str, timeout: float | None, watch: Callable[[float], None] | None = None) -> Response:
        """One response running the loader: in the background where the backend allows it (polled with
        backoff, cancelled on interrupt or past `timeout`), else waited for in one request."""
        refused = self.client.refused_parameters.get(("/responses", self.model), set())
        background = "background" not in refused
        options = protocol.request_options(
            reasoning_effort=self.client.settings.reasoning_effort, background=background
        )
        response: Response | None = None
        started = time.monotonic()
        try:
            response = self._call(
                self.client.responses.create,
                model=self.model,
                input=protocol.run_prompt(loader),
                container=self.id,
                timeout=None if background else timeout,
                **options,
            )
            # Quick first looks (a short cell is done in milliseconds), then at most POLL_MOST apart while output
            # is watched (it shows within half a second), else up to a second.
            pause = Backoff(float("inf"), first=0.005, most=POLL_MOST if watch else 1.0)
            while response.status in PENDING_STATUSES:
                elapsed = time.monotonic() - started
                if timeout is not None and elapsed > timeout:
                    stopped = self._cancel(response)
                    raise TimeLimit(_time_limit(timeout, stopped))
                pause.wait()
                if watch is not None:
                    watch(time.monotonic() - started)
                response = self._call(self.client.responses.retrieve, response.id)
        except APITimeoutError:
            if timeout is None or background:
                raise
            raise TimeLimit(_time_limit(timeout, None)) from None
        except KeyboardInterrupt:
            if response is not None and response.status in PENDING_STATUSES:
                stopped = self._cancel(response)
                raise Interrupted(
                    "the cell was stopped while it ran; the container keeps its state up to where the code stopped"
                    if stopped
                    else "the cell was running and cancelling it failed: it may still be running in the container"
                ) from None
            how = (
                "this backend runs cells in the foreground (it refused background responses), so they can't be "
                "cancelled"
                if not background
                else "the interrupt came before the backend answered"
            )
            raise Interrupted(f"the cell may still be running in the container: {how}") from None
        finally:
            if response is not None and options.get("store") and response.status not in PENDING_STATUSES:
                self._forget_response(response)
        return response

    def _cancel(self, response: Response) -> bool:
        try:
            cancelled = self.client.responses.cancel(response.id)
        except CellboxError as exc:
            log.warning("cellbox: could not cancel response %s: %s", response.id, exc)
            return False
        return cancelled.status not in PENDING_STATUSES

    def _forget_response(self, response: Response) -> None:
        """A stored (background) response, deleted once read: best effort."""
        with contextlib.suppress(CellboxError):
            self.client.responses.delete(response.id)

    def _result_file(self, path: str, problems: list[str]) -> dict[str, Any]:
        """The result record from its file, for a run whose logs did not carry it (too big to print, or a
        backend that sends no outputs); the listing is polled, as it may lag."""
        content = self.transfers.content_at(path, wait=protocol.RESULT_WAIT)
        if content is None:
            said = f" ({'; '.join(problems)})" if problems else ""
            raise CellboxError(
                f"the run started but left no result record ({path}){said}; it may still be running, or the "
                f"container restarted mid-run. {protocol.START_CLEAN}"
            )
        record: dict[str, Any] = json.loads(content)
        return record

    # --- errors ---------------------------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API, turning "the container is gone" into one clear error, and an authorization failure
        into another."""
        try:
            return fn(*args, **kwargs)
        except (NotFoundError, BadRequestError) as exc:
            state = container_state(self.client, self.id)
            if state == "gone":
                raise self._gone() from None
            if state == "unauthorized":
                raise NotAuthorized(
                    f"the backend refused access to container {self.name or self.id} ({self.id}): {exc} "
                    "This is an authorization failure, not a missing container: check the credentials' policy and "
                    "CELLBOX_PROJECT."
                ) from None
            raise

    def _gone(self) -> SandboxGone:
        return SandboxGone(
            f"container {self.name or self.id} ({self.id}) has expired or was deleted. "
            "Sandbox.revive() makes a new one with the same data pushed again (in a notebook, the next %%container "
            "cell does it for you)."
        )


POLL_MOST = 0.25  # seconds between looks at a running cell whose output is watched


def _time_limit(timeout: float, stopped: bool | None) -> str:
    limit = f"{timeout:g} s"
    if stopped is None:
        return (
            f"the cell was stopped after {limit} (its time limit); this backend runs cells in the foreground, so "
            "its code may still be running in the container"
        )
    if stopped:
        return (
            f"the cell was stopped after {limit} (its time limit); the container keeps its state up to where the "
            "code stopped. Give it longer with --timeout (timeout=)."
        )
    return f"the cell ran past its time limit ({limit}) and stopping it failed: it may still be running"


@contextlib.contextmanager
def _stopping(what: str) -> Iterator[None]:
    """An interrupt in this block says what it stopped (an Interrupted raised deeper already does)."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(f"stopped {what}") from None


def container_state(client: Client, container_id: str) -> str:
    """`gone` (expired or deleted), `present`, `unauthorized` or `unknown`, decided by retrieving the container.

    Never by an error on something else, nor by any message's wording (a missing file's 404 names the container
    too: "File cfile_… not found on container cntr_…"). A 404 NotAuthorizedOrNotFound (OCI's answer when
    authorization fails, too) is checked against a listing: a container the backend lists no more is gone."""
    try:
        container = client.containers.retrieve(container_id)
    except NotFoundError as exc:
        if exc.code != OCI_AUTH_OR_MISSING:
            return "gone"
        return _listed_state(client, container_id)
    except BadRequestError as exc:  # "Container is expired." answers every use of an expired container
        return "gone" if exc.code == "container_expired" or "expired" in str(exc.message).lower() else "unknown"
    except (AuthenticationError, PermissionDeniedError):
        return "unauthorized"
    except APIError:  # can't tell: the original error stands
        return "unknown"
    return "gone" if container.status in GONE_STATUSES else "present"


def _listed_state(client: Client, container_id: str, pages: int = 10) -> str:
    """Whether the listing shows the container (a 404 NotAuthorizedOrNotFound on it says neither)."""
    try:
        for n, box in enumerate(client.containers.list(order="desc", limit=100)):
            if box.id == container_id:
                return "gone" if box.status in GONE_STATUSES else "unauthorized"
            if n >= pages * 100:
                return "unknown"
    except (NotFoundError, AuthenticationError, PermissionDeniedError):
        return "unauthorized"
    except APIError:
        return "unknown"
    return "gone"
