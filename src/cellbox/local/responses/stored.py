"""Responses in the making and responses kept: GET, DELETE and cancel of /v1/responses/{id}, and background runs.

Every response is made by a task of its own (a Run) whose events any reader follows: the request that made it
(a JSON answer or a stream), or a later GET with `stream=true` for a background one. A client that leaves a
request that is not in the background cancels its run, which interrupts the code; a background run goes on until
it finishes, is cancelled (the code is interrupted, status `cancelled`) or deleted.

Stored responses (`store`, true by default) are in memory while they run, at most 100 of them in the background
(more answer 429); once finished they are written to the server's database (a background one with its events, so
it can be streamed again) and read from there: they survive a restart and are kept 30 days, as the cloud keeps
them. Only when the server's disk runs short do the oldest go sooner (half of what is kept, oldest first): the
server answering comes before old answers. A finished response is written KEEP_AFTER seconds after it ended (at
once past MAX_UNWRITTEN waiting, and on a clean shutdown): one deleted sooner, as cellbox deletes each cell's
once it has read it, is never written, and the writing never competes with the stream that reports the end.

A background response with `store: false` (accepted where the options say so, as OCI's background mode does) is
kept only temporarily: in memory while it runs and TEMPORARY_SECONDS after it ended, for polling, cancelling and
streaming again, never written, and no context for a later response's `previous_response_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Send

from .. import errors
from ..store import Store, ids
from . import model
from .create import Request, input_items
from .items import envelope, snapshot, visible

log = logging.getLogger("cellbox.local")

_WAITING = ("queued", "in_progress")
KEEP_SECONDS = 30 * 24 * 3600
KEEP_AFTER = 1.0
MAX_UNWRITTEN = 32
# OCI does not say how long its temporary storage lasts; OpenAI keeps a background response about 10 minutes for
# polling, which is long enough for a client that lost its stream to come back for the end.
TEMPORARY_SECONDS = 600.0
MAX_CHAIN = 1000  # responses of a chain read back to find the container an auto container reuses


class _Response:
    """What readers of a response use, running or kept: its record, its events, and whether it has ended."""

    id: str
    record: dict
    events: list[dict]
    input_items: list[dict]
    background: bool
    include_outputs: bool
    keep_events: bool
    failure: errors.APIError | None = None

    def ended(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        """Interrupts the code if it still runs."""

    def signal(self) -> asyncio.Event:
        """Set at the next change (taken before reading the events, so no change between is missed)."""
        raise NotImplementedError

    def shown(self, include_outputs: bool = False) -> dict:
        return visible(self.record, include_outputs or self.include_outputs)

    async def follow(self, after: int = -1) -> AsyncIterator[list[dict]]:
        """The events after sequence number `after`, as they come, until the response ends: those there at each
        look together (a burst of events then goes out in one write)."""
        index = after + 1
        while True:
            signal = self.signal()
            if index < len(self.events):
                index, came = len(self.events), self.events[index:]
                yield came
            if self.ended():
                return
            await signal.wait()


class Kept(_Response):
    """A finished response as written to the database."""

    def __init__(self, document: dict) -> None:
        self.record, self.events = document["record"], document.get("events") or []
        self.input_items = document.get("input_items") or []
        self.id = self.record["id"]
        self.background = self.keep_events = bool(document.get("background"))
        self.include_outputs = bool(document.get("include_outputs"))

    def ended(self) -> bool:
        return True

    def signal(self) -> asyncio.Event:
        return asyncio.Event()  # never set: a kept response has ended


class Run(_Response):
    """One response being made: its record as of now, its events so far, and the task making it."""

    def __init__(
        self, request: Request, container_id: str, execute: model.Execute, quirks: frozenset[str], nth: int
    ) -> None:
        self.background, self.include_outputs = request.background, request.include_outputs
        self.store = request.store
        self.container_id = container_id
        status = "queued" if request.background else "in_progress"
        self.record = envelope(request, ids.new_response_id(), int(time.time()), container_id, status)
        self.id = self.record["id"]
        self.input_items = input_items(request.body.get("input"))
        self.failure = None
        self.keep_events = request.stream or request.background
        self.events = []
        self._changed = asyncio.Event()
        events = model.respond(request, snapshot(self.record), execute, quirks, nth)
        self.task = asyncio.ensure_future(self._drive(events))
        self.task.add_done_callback(self._ended)

    async def _drive(self, events: AsyncIterator[model.Event]) -> None:
        async for kind, fields in events:
            cause = fields.pop("cause", None)
            if cause is not None:
                self.failure = cause
            # The events are kept as sent; the record is this run's own, changed as the events come.
            if "response" in fields:
                self.record = snapshot(fields["response"])
            elif kind in ("response.output_item.added", "response.output_item.done"):
                output, index = self.record["output"], fields["output_index"]
                item = dict(fields["item"])
                output[index : index + 1] = [item]
            elif kind == "response.code_interpreter_call_code.done":
                self.record["output"][fields["output_index"]]["code"] = fields["code"]
            elif kind == "response.code_interpreter_call.interpreting":
                self.record["output"][fields["output_index"]]["status"] = "interpreting"
            if self.keep_events:
                self.events.append({"type": kind, "sequence_number": len(self.events), **fields})
            self._wake()

    def _ended(self, task: asyncio.Task) -> None:
        if task.cancelled() and self.record["status"] in _WAITING:
            self.record["status"] = "cancelled"
            for item in self.record["output"]:
                if item.get("status") in ("in_progress", "interpreting"):
                    item["status"] = "incomplete"
        elif not task.cancelled() and task.exception() is not None:
            log.error("response %s failed", self.id, exc_info=task.exception())
            self.record.update(status="failed", error={"code": "server_error", "message": "The server failed."})
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def ended(self) -> bool:
        return self.task.done()

    def stop(self) -> None:
        self.task.cancel()

    def stopped_said(self, logs: str) -> None:
        """What stopping the run left of the container, as the logs of its stopped code_interpreter_call."""
        for item in self.record["output"]:
            if item.get("type") == "code_interpreter_call" and item.get("status") == "incomplete":
                item["outputs"] = [*(item.get("outputs") or []), {"type": "logs", "logs": logs}]

    def signal(self) -> asyncio.Event:
        return self._changed

    def document(self) -> dict[str, Any]:
        """What is written to the database once it has ended: a background one with its events (it can be streamed
        again), the others without (nothing can stream them again)."""
        events = self.events if self.background else []
        return {"record": self.record, "events": events, "background": self.background,
                "include_outputs": self.include_outputs, "input_items": self.input_items}  # fmt: skip


# The events a response's stream ends with; the chunk carrying one is the body's last.
_LAST_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete", "response.cancelled"})


class Last(bytes):
    """The last chunk of an event stream's body."""


