"""Moving data between the notebook and a container: pushes, pulls and the files a run leaves.

A manifest of what was pushed (keyed by content fingerprint) makes pushing unchanged data again free and lets a
new container get everything again (`Sandbox.revive`). Transfers of several files run in parallel. Each reports
its phases (checking files, serializing values, uploading, downloading) to the operation it is handed — a cell's,
when a cell pushes — or to one of its own, shown through the tracker factory it is given (`cellbox.session.progress`).
A push says which values a run must load for it (`Sent.inputs`); the session hands them to the run.

Values travel as files written to a private temporary folder: one file per variable, replaced by its next value,
kept because a revived container gets it again, and removed with the folder when the session closes or the
process exits. Nothing else is left there: the runtime is uploaded from memory, and a run's values are deleted
once read.

The service decides where an upload lands (its record's `path`; OpenAI's example answers
`/mnt/data/<32 hex>-<name>`, [Doc] in docs/CLOUD.md): an upload stored elsewhere than where
`push` said is moved into place by the runtime before the next run's code (`placements`). cellbox's own uploads
(the runtime, run requests) are known by id and never listed as the user's. Reading what a run left is
`cellbox.session.remote_files`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob as globlib
import os
import posixpath
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..api import CellboxError, ContainerFile, NotFoundError
from ..api.operation import FileSource
from ..boundary.local_paths import Landing, Pulled, copy_into, parts_under
from ..common.polling import parallel
from . import frames, progress
from .link import ContainerLink
from .protocol import DATA_DIR, PRIVATE, VARIABLE_NAME, runtime_file, runtime_siblings

# One file to upload: the local file, its path relative to /mnt/data, its fingerprint, and for a value the
# runtime's spec of it (kind, format, variable name).
Job = tuple[Path, str, str, dict[str, Any] | None]

# The values a run loads before its code: variable name -> the path of its file, relative to /mnt/data.
Inputs = dict[str, str]


@dataclasses.dataclass(frozen=True)
class Sent:
    """What a push sent (or found unchanged): every remote path, and the values among them for a run to load."""

    remotes: list[str]
    inputs: Inputs


@dataclasses.dataclass
class Pushed:
    """One entry of the manifest: what was sent, where it lives, and how to send it again."""

    remote: str  # path relative to /mnt/data
    fingerprint: str
    local: Path  # the file that was uploaded (a cached copy for values)
    file_id: str | None = None
    path: str | None = None  # absolute path in the container where the code finds it (once placed)
    spec: dict[str, Any] | None = None  # for values: the runtime's spec (kind, format)


def file_fingerprint(path: Path, report: Callable[[int], None] | None = None) -> str:
    """The file's content hash; re-hashed only when its size or modification time changes. `report` hears the
    bytes hashed (all of them at once when the hash was known)."""
    key = _hash_key(path)
    digest = _file_hashes.get(key)
    if digest is None:
        digest = _file_hashes[key] = frames.file_fingerprint(path, report=report)
    elif report is not None:
        report(key[1])
    return digest


def _hash_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


_file_hashes: dict[tuple[str, int, int], str] = {}


def landing(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> str:
    """Where a local file or folder lands, relative to /mnt/data: its path relative to folder `base` (the current
    folder by default) when it is inside it, so `data/raw.csv` lands at /mnt/data/data/raw.csv and code reading
    `data/raw.csv` works in both places; its own name when it is elsewhere (`/tmp/raw.csv`, `../raw.csv`: at
    /mnt/data/raw.csv). '' for `base` itself. Decided on the paths as written (`..` folded, links not followed)."""
    absolute = Path(os.path.abspath(path))
    try:
        inside = absolute.relative_to(os.path.abspath(base if base is not None else os.curdir))
    except ValueError:
        return absolute.name
    return inside.as_posix() if inside.parts else ""


def file_jobs(pattern: str, to: str | None, operation: progress.Operation | None = None) -> list[Job]:
    """The files a path, folder or glob names, each with where it lands under /mnt/data (or `to`): see `landing`.
    Hashing them is the `operation`'s "checking" phase."""
    matches = sorted(globlib.glob(pattern, recursive=True)) if globlib.has_magic(pattern) else [pattern]
    if not matches:
        raise CellboxError(f"nothing matches {pattern!r}; no files were sent")
    found: list[tuple[Path, str]] = []
    for match in matches:
        path = Path(os.path.abspath(match))  # kept in the manifest: pushed again from here, whatever the cwd is then
        if path.is_dir():
            base = posixpath.join(to or "", landing(path))
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                found.append((file, posixpath.join(base, file.relative_to(path).as_posix())))
        elif path.is_file():
            found.append((path, posixpath.join(to or "", landing(path))))
        else:
            raise CellboxError(f"no such file or folder: {match}; no files were sent")
    for file, remote in found:
        if remote.split("/", 1)[0] == PRIVATE:
            raise CellboxError(
                f"{file} would land in {DATA_DIR}/{PRIVATE}, which is cellbox's own: push it with to= another "
                "folder, or rename it; no files were sent"
            )
    if operation is not None:  # what was hashed before (unchanged since) costs nothing and is not worth a line
        unknown = sum(file.stat().st_size for file, _ in found if _hash_key(file) not in _file_hashes)
        operation.phase("checking", sum(file.stat().st_size for file, _ in found), size=unknown)
    report = operation.update if operation is not None else None
    jobs: list[Job] = [(file, remote, file_fingerprint(file, report), None) for file, remote in found]
    if operation is not None:
        operation.end_phase()
    return jobs


