"""How a pool runs its parts: each sandbox's share of them on a thread of its own, one part after another.

The calling thread only waits: it shows the live grid and the parts' streams, and takes interrupts. The first
interrupt sets `stop`, which every part sees (a running one cancels its sandbox's run at its next poll); a second
stops showing them while the cancels end, a third stops waiting for those. A part whose sandbox was gone has it
revived and runs once more.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import wait
from typing import Any

from ..common.background import in_background
from ..session.errors import Interrupted, SandboxGone
from ..session.protocol import LiveOutput
from ..session.sandbox import Sandbox
from .parts import Part, PoolRuns

__all__ = ["WAIT_STEP", "Shares"]

WAIT_STEP = 0.1  # seconds the calling thread waits between looks at the parts


class Shares:
    """The pool's members, each running its share of a run's parts. Pushes take `bound` (the pool's
    `max_in_flight`); `revive(i)` makes member i anew when its container is gone."""

    def __init__(self, members: list[Sandbox], bound: threading.Semaphore, revive: Callable[[int], None]) -> None:
        self.members = members
        self._bound = bound
        self._revive = revive

    def go(self, runs: PoolRuns, parts: list[Part], *, show: bool) -> PoolRuns:
        """Run `parts` (of `runs`), part i in member i mod len(members); returns `runs`."""
        events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        stop = threading.Event()
        for part in parts:
            part.member = part.index % len(self.members)
            part.sandbox = self.members[part.member].name or self.members[part.member].id
        queues: dict[int, list[Part]] = {}
        for part in parts:
            queues.setdefault(part.member, []).append(part)
        from .view import LiveGrid, Streams, show_displays

        grid = LiveGrid(runs) if show else None
        streams = Streams()
        # Every share at once, each on a kept thread: a part mostly waits for the service.
        futures = [in_background(self._work, member, share, runs, events, stop) for member, share in queues.items()]
        interrupted = False
        while True:
            try:
                while not all(f.done() for f in futures):
                    with contextlib.suppress(queue.Empty):
                        index, event = events.get(timeout=WAIT_STEP)
                        if show and event.get("type") == "stream":
                            streams.write(index, event.get("name", "stdout"), event.get("text", ""))
                        elif show and event.get("type") == "part_end":
                            streams.flush(index)
                    if grid is not None:
                        grid.refresh()
                break
            except KeyboardInterrupt:
                if interrupted:  # a second interrupt: stop showing the parts
                    break
                interrupted = True
                stop.set()
        wait(futures)  # the parts' states are final before they are counted; a third interrupt leaves at once
        for future in futures:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]  # a bug in the pool itself, not a part
        while show and not events.empty():
            index, event = events.get()
            if event.get("type") == "stream":
                streams.write(index, event.get("name", "stdout"), event.get("text", ""))
        for part in parts if show else ():
            streams.flush(part.index)
        if grid is not None:
            grid.close()
            show_displays(runs, parts)
        if interrupted:
            stopped = sum(p.state == "stopped" for p in parts)
            raise Interrupted(
                f"stopped the pool's run: {stopped} part(s) stopped, the others kept (pool.last); "
                "pool.retry_failed() runs the stopped and failed ones again"
            )
        return runs

    def _work(
        self,
        member: int,
        share: Iterable[Part],
        runs: PoolRuns,
        events: queue.Queue[tuple[int, dict[str, Any]]],
        stop: threading.Event,
    ) -> None:
        """One sandbox's share of the parts, one after another."""
        for part in share:
            if stop.is_set():
                part.state, part.error = "stopped", Interrupted("stopped before it ran")
                continue
            part.started = time.monotonic()
            part.state = "running"
            try:
                for attempt in (1, 2):
                    try:
                        part.run = self._run_part(self.members[member], part, runs, events, stop)
                        break
                    except SandboxGone:
                        if attempt == 2:
                            raise
                        self._revive(member)
                        part.notes.append(
                            f"container {part.sandbox} had expired: a new one was made, data pushed again"
                        )
                part.error = part.run.error if part.run is not None else None
                part.state = "failed" if part.error is not None else "done"
            except KeyboardInterrupt as exc:  # Interrupted: this part's run was cancelled
                part.state, part.error = "stopped", exc
            except Exception as exc:
                part.state, part.error = "failed", exc
            finally:
                part.seconds = time.monotonic() - (part.started or time.monotonic())
                events.put((part.index, {"type": "part_end"}))

    def _run_part(
        self,
        sandbox: Sandbox,
        part: Part,
        runs: PoolRuns,
        events: queue.Queue[tuple[int, dict[str, Any]]],
        stop: threading.Event,
    ) -> Any:
        options = runs.options
        with self._bound:  # pushes, at most max_in_flight at once across the pool
            for var, value in {**options["inputs"], **part.values}.items():
                sandbox.push(value, name=var)
            if options["files"]:
                sandbox.push(*options["files"])
        if stop.is_set():
            raise Interrupted("stopped before it ran")

        def on_wait(elapsed: float) -> None:
            if stop.is_set():
                raise KeyboardInterrupt  # the sandbox cancels its run and raises Interrupted

        live = LiveOutput(lambda event: events.put((part.index, event)))
        run = sandbox.run(runs.code, outputs=options["outputs"], timeout=options["timeout"], live=live, on_wait=on_wait)
        live.finish(run.events)  # what the polls did not see: a short part's output comes all at the end
        if options.get("pull") and run.ok:
            folder = options["to"] / f"part-{part.index}"
            pulled = sandbox.pull(
                *options["pull"],
                to=folder,
                hidden=options["hidden"],
                force=options["force"],
                modules=options["modules"],
            )
            part.pulled = pulled
            if pulled.note:
                part.notes.append(pulled.note)
        return run