class EventStream(StreamingResponse):
    """Server-sent events whose last chunk (`Last`) also ends the body: one write to the socket, and one wake of
    the reader, fewer per response than an empty chunk after it."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type="text/event-stream; charset=utf-8", headers={"cache-control": "no-cache"})

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            last = isinstance(chunk, Last)
            body = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
            await send({"type": "http.response.body", "body": body, "more_body": not last})
            if last:
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def sse(run: _Response, include_outputs: bool, after: int = -1, *, cut: bool = False) -> AsyncIterator[bytes]:
    """A run's events as server-sent events. A reader that leaves a run that is not in the background cancels
    it (which interrupts the code); a background run goes on. `cut` ends the stream once the code is running
    (--streaming cut)."""

    def text(event: dict) -> str:
        shown = dict(event)
        for name in ("response", "item"):
            if name in shown:
                shown[name] = visible(shown[name], include_outputs or run.include_outputs)
        return f"event: {event['type']}\ndata: {json.dumps(shown)}\n\n"

    async def events() -> AsyncIterator[bytes]:
        try:
            async for came in run.follow(after):
                if cut and (at := _index_of(came, "response.code_interpreter_call.interpreting")) is not None:
                    if at:
                        yield "".join(text(event) for event in came[:at]).encode()
                    return
                chunk = "".join(text(event) for event in came).encode()
                yield Last(chunk) if came[-1]["type"] in _LAST_EVENTS else chunk
        finally:
            if not run.background:
                run.stop()
                if run.ended():
                    run.events = []  # nobody will read them again

    return events()


def _index_of(events: list[dict], kind: str) -> int | None:
    return next((i for i, event in enumerate(events) if event["type"] == kind), None)


class StoredResponses:
    """The stored responses, by id: running ones in memory, finished ones in the database (see the module
    docstring)."""

    def __init__(self, store: Store, low_disk: Callable[[], bool] = lambda: False, max_background: int = 100) -> None:
        self._store = store
        self._low_disk = low_disk
        self._runs: dict[str, Run] = {}
        self._unwritten: dict[str, asyncio.TimerHandle | None] = {}  # finished, not written yet
        self._writing: set[asyncio.Task] = set()
        self.max_background = max_background

    def start(self, request: Request, container_id: str, execute: model.Execute, quirks: frozenset[str], nth: int):
        if request.background and sum(r.background and not r.ended() for r in self._runs.values()) >= (
            self.max_background
        ):
            raise errors.APIError(
                429,
                f"Too many background responses in progress (the limit is {self.max_background}): wait for some "
                "to finish, or cancel them.",
                type="rate_limit_error",
                code="rate_limit_exceeded",
            )
        run = Run(request, container_id, execute, quirks, nth)
        if request.store or request.background:
            self._runs[run.id] = run
            run.task.add_done_callback(lambda _: self._ended(run))
        return run

    def _ended(self, run: Run) -> None:
        if not run.store:
            asyncio.get_running_loop().call_later(TEMPORARY_SECONDS, self._expire, run)
        elif len(self._unwritten) >= MAX_UNWRITTEN:
            self._unwritten[run.id] = None
            self._write(run)
        else:
            self._unwritten[run.id] = asyncio.get_running_loop().call_later(KEEP_AFTER, self._write, run)

    def _write(self, run: Run) -> None:
        task = asyncio.ensure_future(self._keep(run))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def close(self) -> None:
        """Writes the finished responses still waiting to be written."""
        for response_id, later in list(self._unwritten.items()):
            run = self._runs.get(response_id)
            if later is not None and run is not None:
                later.cancel()
                self._write(run)
        if self._writing:
            await asyncio.wait(self._writing)

    async def _keep(self, run: Run) -> None:
        self._unwritten.pop(run.id, None)
        if self._runs.get(run.id) is not run:  # deleted before its turn: nothing to write
            return

        # Written in a thread: a background response's events may be megabytes. Until written, it is read from
        # memory; if writing fails (a full disk), it stays there.
        def write(document: dict[str, Any]) -> None:
            now = time.time()
            text = json.dumps(document, default=str)
            room = self._store.kept_bytes() // 2 if self._low_disk() else None
            self._store.keep_response(run.id, now, text, now - KEEP_SECONDS, room)

        try:
            await asyncio.to_thread(write, run.document())
        except Exception:
            log.exception("response %s could not be kept; it stays in memory until the server stops", run.id)
            return
        if self._runs.get(run.id) is run:
            del self._runs[run.id]
        else:  # deleted while it was being written
            self._store.forget_response(run.id)

    def _expire(self, run: Run) -> None:
        if self._runs.get(run.id) is run:
            del self._runs[run.id]

    def has(self, response_id: str) -> bool:
        """Whether a stored response has this id (one kept only temporarily is not stored)."""
        run = self._runs.get(response_id)
        return run.store if run is not None else self._store.has_response(response_id)

    def get(self, response_id: str) -> _Response:
        run = self._runs.get(response_id)
        if run is not None:
            return run
        document = self._store.kept_response(response_id)
        if document is None:
            raise errors.not_found("response", response_id, param="response_id")
        return Kept(json.loads(document))

    def reusable(self, previous: str | None, active: Callable[[str], bool]) -> str | None:
        """The container an auto container reuses: [Doc] "an active container that was used by a previous
        `code_interpreter_call` item in the model's context", the context being the chain of `previous_response_id`
        from `previous`, newest first, as far as its responses are kept; None when no call there used an active
        one."""
        seen: set[str] = set()
        while previous is not None and previous not in seen and len(seen) < MAX_CHAIN:
            seen.add(previous)
            try:
                record = self.get(previous).record
            except errors.APIError:  # deleted: the context ends there
                return None
            for item in reversed(record.get("output") or []):
                used = item.get("container_id") if item.get("type") == "code_interpreter_call" else None
                if isinstance(used, str) and active(used):
                    return used
            previous = record.get("previous_response_id")
        return None

    def delete(self, response_id: str) -> None:
        run = self._runs.pop(response_id, None)
        later = self._unwritten.pop(response_id, None)
        if later is not None:
            later.cancel()
        if run is not None:
            run.stop()
        if not self._store.forget_response(response_id) and run is None:
            raise errors.not_found("response", response_id, param="response_id")

    async def cancel(self, response_id: str) -> _Response:
        run = self.get(response_id)
        if not run.background:
            raise errors.invalid("Cannot cancel a synchronous response.", param="response_id")
        if isinstance(run, Run) and not run.ended():
            run.stop()
            # The code is interrupted; wait (bounded) until it has stopped, so `cancelled` means stopped.
            await asyncio.wait({run.task}, timeout=30)
        return run