class Transfers:
    """The data side of one sandbox session, reaching its container through `link`."""

    def __init__(self, link: ContainerLink) -> None:
        self.link = link
        self.cache = Path(tempfile.mkdtemp(prefix="cellbox-"))
        self.manifest: dict[str, Pushed] = {}  # remote path -> entry
        self.progress: progress.TrackerFactory | None = None  # shows long pushes and pulls (the magics set it)
        self._runtime: tuple[str, str] | None = None  # (fingerprint, path in the container) of the uploaded runtime
        self.private_ids: set[str] = set()  # cellbox's own uploads (runtime, run requests): never the user's files
        # … and where they were stored: a run request the runtime appends to gets a new id, but keeps its path.
        self.private_paths: set[str] = set()
        # Uploads the service stored elsewhere than asked: wanted absolute path -> (stored path, file id), moved
        # into place by the runtime at the next run.
        self.placements: dict[str, tuple[str, str]] = {}
        self._taken: dict[str, tuple[str, str]] = {}  # the placements handed to the run in flight
        self._remove_cache = weakref.finalize(self, shutil.rmtree, self.cache, ignore_errors=True)  # at exit too

    def close(self) -> None:
        """Forget what was pushed and drop the cached copies."""
        self.manifest.clear()
        self.placements.clear()
        self.private_ids.clear()
        self.private_paths.clear()
        self._remove_cache()

    # --- push ---------------------------------------------------------------------------------------------------

    def push(
        self,
        *items: Any,
        name: str | None = None,
        to: str | None = None,
        operation: progress.Operation | None = None,
    ) -> Sent:
        """Values (with `name`) or paths, folders and globs (under /mnt/data, or `to`); unchanged data is not sent
        again. Its phases belong to `operation` when one is in progress, else to one of its own."""
        label = f"push {progress.names([name or str(item) for item in items])} to {self.link.label}"
        with progress.step(self.progress, label, operation) as operation:
            jobs: list[Job] = []
            for item in items:
                if isinstance(item, (str, os.PathLike)) and name is None:
                    jobs.extend(file_jobs(str(item), to, operation))
                else:
                    if name is None or not VARIABLE_NAME.match(name):
                        raise CellboxError(
                            f"pushing a {type(item).__name__} needs name= a valid Python variable name; got {name!r}"
                        )
                    jobs.append(self._value_job(item, name, operation))
            remotes = self.upload_many(jobs, operation)
        inputs: Inputs = {}
        for _, remote, _, spec in jobs:
            if spec is not None:
                inputs[spec["name"]] = remote
                self._forget_earlier_values(spec["name"], keep=remote)
        return Sent(remotes, inputs)

    def _forget_earlier_values(self, name: str, keep: str) -> None:
        """A variable holds one value: an earlier one in another format (a frame, then a JSON value) is neither
        kept on disk nor pushed again into a revived container."""
        for remote, entry in list(self.manifest.items()):
            if entry.spec is not None and entry.spec["name"] == name and remote != keep:
                del self.manifest[remote]
                entry.local.unlink(missing_ok=True)

    def _value_job(self, value: Any, name: str, operation: progress.Operation) -> Job:
        """The upload of a value: its fingerprint, then (when it changed) its file, written as the operation's
        "serializing" phase. The phase starts before the fingerprint, so a large frame shows at once."""
        if frames.kind_of(value) is None:
            frames.write(value, self.cache / name)  # raises the clear error naming what can't travel
        rows = len(value) if frames.kind_of(value) in ("dataframe", "series") else 0
        size = frames.size_in_memory(value)
        if rows:
            operation.phase("serializing", rows, "rows", size=size, items=[name])
        fp = frames.fingerprint(value)
        for entry in self.manifest.values():
            if entry.fingerprint == fp and entry.spec is not None and entry.spec["name"] == name:
                if rows:
                    operation.retract(rows, size, name)
                return entry.local, entry.remote, fp, entry.spec
        # One file per variable, here and in the sandbox: a new value replaces the old one rather than piling up.
        spec = frames.write(value, self.cache / name, progress=operation.update if rows else None)
        if rows:
            operation.end_phase()
        local = Path(spec.pop("path"))
        spec["name"] = name
        return local, f"{PRIVATE}/inputs/{local.name}", fp, spec

    def upload_many(self, jobs: Sequence[Job], operation: progress.Operation | None = None) -> list[str]:
        """Upload what changed (one upload per remote path: the last job for a path wins); returns every remote
        path, sent or not. The bytes sent are the "uploading" phase of `operation`, or of one of its own."""
        todo = list({job[1]: job for job in jobs if self._changed(job[1], job[2])}.values())
        with progress.step(self.progress, f"push to {self.link.label}", operation) as operation:
            if todo:
                operation.phase("uploading", sum(j[0].stat().st_size for j in todo))

            def upload(job: Job) -> tuple[Pushed, ContainerFile]:
                local, remote, fp, spec = job
                with local.open("rb") as raw:
                    # A raw reader is read like any binary file; typeshed just doesn't count RawIOBase as IO[bytes].
                    counted = cast(BinaryIO, progress.CountingReader(raw, operation.update))
                    record = self.upload(counted, remote)
                return Pushed(remote, fp, local, record.id, f"{DATA_DIR}/{remote}", spec), record

            for entry, record in parallel(upload, todo):
                self.manifest[entry.remote] = entry
                self._place_later(entry.path or "", record)
            if todo:
                operation.end_phase()
        return [job[1] for job in jobs]

    def _place_later(self, wanted: str, record: ContainerFile) -> None:
        """Remember to move an upload the service stored elsewhere; an earlier upload for the same place that
        was never moved is deleted (best effort), so it doesn't linger where the service put it."""
        earlier = self.placements.pop(wanted, None)
        if earlier is not None:
            self._forget_file(earlier[1])
        if record.path and record.path != wanted:
            self.placements[wanted] = (record.path, record.id)

    def _forget_file(self, file_id: str) -> None:
        try:
            self.link.client.containers.files.delete(self.link.id, file_id)
        except NotFoundError:
            pass
        except CellboxError:
            pass  # best effort: a stray file is untidy, not wrong
        self.private_ids.discard(file_id)

    def take_placements(self) -> list[dict[str, str]]:
        """The moves the next run makes before its code (and forgets them here)."""
        moves = [{"from": stored, "to": wanted} for wanted, (stored, _) in self.placements.items()]
        self._taken = dict(self.placements)
        self.placements.clear()
        return moves

    def restore_placements(self) -> None:
        """The moves of a run that did not start: the next run makes them (a later upload for a place wins)."""
        for wanted, entry in self._taken.items():
            self.placements.setdefault(wanted, entry)
        self._taken = {}

    def upload_private(self, body: FileSource, filename: str) -> ContainerFile:
        """One of cellbox's own files (a run request): known by id, never shown as the user's."""
        record = self.upload(body, filename)
        self._mark_private(record)
        return record

    def _mark_private(self, record: ContainerFile) -> None:
        self.private_ids.add(record.id)
        if record.path:
            self.private_paths.add(record.path)

    def delete_private(self, record: ContainerFile) -> None:
        """Delete one of cellbox's own files once read, so listings don't grow with every cell. A run request the
        runtime appended its live output to is a new version with a new id: it is found again by its path."""
        try:
            self.link.client.containers.files.delete(self.link.id, record.id)
        except NotFoundError:
            for current in self.files(include_private=True):
                if record.path and current.path == record.path:
                    self._forget_file(current.id)
        except CellboxError:
            pass  # best effort: a stray file is untidy, not wrong
        self.private_ids.discard(record.id)

    def _changed(self, remote: str, fp: str) -> bool:
        entry = self.manifest.get(remote)
        return entry is None or entry.fingerprint != fp

    def upload(self, body: FileSource, filename: str) -> ContainerFile:
        """One file (bytes, a path or a binary file) as `filename`, relative to /mnt/data."""
        return self.link.call(self.link.client.containers.files.create, self.link.id, body, filename=filename)

    def push_again(self) -> Inputs:
        """Everything in the manifest, into the (new) current container; returns the values, which the next run
        must load again."""
        entries = list(self.manifest.values())
        self.manifest.clear()
        self.placements.clear()
        self.private_ids.clear()
        self.private_paths.clear()
        self._runtime = None
        self.upload_many([(e.local, e.remote, e.fingerprint, e.spec) for e in entries])
        return {entry.spec["name"]: entry.remote for entry in entries if entry.spec is not None}

    def private_path(self, filename: str) -> str | None:
        """Where one of cellbox's own files uploaded as `filename` will be, when this backend stores uploads where
        they are asked to be (the runtime's upload showed it); None where it renames them (OpenAI prefixes a hash):
        then only the upload's answer can tell."""
        asked = f"{DATA_DIR}/{runtime_file()[0]}"
        return f"{DATA_DIR}/{filename}" if self._runtime is not None and self._runtime[1] == asked else None

    def runtime(self, *, again: bool = False) -> str:
        """The container runtime's path in the container; uploaded (from memory) once per container and version,
        or `again` (its files were removed)."""
        name, source, fp = runtime_file()
        if again or self._runtime is None or self._runtime[0] != fp:
            for helper, helper_source in runtime_siblings():
                self._mark_private(self.upload(helper_source, helper))
            record = self.upload(source, name)
            self._mark_private(record)
            self._runtime = (fp, record.path or f"{DATA_DIR}/{name}")
        return self._runtime[1]

    def input_specs(self, inputs: Inputs) -> list[dict[str, Any]]:
        """The runtime's specs of these values, each with its path in the container."""
        specs = []
        for var, remote in inputs.items():
            entry = self.manifest[remote]
            assert entry.spec is not None
            specs.append({**entry.spec, "name": var, "path": entry.path or f"{DATA_DIR}/{remote}"})
        return specs

    def restore_specs(self) -> list[dict[str, Any]]:
        """Every value pushed to this container: what the runtime loads again when it finds the kernel restarted."""
        return [
            {**entry.spec, "path": entry.path or f"{DATA_DIR}/{entry.remote}"}
            for entry in self.manifest.values()
            if entry.spec is not None
        ]

    # --- files and pull -------------------------------------------------------------------------------------------

    def files(self, *, include_private: bool = False) -> list[ContainerFile]:
        records = self.link.call(lambda cid: list(self.link.client.containers.files.list(cid, limit=100)), self.link.id)
        placed = [self._as_placed(record) for record in records]
        return placed if include_private else [record for record in placed if not self.is_private(record)]

    def is_private(self, record: ContainerFile) -> bool:
        """cellbox's own: one of its uploads (by id) or anything under /mnt/data/.cellbox."""
        path = record.path or ""
        return record.id in self.private_ids or path in self.private_paths or path.startswith(f"{DATA_DIR}/{PRIVATE}/")

    def _as_placed(self, record: ContainerFile) -> ContainerFile:
        """An upload not yet moved into place, shown where `push` said it is."""
        for wanted, (_, file_id) in self.placements.items():
            if file_id == record.id:
                return ContainerFile.from_dict({**record.to_dict(), "path": wanted})
        return record

    def pull(
        self,
        *patterns: str,
        to: str | Path = ".",
        hidden: bool = False,
        force: bool = False,
        modules: bool = False,
        operation: progress.Operation | None = None,
    ) -> Pulled:
        """Download the files matching these globs (relative to /mnt/data) into folder `to`, each at its path
        under /mnt/data. The container chose those names, so `boundary.local_paths` makes every local path: hidden files
        only with `hidden`, code that would shadow a Python module only with `modules`, an existing file replaced
        only with `force`, nothing outside `to`. Returns the files written; what was skipped is in `.skipped`, said
        in one line by `.note`. Its phase belongs to `operation` when one is in progress, else to one of its own."""
        records = self.files()  # uploads not yet moved into place are shown where they belong
        chosen: dict[str, ContainerFile] = {}
        for pattern in patterns:
            absolute = pattern if pattern.startswith("/") else f"{DATA_DIR}/{pattern}"
            matches = [r for r in records if fnmatch.fnmatchcase(r.path or "", absolute)]
            if not matches:
                raise CellboxError(f"no file in the container matches {pattern!r}; `%container files` lists them")
            chosen.update({r.path or r.id: r for r in matches})
        landing = Landing(to, hidden=hidden, force=force, modules=modules)
        todo = [(parts, r) for r in chosen.values() if (parts := landing.check(r.path or "", self._local)) is not None]
        label = f"pull {progress.names(list(patterns))} from {self.link.label}"
        with progress.step(self.progress, label, operation) as operation:
            operation.phase("downloading", sum(r.bytes or 0 for _, r in todo))

            def download(job: tuple[tuple[str, ...], ContainerFile]) -> Path | None:
                parts, record = job

                def fill(out: BinaryIO) -> None:
                    self.link.call(copy_into, self.link.client, self.link.id, record.id, out, operation.update)

                return landing.save(parts, fill)

            pulled = [path for path in parallel(download, todo) if path is not None]
            operation.end_phase()
        return Pulled(pulled, landing.skipped)

    @staticmethod
    def _local(path: str) -> tuple[str, ...]:
        return parts_under(path, DATA_DIR)
