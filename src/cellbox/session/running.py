"""Running one cell in a session's container: the request and its loader line, the response that runs it, and
the result record read back.

How a run travels is `cellbox.session.protocol` (request, loader line, check of the code the model ran, result record);
this drives it against the backend. A run is a `background: true` response where the backend takes it ([Doc]:
only those can be polled and cancelled): followed by its event stream (`event_stream.py`) or polled with backoff,
cancelled on interrupt or when the run's time limit passes. Where the backend stores uploads under the names asked,
the run's request is uploaded while the response is created (the runtime waits for it), saving a round trip. A
record too big for the logs is downloaded by the id the response cites it with, else found in the listing (which
may lag). What each response cost is summed into the run's `usage` and the session's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from ..api import APITimeoutError, BadRequestError, CellboxError, ContainerFile, NotFoundError, Response
from ..boundary import DisplayPolicy
from ..boundary import record as record_bounds
from ..common import stops
from ..common.background import in_background
from ..common.polling import Backoff
from . import binding, progress, protocol
from .cleanup import Cleanup
from .errors import Interrupted, ProcessDied, RunFailed, SandboxGone, TimeLimit
from .event_stream import PENDING_STATUSES, EventStream
from .link import ContainerLink
from .liveness import container_state
from .protocol import loader_line
from .remote_files import RemoteFiles
from .result_record import Result
from .results import Run, Usage, add_usage
from .transfer import Inputs, Transfers

log = logging.getLogger("cellbox")

POLL_MOST = 0.25  # seconds between looks at a running cell whose output is watched
LIVE_AFTER = 0.1  # seconds into a run before its live output is read: quicker cells' records carry it
# Live output is read often at first (a short cell's output shows at once), then less and less often, up to
# LIVE_MOST_GAP apart: a long printing cell makes ~33 reads its first minute and 30 each minute after, within the
# container endpoints' budget (OpenAI: 100 a minute per organisation). With fewer than LIVE_RESERVE requests
# left in the client's budget, reads wait: the record brings everything anyway.
LIVE_FIRST_GAP = 0.25
LIVE_GROWTH = 1.5
LIVE_MOST_GAP = 2.0
LIVE_RESERVE = 10
STREAM_CHECK = 10.0  # seconds between looks at a followed response, in case its stream went quiet without ending
CITED_LOOKUPS = 3  # cited files named by the service's own scheme looked up to find the record among them


@dataclasses.dataclass
class Ran:
    """A run the runtime finished (it loaded the run's inputs first): its request, the result record as it came
    (not yet accepted), how its displays are shown, notes for the user and what its responses cost."""

    request: protocol.Request
    record: dict[str, Any]
    policy: DisplayPolicy
    notes: list[str]
    usage: Usage | None


class Runner:
    """Runs cells in one session's container, reached through `link`."""

    def __init__(
        self,
        link: ContainerLink,
        transfers: Transfers,
        remote_files: RemoteFiles,
        *,
        model: str,
        cleanup: Cleanup | None = None,
    ) -> None:
        self.cleanup = cleanup or Cleanup()
        self.link = link
        self.transfers = transfers
        self.remote_files = remote_files
        self.model = model
        # What the model billed in this session, every response counted (runs that failed cost too); None while
        # the backend has reported nothing.
        self.usage: Usage | None = None
        self.responses = 0  # finished responses in this session, whether or not they reported usage
        self.log_limit = protocol.LOG_LIMIT  # characters of the record the loader may print for the model
        # What the container displays is cleaned so it can't run script in the user's page, unless the user said
        # this sandbox runs only their own code (`trust_output`).
        self.trust_output = False

    def run(
        self,
        code: str,
        *,
        inputs: Inputs,
        outputs: Sequence[str] = (),
        timeout: float | None = None,
        live: protocol.LiveOutput | None = None,
        on_wait: Callable[[float], None] | None = None,
        execution_count: int | None = None,
    ) -> Ran:
        """Run `code` in the container, `inputs` loaded before it; `Sandbox.run` says what the options mean. `read`
        makes what it left a `Run`; once this returns, `inputs` are loaded. Call both inside `cleanup.running()`:
        deleting the leftovers of earlier cells while a cell runs would slow it."""
        moves = self.transfers.take_placements()
        request = protocol.Request.new(
            code,
            inputs=self.transfers.input_specs(inputs),
            variables=outputs,
            place=moves,
            restore=self.transfers.restore_specs(),
            log_limit=self.log_limit,
            execution_count=execution_count,
        )
        try:
            with stopping("the upload of the cell before it ran; the cell did not run"):
                runtime = self.transfers.runtime()
                path = self.transfers.private_path(request.filename)
                # Not with an auto container: an upload that finds it expired must come before a response that
                # would make (and bill) a new one.
                if path is not None and self._background() and self.link.binding == "id":
                    # Sent while the model is asked to run it (the runtime waits for it): a round trip saved.
                    sent = in_background(self.transfers.upload_private, request.body(), request.filename)
                else:  # only the upload's answer says where it went (or a foreground run could wait on it)
                    sent = Future()
                    sent.set_result(self.transfers.upload_private(request.body(), request.filename))
                    path = sent.result().path or ""
        except BaseException:
            self.transfers.restore_placements()
            raise
        policy = DisplayPolicy(trusted=self.trust_output)
        watch = None
        if live is not None:
            live.clean = functools.partial(_live_event, policy)
            watch = functools.partial(self._watch, live, sent, on_wait)
        try:
            record, notes, usage = self._run_loader(request, (runtime, path), timeout, watch, sent)
        except BaseException:
            self.transfers.restore_placements()  # moved already if the run started: the runtime skips them
            # The runtime removes its request when it ends; one it never ended is removed here, later.
            self.cleanup.later(functools.partial(self._forget_request, sent))
            raise
        return Ran(request, record, policy, notes, usage)

    def read(self, ran: Ran, operation: progress.Operation | None = None) -> Run:
        """The `Run` a finished run gives back: its record accepted through the boundary, its values read (as
        phases of `operation`, when there is one)."""
        with stopping("reading the cell's results; the cell ran, its variables are in the container"):
            run = self.remote_files.collect(Result.accept(ran.record, ran.request, ran.policy), operation)
        run.notes[:0] = ran.notes
        run.usage = ran.usage
        return run

    def _watch(
        self,
        live: protocol.LiveOutput,
        sent: Future[ContainerFile],
        on_wait: Callable[[float], None] | None,
        elapsed: float,
        read: bool,
    ) -> None:
        """One look at a running cell: the live output it added since the last look (to its request file, uploaded
        by then) when `read`, then `on_wait`."""
        if read and not live.held and self.link.client.budget.spare() >= LIVE_RESERVE:
            with contextlib.suppress(CellboxError):  # live output is a courtesy: the record has everything
                live.feed(self.remote_files.read_from(sent.result().id, live.offset))
        if on_wait is not None:
            on_wait(elapsed)

    def _run_loader(
        self,
        request: protocol.Request,
        paths: tuple[str, str],
        timeout: float | None,
        watch: Callable[[float, bool], None] | None,
        sent: Future[ContainerFile],
        resent: bool = False,
    ) -> tuple[dict[str, Any], list[str], Usage | None]:
        """Ask the model to run the loader (again, once, when it did not start the run); the result record, notes
        for the user and what the responses cost. A model that ran other code is refused: the container's state is
        then uncertain. A runtime the loader did not find is uploaded again, once (`resent`)."""
        notes: list[str] = []
        usage: Usage | None = None
        runtime, path = paths
        for attempt in (1, 2):
            loader = loader_line(runtime, path)
            response = self._respond(loader, timeout, watch, sent)
            usage = add_usage(usage, Usage.of(response.to_dict().get("usage")))
            self._same_container(response)
            reading = protocol.read_response(response, loader)
            if reading.foreign:
                raise protocol.deviation(reading.foreign, self.model, reading.started)
            if reading.record is None and protocol.runtime_missing(response, runtime):
                # The run never started: cellbox's files were removed from a kernel that had not loaded them yet.
                if resent:
                    raise RunFailed(protocol.runtime_unreachable(runtime))
                again = self.transfers.runtime(again=True)
                ran, later, cost = self._run_loader(request, (again, path), timeout, watch, sent, resent=True)
                notes.append(
                    "cellbox's runtime was missing from the container (removed by code?); it was sent again and the "
                    "model asked again (a second billed response)"
                )
                return ran, notes + later, add_usage(usage, cost)
            if reading.record is not None or reading.started:
                # A reply cut by its bound after the run lost nothing of it; any other ending is said.
                if response.status not in (None, "completed") and reading.incomplete != "max_output_tokens":
                    notes.extend(reading.problems)
                if reading.record is None and reading.died is not None:
                    # No record will come (the runtime writes it last); one look, then say what happened.
                    record = self._cited_record(request, response)
                    if record is None:
                        record = self.remote_files.record_at(request.result_path)
                    if record is not None:
                        return record, notes, usage
                    raise ProcessDied(_died(reading.died))
                record = reading.record or self._cited_record(request, response)
                if record is None:
                    record = self._result_file(request.result_path, reading.problems)
                return record, notes, usage
            said = "; ".join(reading.problems) or "the model did not run the cell"
            if container_state(self.link.client, self.link.id) == "gone":  # e.g. deleted while it ran
                raise self.link.gone() from None
            if attempt == 1 and response.status not in ("failed", "cancelled"):
                if reading.cut_short:
                    notes.append(self._unbound())
                else:  # each billed response of a cell is said, not only counted
                    notes.append(f"{said}; it was asked again (a second billed response)")
                log.info("cellbox: %s; asking the model again", said)
                continue
            raise RunFailed(
                f"the cell did not run: {said}."
                + (" Asked twice." if attempt == 2 else "")
                + f" Check that CELLBOX_MODEL ({self.model}) supports the code_interpreter tool."
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self) -> set[str]:
        """The request fields this client has stopped sending to this model (shared with every sandbox using the
        client)."""
        return self.link.client.refused_parameters.setdefault(("/responses", self.model), set())

    def _background(self) -> bool:
        """Whether cells run as background responses: unless the settings say not (zero data retention: nothing
        stored) or the backend refused them."""
        return self.link.client.settings.background and "background" not in self._refused()

    def _effort(self) -> str:
        return self.link.client.settings.reasoning_effort or protocol.REASONING_EFFORT

    def _unbound(self) -> str:
        """The reply hit `max_output_tokens` before it ran the cell: the bound is not sent to this model again
        (the next ask, and later cells, go without it); the note that says so."""
        self._refused().add("max_output_tokens")
        return (
            f"the model's reply reached its bound (max_output_tokens {protocol.output_bound(self._effort())}) "
            f"before it ran the cell, so it was asked again without one; {self.model} is no longer sent that bound"
        )

    def _respond(
        self,
        loader: str,
        timeout: float | None,
        watch: Callable[[float, bool], None] | None = None,
        sent: Future[ContainerFile] | None = None,
    ) -> Response:
        """One response running the loader: in the background where the backend allows it (followed by its event
        stream, else polled with backoff; cancelled on interrupt or past `timeout`), else waited for in one
        request. `sent` is the upload of the run's request, still under way when the response is created: once it
        is, the upload is waited for, and one that failed cancels the run (waiting for it) and is the error."""
        refused = self._refused()
        background = self._background()
        previous = self.link.previous()
        options = protocol.response_options(
            reasoning_effort=self._effort(),
            background=background,
            bounded="max_output_tokens" not in refused,
            store=background or previous is not None,  # the next run chains from this one
        )
        response: Response | None = None
        following: EventStream | None = None
        started = time.monotonic()
        ask = dict(model=self.model, input=protocol.run_prompt(loader), container=self.link.tool(), **options)
        if previous is not None:
            ask["previous_response_id"] = previous
        try:
            with self._binding_errors():
                if background and "stream" not in refused:
                    ask["optional"] = (*options["optional"], "stream")
                    following = EventStream(self.link.call(self.link.client.responses.stream, **ask))
                    response = following.first()
                    following.follow()
                else:
                    response = self.link.call(
                        self.link.client.responses.create, timeout=None if background else timeout, **ask
                    )
            if sent is not None:
                self._delivered(sent, response)
            # Quick first looks (a short cell is done in milliseconds), then at most POLL_MOST apart while output
            # is watched (it shows within half a second), else up to a second. Followed, the stream says when it
            # ends: the response is asked for only now and then, in case the stream went quiet without ending.
            pause = Backoff(float("inf"), first=0.005, most=POLL_MOST if watch else 1.0)
            asked = started
            next_look, gap = LIVE_AFTER, LIVE_FIRST_GAP  # when live output is read next, and the gap after
            while response.status in PENDING_STATUSES:
                elapsed = time.monotonic() - started
                if timeout is not None and elapsed > timeout:
                    raise TimeLimit(_time_limit(timeout, self._cancel(response)))
                if following is not None:
                    look = (POLL_MOST if elapsed >= LIVE_AFTER else LIVE_AFTER - elapsed) if watch else STREAM_CHECK
                    if timeout is not None:
                        look = min(look, timeout - elapsed + 0.001)
                    if following.wait(look):  # the stream ended: with the run, or from here it is polled
                        response = following.latest or response
                        following.stop()
                        following = None
                        continue
                    if time.monotonic() - asked >= STREAM_CHECK:
                        asked = time.monotonic()
                        response = self.link.call(self.link.client.responses.retrieve, response.id)
                else:
                    pause.wait()
                    response = self.link.call(self.link.client.responses.retrieve, response.id)
                # Output shows within half a second of being printed; a cell done sooner brings it in its record.
                elapsed = time.monotonic() - started
                if watch is not None and response.status in PENDING_STATUSES and elapsed >= LIVE_AFTER:
                    read = elapsed >= next_look
                    watch(elapsed, read)
                    if read:
                        next_look, gap = elapsed + gap, min(LIVE_MOST_GAP, gap * LIVE_GROWTH)
        except APITimeoutError:
            if timeout is None or background:
                raise
            raise TimeLimit(_time_limit(timeout, False)) from None
        except KeyboardInterrupt:
            if response is not None and response.status in PENDING_STATUSES:
                cancelled = self._cancel(response)
                raise Interrupted(
                    f"the cell was stopped while it ran; {_left_by_stop(cancelled)}"
                    if cancelled is not None
                    else "the cell was running and cancelling it failed: it may still be running in the container"
                ) from None
            if background:
                how = "the interrupt came before the backend answered"
            elif not self.link.client.settings.background:
                how = "cells run in the foreground (CELLBOX_BACKGROUND=false), so they can't be cancelled"
            else:
                how = (
                    "this backend runs cells in the foreground (it refused background responses), so they can't be "
                    "cancelled"
                )
            raise Interrupted(f"the cell may still be running in the container: {how}") from None
        finally:
            if following is not None:
                following.stop()
            if response is not None and response.status not in PENDING_STATUSES:
                self._count(response)
                if options.get("store"):
                    self.cleanup.later(functools.partial(self._forget_response, self._chained(response)))
        return response

    @contextlib.contextmanager
    def _binding_errors(self) -> Iterator[None]:
        """A backend refusing the container's id in the tool is `IdRefused` (`Sandbox.run` moves to an auto
        container); one that no longer has the response an auto container's chain continues from can't reach the
        container, which is gone for this session. Nothing ran."""
        try:
            yield
        except BadRequestError as exc:
            if self.link.binding == "id" and binding.refuses_ids(exc):
                raise binding.IdRefused(exc) from None
            raise
        except NotFoundError as exc:
            chain = self.link.chain
            if self.link.binding != "auto" or chain is None or chain not in str(exc):
                raise
            raise SandboxGone(
                f"container {self.link.label} ({self.link.id}) can't be reached any more: the response its auto "
                f"container's chain continues from ({chain}) is gone from the backend. Sandbox.revive() makes a new "
                "one with the same data pushed again.",
                f"{self.link.label} ({self.link.id})",
            ) from None

    def _chained(self, response: Response) -> str:
        """The stored response to delete once this one is read: itself, unless it ran its call in the session's
        auto container; then the next run chains from it, and the one it replaces goes."""
        if self.link.binding != "auto" or binding.ran_in(response) - {self.link.id}:
            return response.id
        if not response.code_interpreter_calls or self.link.chain is None:
            return response.id
        replaced, self.link.chain = self.link.chain, response.id
        return replaced

    def _same_container(self, response: Response) -> None:
        """An auto container the service did not reuse (it expired, or the chain was lost) leaves a new one the
        response made and ran in: it is deleted, and the run is the session's container being gone, or a failure
        said."""
        if self.link.binding != "auto":
            return
        strays = binding.ran_in(response) - {self.link.id}
        if not strays:
            return
        for stray in strays:
            with contextlib.suppress(CellboxError):
                self.link.client.containers.delete(stray)
        if container_state(self.link.client, self.link.id) == "gone":
            raise self.link.gone()
        raise RunFailed(
            f"the backend ran the cell in another container ({', '.join(sorted(strays))}, now deleted), not in "
            f"{self.link.label} ({self.link.id}) that the chain of responses reuses; the cell's code did not run "
            f"with its state. {protocol.START_CLEAN}"
        )

    def _delivered(self, sent: Future[ContainerFile], response: Response) -> None:
        """Wait for the run's request to be uploaded; if that failed, the run waiting for it is cancelled and the
        upload's error raised."""
        try:
            sent.result()
        except CellboxError:
            if response.status in PENDING_STATUSES:
                self._cancel(response)
            raise

    def _forget_request(self, sent: Future[ContainerFile]) -> None:
        """A run's request the runtime never removed (the run did not end), deleted once its upload is done."""
        try:
            uploaded = sent.result()
        except BaseException:
            return
        self.transfers.delete_private(uploaded)

    def _count(self, response: Response) -> None:
        """Add what a finished response cost to the session's total."""
        self.responses += 1
        self.usage = add_usage(self.usage, Usage.of(response.to_dict().get("usage")))

    def _cancel(self, response: Response) -> Response | None:
        """The response cancelled, as the backend answered, once it stopped; None when it could not be stopped."""
        try:
            cancelled = self.link.client.responses.cancel(response.id)
        except CellboxError as exc:
            log.warning("cellbox: could not cancel response %s: %s", response.id, exc)
            return None
        self._count(cancelled)  # what it had cost when it stopped
        return cancelled if cancelled.status not in PENDING_STATUSES else None

    def _forget_response(self, response_id: str) -> None:
        """A stored response, deleted once read: best effort."""
        with contextlib.suppress(CellboxError):
            self.link.client.responses.delete(response_id)

    def _cited_record(self, request: protocol.Request, response: Response) -> dict[str, Any] | None:
        """The result record from its file, found by the response's citation of it (no listing needed); None when
        the response does not cite it. A service that names cited files by their ids (OpenAI's example:
        `cfile_….png`) has its JSON citations looked up, a few, to find the record among them."""
        file_id = protocol.cited_file(response, request.result_path)
        if file_id is None:
            others = [
                c.file_id
                for c in response.container_file_citations
                if c.file_id and (c.filename or "").startswith("cfile_") and (c.filename or "").endswith(".json")
            ]
            for other in others[:CITED_LOOKUPS]:
                with contextlib.suppress(NotFoundError):
                    cited = self.link.call(self.link.client.containers.files.retrieve, self.link.id, other)
                    if cited.path == request.result_path:
                        file_id = other
                        break
        if file_id is None:
            return None
        try:
            return self.remote_files.record(file_id)
        except NotFoundError:
            return None

    def _result_file(self, path: str, problems: list[str]) -> dict[str, Any]:
        """The result record from its file, for a run whose logs did not carry it and whose response did not cite
        it; the listing is polled, as it may lag."""
        record = self.remote_files.record_at(path, wait=protocol.RESULT_WAIT)
        if record is None:
            said = f" ({'; '.join(problems)})" if problems else ""
            raise CellboxError(
                f"the run started but left no result record ({path}){said}; it may still be running, or the "
                f"container restarted mid-run. {protocol.START_CLEAN}"
            )
        return record


def _live_event(policy: DisplayPolicy, event: dict[str, Any]) -> dict[str, Any] | None:
    """A live event as the user may see it: of the runtime's shape, its displays cleaned (counted once, from the
    record)."""
    checked = record_bounds.live_event(event)
    return None if checked is None else policy.event(checked, count=False)


def _died(logs: str) -> str:
    """What the user reads when the process running their cell died: the backend's own words, when it said any."""
    said = " ".join(line.strip() for line in logs.strip().splitlines()[-3:] if line.strip())[-400:]
    unsaid = " (killed, crashed, or out of memory). Variables are gone; files in /mnt/data are kept."
    why = f": {said}" if said else unsaid
    then = "The next cell runs in a new process, with what you pushed loaded again."
    return f"the container's Python process died while running this cell{why} {then}"


def _left_by_stop(cancelled: Response) -> str:
    """What stopping a run left of the container: what the backend says in the stopped call's logs, else what
    usually happens, and where the user will learn otherwise."""
    left = stops.left("\n".join(call.logs for call in cancelled.code_interpreter_calls))
    if left == "restarted":
        return (
            "its code did not stop at the interrupt (it caught KeyboardInterrupt, or was stuck outside Python), so "
            "the container's Python process was restarted: variables and imports are gone, files in /mnt/data are "
            "kept, and the next cell loads what you pushed again"
        )
    if left == "kept":
        return "the container keeps its state up to where the code stopped"
    return (
        "the container should keep its state up to where the code stopped (this backend doesn't say; if its "
        "process was restarted, the next cell says so)"
    )


def _time_limit(timeout: float, cancelled: Response | bool | None) -> str:
    """`cancelled`: the stopped response, None when stopping it failed, False when it can't be stopped."""
    limit = f"{timeout:g} s"
    if cancelled is False:
        return (
            f"the cell was stopped after {limit} (its time limit); this backend runs cells in the foreground, so "
            "its code may still be running in the container"
        )
    if isinstance(cancelled, Response):
        return (
            f"the cell was stopped after {limit} (its time limit); {_left_by_stop(cancelled)}. Give it longer "
            "with --timeout (timeout=)."
        )
    return f"the cell ran past its time limit ({limit}) and stopping it failed: it may still be running"


@contextlib.contextmanager
def stopping(what: str) -> Iterator[None]:
    """An interrupt in this block says what it stopped (an Interrupted raised deeper already does)."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(f"stopped {what}") from None
