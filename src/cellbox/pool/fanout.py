"""`Pool`: one cell fanned out over many sandboxes, and `concat`: the parts' results as one frame.

    with cellbox.Pool(8, memory_limit="4g") as pool:
        runs = pool.map(code, split={"sales": df}, outputs=["summary"])
        summary = cellbox.concat(runs, "summary")

Each sandbox is a `Sandbox` sharing one client (thread-safe), so everything a single sandbox does (the manifest
that re-pushes only what changed, revive, the run protocol, cancel on interrupt) is the same code here. The
pool drives them from threads: creates and pushes at most `max_in_flight` at once, runs one per sandbox (a run
mostly waits for the service). The client honours 429 Retry-After; a create the service still refuses for
quota (429, e.g. `too_many_containers`) ends the making: the pool says how many it got and runs with those.

The calling thread only waits, shows progress and takes interrupts: an interrupt stops every part (each
sandbox cancels its run at its next poll) and raises `Interrupted`; the parts stay in `pool.last`, and
`pool.retry_failed()` runs the failed and stopped ones again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from ..api import APIStatusError, CellboxError, Client, RateLimitError
from ..api.lookup import LIVE, NameTaken
from ..common.background import Bounded, parallel
from ..common.inuse import in_kernel
from ..session import backend
from ..session.errors import Interrupted
from ..session.sandbox import Sandbox
from .parts import Part, PoolRuns, concat, make_parts
from .runner import WAIT_STEP, Shares

__all__ = ["Pool", "concat"]

log = logging.getLogger("cellbox")

MAX_IN_FLIGHT = 8


class Pool:
    """`size` sandboxes made concurrently, or with `name`, the live ones named `NAME-0` … `NAME-{size-1}`
    attached and the missing ones made. `with Pool(...)` deletes the sandboxes at the end unless it is named
    (a named pool is meant to be used again: `delete()` it when done).

    `size` is what was asked; `len(pool)` what was had: fewer when the service's quota stopped the making
    (`shortfall` says why)."""

    def __init__(
        self,
        size: int,
        *,
        name: str | None = None,
        memory_limit: str | None = None,
        expires_after: int | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        client: Client | None = None,
        show: bool | None = None,
    ) -> None:
        if size < 1:
            raise CellboxError(f"a pool needs at least one sandbox; got {size}")
        self.size = size
        self.name = name
        self.max_in_flight = max(1, max_in_flight)
        self.show = show
        self._owns_client = client is None
        self.client = client or backend.connect()
        self._options: dict[str, Any] = {"memory_limit": memory_limit, "expires_after": expires_after}
        self._bound = threading.Semaphore(self.max_in_flight)
        self._revive_lock = threading.Lock()
        self.shortfall: str | None = None
        self.last: PoolRuns | None = None
        self.members: list[Sandbox] = []
        try:
            self.members = self._make()
        except BaseException:
            self._close_client()
            raise

    # --- making -----------------------------------------------------------------------------------------------

    def _make(self) -> list[Sandbox]:
        prefix = self.name or f"pool-{uuid.uuid4().hex[:6]}"  # members named alike show together in listings
        names = [f"{prefix}-{i}" for i in range(self.size)]
        live: dict[str, Any] = {}
        if self.name:  # one listing finds the members already running
            for box in self.client.containers.list(order="desc"):
                if box.name in names and box.status in LIVE:
                    live.setdefault(box.name, box)
        refused: list[BaseException] = []
        stop = threading.Event()

        def make(member_name: str) -> Sandbox | None:
            if member_name in live:
                return Sandbox(self.client, live[member_name])
            if stop.is_set():
                return None
            try:
                with self._bound:
                    return Sandbox.create(member_name, client=self.client, **self._options)
            except NameTaken as taken:  # made by someone else meanwhile: it is the member
                return Sandbox(self.client, taken.container)
            except APIStatusError as exc:
                if not _is_quota(exc):
                    raise
                refused.append(exc)
                stop.set()
                return None

        threads = Bounded(min(self.max_in_flight, self.size))
        futures = [threads.submit(make, n) for n in names]
        made: list[Sandbox | None] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                made.append(_result(future))
            except BaseException as exc:  # an interrupt or a non-quota error: nothing half-made is kept
                stop.set()
                failure = failure or exc
                made.append(None)
        if failure is not None:
            self._delete_all([m for m in made if m is not None])
            wait(futures)  # a make whose wait was interrupted ends before the pool says it stopped
            if isinstance(failure, KeyboardInterrupt):
                raise Interrupted("stopped making the pool; the sandboxes made so far were deleted") from None
            raise failure
        members = [m for m in made if m is not None]
        if len(members) < self.size:
            reason = str(refused[0]) if refused else "the service refused more"
            if not members:
                raise CellboxError(f"could not make any of the pool's {self.size} sandboxes: {reason}")
            self.shortfall = (
                f"asked for {self.size} sandboxes, got {len(members)} (the service's quota: {reason}); "
                f"running with {len(members)}"
            )
            log.warning("cellbox: %s", self.shortfall)
        return members

    @classmethod
    def attach(cls, name: str, *, client: Client | None = None, **options: Any) -> Pool:
        """The live sandboxes named `NAME-0`, `NAME-1`, … (as `Pool(n, name=NAME)` made them), none made."""
        client = client or backend.connect()
        size = len(
            {
                b.name
                for b in client.containers.list(order="desc")
                if b.status in LIVE
                and (b.name or "").startswith(f"{name}-")
                and (b.name or "").removeprefix(f"{name}-").isdigit()
            }
        )
        if not size:
            client.close()
            raise CellboxError(f"no running sandboxes named {name}-0, {name}-1, …; Pool(N, name={name!r}) makes them")
        return cls(size, name=name, client=client, **options)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Pool({len(self.members)} sandboxes{', name=' + repr(self.name) if self.name else ''})"

    # --- running ----------------------------------------------------------------------------------------------

    def push(self, *, split: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None) -> int:
        """Send the parts of `split` (part i to sandbox i) and `inputs` to every sandbox now, at most
        `max_in_flight` at once; a `map` with the same data then sends nothing again. Returns the parts' count."""
        parts = make_parts(split, len(self.members))
        if len(parts) > len(self.members):
            raise CellboxError(
                f"push: {len(parts)} parts for {len(self.members)} sandboxes; map() runs the extra parts in turn, "
                "push() can only place one part per sandbox"
            )
        shares = [(i, {**(inputs or {}), **values}) for i, values in enumerate(parts)]

        def send(share: tuple[int, dict[str, Any]]) -> None:
            for var, value in share[1].items():
                self.members[share[0]].push(value, name=var)

        parallel(send, shares, self.max_in_flight)
        return len(parts)

    def map(
        self,
        code: str,
        *,
        split: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Sequence[str] = (),
        files: Sequence[str] = (),
        timeout: float | None = None,
        pull: Sequence[str] = (),
        to: str | Path = ".",
        hidden: bool = False,
        force: bool = False,
        modules: bool = False,
    ) -> PoolRuns:
        """Run `code` once per part of `split` (see `cellbox.pool.parts`), part i in sandbox i mod len(pool). `inputs`
        go to every sandbox unsplit (pushed once each, again only when changed), `files` too. Files matching
        `pull` are downloaded after each part ran (before the next part in its sandbox could overwrite them) into
        `to`/part-<i>/ (`part.pulled`; `hidden`, `force` and `modules` as for `Sandbox.pull`, what was skipped in
        `part.notes`). Returns the parts in order; a failing part keeps its traceback and the others their results
        (`retry_failed` reruns it)."""
        parts = [Part(i, values) for i, values in enumerate(make_parts(split, len(self.members)))]
        options: dict[str, Any] = {"inputs": dict(inputs or {}), "outputs": tuple(outputs), "files": tuple(files)}
        options.update(timeout=timeout, pull=tuple(pull), to=Path(to), hidden=hidden, force=force, modules=modules)
        self.last = PoolRuns(parts, code, options, len(self.members))
        return self._go(self.last, parts)

    def run(self, code: str, **options: Any) -> PoolRuns:
        """The same code in every sandbox once (set-up, imports); options as for `map`, without `split`."""
        return self.map(code, split=None, **options)

    def retry_failed(self) -> PoolRuns:
        """Run the failed and stopped parts of the last `map` again, in the same sandboxes (revived when gone);
        the other parts keep their results."""
        if self.last is None:
            raise CellboxError("nothing to retry: the pool has not run anything yet")
        again = self.last.failed
        for part in again:
            part.state, part.seconds, part.run, part.error, part.notes = "waiting", None, None, None, []
            part.pulled = []
        return self._go(self.last, again)

    def _go(self, runs: PoolRuns, parts: list[Part]) -> PoolRuns:
        show = self.show if self.show is not None else in_kernel()
        return Shares(self.members, self._bound, self._revive).go(runs, parts, show=show)

    def _revive(self, member: int) -> None:
        with self._revive_lock:
            self.members[member].revive()

    # --- lifecycle --------------------------------------------------------------------------------------------

    def revive(self) -> Pool:
        """Make anew every sandbox that expired or was deleted, with its data pushed again."""
        from ..session.liveness import container_state

        gone = [i for i, m in enumerate(self.members) if container_state(self.client, m.id) == "gone"]
        parallel(self._revive, gone, self.max_in_flight)
        return self

    def delete(self) -> None:
        """Delete every sandbox of the pool (concurrently) and close the pool."""
        self._delete_all(self.members)
        self.members = []
        self._close_client()

    def _delete_all(self, members: Sequence[Sandbox]) -> None:
        errors: list[BaseException] = []

        def delete(sandbox: Sandbox) -> None:
            try:
                sandbox.delete()
            except CellboxError as exc:
                errors.append(exc)

        parallel(delete, members, self.max_in_flight)
        if errors:
            raise CellboxError(f"{len(errors)} of the pool's sandboxes could not be deleted: {errors[0]}")

    def close(self) -> None:
        """Forget local state; the sandboxes keep running until they expire (`delete` ends them)."""
        for sandbox in self.members:
            sandbox.close()
        self._close_client()

    def _close_client(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name:
            self.close()
        else:
            self.delete()


def _is_quota(exc: APIStatusError) -> bool:
    """A refusal for quota: more containers than the service allows now (waiting won't make room)."""
    words = f"{exc.code or ''} {exc}".lower()
    return isinstance(exc, RateLimitError) or "quota" in words or "limit exceeded" in words


def _result(future: Future[Any]) -> Any:
    """The future's result; the calling thread stays interruptible while it waits."""
    while True:
        try:
            return future.result(timeout=WAIT_STEP)
        except FutureTimeout:
            continue
