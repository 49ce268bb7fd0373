"""Reading a container's files back: by path or id, a byte range of one, and a run's result as a `Run`.

Listings may lag behind what code wrote, with `bytes: null`, and a listed file's content may 404 at first ([Obs]
openai-python#2466): lookups are retried with backoff within a bound, and what can't be found is reported, never
dropped. A run's files are the newest in the listing, so they are looked for in its first pages only
(`LISTING_PAGES`): a record naming files that never appear costs a bounded number of requests, not the whole
listing again at every look.

What comes back is the container's: a result record is read only up to the boundary's size, and local copies of a
run's files get names cellbox makes, in the session's private folder, never names from the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..api import APIStatusError, CellboxError, ContainerFile, NotFoundError
from ..api import operations as ops
from ..api.streams import ContentStream
from ..boundary import record as record_bounds
from ..boundary.local_paths import copy_into
from ..common.polling import Backoff, parallel
from . import frames, progress
from .link import ContainerLink
from .result_record import Result
from .results import Artifact, Run

# How long a file the runtime says it wrote may take to show in the listing (or its content to stop 404ing).
LISTING_WAIT = 15.0
CONTENT_WAIT = 3.0
LISTING_PAGES = 5  # pages of the newest files looked through at each look, plus one per 100 files wanted


class RemoteFiles:
    """Reads from one sandbox session's container, reached through `link`. A run's values are read through files in
    `cache`, the session's private folder."""

    def __init__(self, link: ContainerLink, cache: Path) -> None:
        self.link = link
        self.cache = cache
        self.progress: progress.TrackerFactory | None = None  # shows reading a run's values (Sandbox.progress)

    def files_at(self, paths: Iterable[str], *, wait: float = 0.0) -> dict[str, ContainerFile]:
        """The file records at these absolute paths (newest first, stopping once all are found). With `wait`,
        listings are polled with backoff for up to that many seconds until every path is listed with its size
        (a listing may lag behind what code just wrote); what is still missing then is left out."""
        wanted = set(paths)
        found: dict[str, ContainerFile] = {}
        if not wanted:
            return found

        most = (LISTING_PAGES + len(wanted) // 100) * 100

        def scan(container_id: str) -> None:
            listing = self.link.client.containers.files.list(container_id, order="desc", limit=100)
            for seen, record in enumerate(listing, 1):
                if record.path in wanted and (record.path not in found or found[record.path].bytes is None):
                    found[record.path] = record
                    if len(found) == len(wanted) and all(r.bytes is not None for r in found.values()):
                        return
                if seen >= most:
                    return

        pause = Backoff(wait)
        while True:
            self.link.call(scan, self.link.id)
            settled = len(found) == len(wanted) and all(r.bytes is not None for r in found.values())
            if settled or not pause.wait():
                return found

    def content(self, file_id: str, *, wait: float = 0.0) -> bytes:
        """A file's bytes; with `wait`, a 404 is retried with backoff for up to that many seconds (content may
        404 for a file just listed) before it stands."""
        pause = Backoff(wait)
        while True:
            try:
                return self.link.call(self.link.client.containers.files.content, self.link.id, file_id)
            except NotFoundError:
                if not pause.wait():
                    raise

    def head(self, file_id: str, limit: int, *, wait: float = 0.0) -> bytes:
        """The first `limit` bytes of a file (all of it when shorter): the download stops there, whatever size
        the file claims. With `wait`, a 404 is retried as in `content`."""

        def read(container_id: str) -> bytes:
            # Asked for as a byte range (a backend that honours it sends no more); read only that far either way.
            op = ops.container_file_content(container_id, file_id)
            op = dataclasses.replace(op, headers={**(op.headers or {}), "Range": f"bytes=0-{max(limit, 1) - 1}"})
            try:
                response = self.link.client._execute(op)
            except APIStatusError as exc:
                if exc.status_code == 416:  # no byte 0: the file is empty
                    return b""
                raise
            chunks: list[bytes] = []
            got = 0
            with ContentStream(response) as body:
                for chunk in body:
                    chunks.append(chunk[: limit - got])
                    got += len(chunks[-1])
                    if got >= limit:
                        break  # leaving the block closes the response: the rest is never read
            return b"".join(chunks)

        pause = Backoff(wait)
        while True:
            try:
                return self.link.call(read, self.link.id)
            except NotFoundError:
                if not pause.wait():
                    raise

    def read_from(self, file_id: str, offset: int, limit: int = 1 << 20) -> bytes:
        """At most `limit` bytes of a file from `offset` (a byte range): what a run's live output added since the
        last read. Nothing yet (416), or a file a lagging backend doesn't serve yet (404), is b""."""
        op = ops.container_file_content(self.link.id, file_id)
        op = dataclasses.replace(op, headers={**(op.headers or {}), "Range": f"bytes={offset}-{offset + limit - 1}"})
        try:
            response = self.link.client._execute(op)
        except NotFoundError:
            return b""
        except APIStatusError as exc:
            if exc.status_code == 416:
                return b""
            raise
        chunks: list[bytes] = []
        got = 0
        with ContentStream(response) as body:
            if response.status_code == 200 and offset:  # a backend that ignores ranges sends it all
                skip = offset
                for chunk in body:
                    if skip >= len(chunk):
                        skip -= len(chunk)
                        continue
                    chunks.append(chunk[skip:])
                    skip = 0
                    got += len(chunks[-1])
                    if got >= limit:
                        break
            else:
                for chunk in body:
                    chunks.append(chunk)
                    got += len(chunk)
                    if got >= limit:
                        break
        return b"".join(chunks)[:limit]

    def content_at(self, path: str, *, wait: float = 0.0) -> bytes | None:
        """The bytes of the file at this absolute path, or None when the container has none there (after
        polling the listing for up to `wait` seconds)."""
        record = self.files_at([path], wait=wait).get(path)
        if record is None:
            return None
        return self.content(record.id, wait=CONTENT_WAIT if wait else 0.0)

    def record(self, file_id: str) -> dict[str, Any]:
        """A result record's JSON from its file, read no further than the boundary allows (`RecordRefused` past
        it)."""
        return record_bounds.parse(self.head(file_id, record_bounds.MAX_RECORD_BYTES + 1, wait=CONTENT_WAIT))

    def record_at(self, path: str, *, wait: float = 0.0) -> dict[str, Any] | None:
        """The result record at this absolute path (as `record`), or None when the container has none there (after
        polling the listing for up to `wait` seconds)."""
        found = self.files_at([path], wait=wait).get(path)
        if found is None:
            return None
        if (found.bytes or 0) > record_bounds.MAX_RECORD_BYTES:
            raise record_bounds.refused(f"it is larger than {record_bounds.MAX_RECORD_BYTES >> 20} MiB")
        return self.record(found.id)

    def collect(self, result: Result, operation: progress.Operation | None = None) -> Run:
        """The `Run` for a result, its values read and its figures fetched now: they live in the run's folder,
        which the next run drops. Small ones came inside the result record; the rest are looked up in the
        listing (polled: it may lag). Files the code made in /mnt/data stay there, read when asked; one that
        can't be found is reported in `Run.notes`.

        Downloading the values and reading them are phases of `operation`, the one in progress (a cell's), so a
        large `-o` frame shows from its first byte to its last row; without one (`Sandbox.run` from Python) they
        are an operation of their own, shown through `progress`."""
        needed = [path for path in result.paths() if path not in result.inline]
        records = self.files_at(needed, wait=LISTING_WAIT)
        notes = list(result.notes)
        figures = [path for path in result.figures if path in result.inline or path in records]
        unseen = [path for path in result.figures if path not in figures]
        if unseen:
            notes.append(f"the run saved {_some(unseen)} as figures, which the container's file list never showed")
        specs = result.frame_specs
        named = [*result.variables, *(["the value"] if len(specs) > len(result.variables) else [])]
        # Named by cellbox, by position: a record's paths name nothing on this machine.
        local = [self.cache / f"value-{index}.{spec['format']}" for index, spec in enumerate(specs)]
        try:
            label = f"read {progress.names(named)} from {self.link.label}"
            with progress.step(self.progress, label, operation) as operation:
                remote = self._stage(result, records, local)
                if remote:
                    operation.phase("downloading", sum(record.bytes or 0 for record, _ in remote), items=named)
                fetches: list[Callable[[], Artifact | None]] = [
                    functools.partial(self.download, record.id, file, report=operation.update, wait=CONTENT_WAIT)
                    for record, file in remote
                ]
                fetches += [functools.partial(self._figure, figure, result, records) for figure in figures]
                fetched = parallel(lambda fetch: fetch(), fetches)
                rows = sum(spec.get("rows") or 0 for spec in specs)
                if rows:
                    size = sum(file.stat().st_size for file in local)
                    operation.phase("reading", rows, "rows", size=size, items=named)
                names: list[str | None] = [*result.variables, *([None] * (len(specs) - len(result.variables)))]
                values = parallel(functools.partial(_read, operation), list(zip(specs, local, names, strict=True)))
                if remote or rows:
                    operation.end_phase()
        finally:
            for file in local:  # read into memory (or failed): the copies on disk have done their job
                with contextlib.suppress(OSError):  # one that can't go must not keep the others
                    file.unlink(missing_ok=True)
        artifacts = []
        missing = [path for path in result.changed if path not in records]
        if missing:
            notes.append(
                f"the run wrote {_some(missing)}, not in the container's file list within {LISTING_WAIT:.0f}s; "
                "`%container files` (Sandbox.files()) shows what is there"
            )
        for path in result.changed:
            record = records.get(path)
            if record is None:
                continue
            if record.bytes is None and path in result.sizes:
                record = ContainerFile.from_dict({**record.to_dict(), "bytes": result.sizes[path]})
            artifact = self.artifact(record)
            artifact.shown_as_figure = path in result.shown_figures
            artifacts.append(artifact)
        run = result.to_run(values, fetched[len(remote) :], artifacts)
        run.notes = notes
        return run

    def _stage(
        self, result: Result, records: dict[str, ContainerFile], local: list[Path]
    ) -> list[tuple[ContainerFile, Path]]:
        """The values' files: those that came inside the record written to `local` now, the rest (returned) to
        download there. A value whose file the listing never showed fails the reading, saying so."""
        remote = []
        names = [*result.variables, *([None] * (len(result.frame_specs) - len(result.variables)))]
        for spec, path, name in zip(result.frame_specs, local, names, strict=True):
            # A file the memory could never hold is refused before a byte of it is fetched or written here.
            if spec["path"] in result.inline:
                frames.check_declared(name, len(result.inline[spec["path"]]))
                path.write_bytes(result.inline[spec["path"]])
            elif spec["path"] in records:
                frames.check_declared(name, records[spec["path"]].bytes)
                remote.append((records[spec["path"]], path))
            else:
                raise CellboxError(
                    f"the run wrote {spec['path']} but it did not appear in the container's file list within "
                    f"{LISTING_WAIT:.0f}s; run the cell again, or check the backend's file listing."
                )
        return remote

    def _figure(self, path: str, result: Result, records: dict[str, ContainerFile]) -> Artifact:
        """A figure the run saved, fetched now (the next run drops its folder)."""
        if path in result.inline:
            data = result.inline[path]
            record = ContainerFile.from_dict(
                {"id": "", "container_id": self.link.id, "path": path, "bytes": len(data), "source": "assistant"}
            )
            artifact = self.artifact(record)
            artifact._cache = data
            return artifact
        artifact = self.artifact(records[path])
        artifact.read()
        return artifact

    def download(
        self, file_id: str, to: Path, *, report: Callable[[int], None] | None = None, wait: float = 0.0
    ) -> None:
        """A file streamed to `to` (written whole or not at all); `report` hears each chunk's size. With `wait`, a
        404 is retried as in `content`."""
        pause = Backoff(wait)
        while True:
            try:
                self.link.call(self.link.client.containers.files.download, self.link.id, file_id, to, progress=report)
                return
            except NotFoundError:
                if not pause.wait():
                    raise

    def artifact(self, record: ContainerFile) -> Artifact:
        return Artifact(
            record,
            lambda f: self.content(f.id, wait=CONTENT_WAIT),
            lambda f, out: self.link.call(copy_into, self.link.client, self.link.id, f.id, out),
            _head=lambda f, limit: self.head(f.id, limit, wait=CONTENT_WAIT),
        )


def _some(paths: list[str], shown: int = 3) -> str:
    """A few paths, and how many more."""
    said = ", ".join(paths[:shown])
    return said + (f" and {len(paths) - shown:,} more" if len(paths) > shown else "")


def _read(operation: progress.Operation, job: tuple[dict[str, Any], Path, str | None]) -> Any:
    """One value read from its file, its rows counted once it is. The file is the container's: one that does not
    read as the value its record claims is refused in one line, not a traceback through pandas or pyarrow."""
    try:
        value = frames.read(*job)  # the -o name (None for the last value) says whose memory it would take
    except CellboxError:  # said already, in words (a value too big for this machine's memory)
        raise
    except (MemoryError, KeyboardInterrupt, Warning):  # a warning made an error is the caller's to see
        raise
    except Exception as exc:
        raise record_bounds.refused(f"a value it names does not read as its kind says ({type(exc).__name__})") from None
    operation.update(job[0].get("rows") or 0)
    return value
