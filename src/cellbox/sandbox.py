"""`Sandbox`: a session with one container — create or attach, push data, run code, pull results, revive.

Code travels as a file (DESIGN.md): the cell's code and its inputs are uploaded with cellbox's container runtime,
the model is asked to run one fixed loader line, the loader it ran is checked, and the runtime's result record and
files come back. A manifest of what was pushed (keyed by content fingerprint) makes re-pushing unchanged data free
and lets `revive()` rebuild an expired container.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import glob as globlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import backend, frames, progress
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
from .results import Artifact, RemoteError, RemoteValue, Run, SandboxGone
from .runtime import container_runtime_source
from .runtime.container import RESULT_MARKER

DATA_DIR = "/mnt/data"
PRIVATE = ".cellbox"  # cellbox's own files inside /mnt/data: runtime, inputs, run records
MAX_WORKERS = 8
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LoaderMismatch(CellboxError):
    """The model ran something other than cellbox's loader line; nothing it did is trusted."""


@dataclasses.dataclass
class Pushed:
    """One entry of the manifest: what was sent, where it lives, and how to send it again."""

    remote: str  # path relative to /mnt/data
    fingerprint: str
    local: Path  # the file that was uploaded (a cached copy for values)
    file_id: str | None = None
    path: str | None = None  # absolute path in the container, as the API reported it
    spec: dict[str, Any] | None = None  # for values: the runtime's spec (kind, format)


def _file_fingerprint(path: Path) -> str:
    """The file's content hash; re-hashed only when its size or modification time changes."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _file_hashes.get(key)
    if digest is None:
        digest = _file_hashes[key] = frames.file_fingerprint(path)
    return digest


_file_hashes: dict[tuple[str, int, int], str] = {}


class Sandbox:
    """A container plus what cellbox knows about it. Use `create`, `attach` or `get_or_create`."""

    def __init__(self, client: Client, container: Container, *, model: str | None = None) -> None:
        self.client = client
        self.container = container
        self.model = model or backend.model_for(client.settings)
        self.manifest: dict[str, Pushed] = {}  # remote path -> entry
        self.pending: dict[str, str] = {}  # variable name -> remote path of its value, loaded at the next run
        self._runtime: Pushed | None = None
        self._cache = Path(tempfile.mkdtemp(prefix="cellbox-"))
        self._owns_client = False
        self.progress: progress.TrackerFactory | None = None  # shows long pushes and pulls (the magics set it)
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
        self.manifest.clear()
        self.pending.clear()
        shutil.rmtree(self._cache, ignore_errors=True)
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def revive(self) -> Sandbox:
        """A new container with the same name and options, with everything in the manifest pushed again."""
        entries = list(self.manifest.values())
        self.container = self.client.containers.create(self.name or "cellbox", **self._options)
        self.manifest.clear()
        self._runtime = None
        self._upload_many([(e.local, e.remote, e.fingerprint, e.spec) for e in entries])
        for entry in entries:
            if entry.spec is not None:
                self.pending.setdefault(entry.spec["name"], entry.remote)
        return self

    # --- push ---------------------------------------------------------------------------------------------------

    def push(self, *items: Any, name: str | None = None, to: str | None = None) -> list[str]:
        """Send values or files. A DataFrame/Series/JSON value needs `name` (its variable in the sandbox);
        paths, folders and globs land under /mnt/data (or `to`). Returns the remote paths; unchanged data is
        not sent again."""
        jobs: list[tuple[Path, str, str, dict[str, Any] | None]] = []
        for item in items:
            if isinstance(item, (str, os.PathLike)) and name is None:
                jobs.extend(self._file_jobs(str(item), to))
            else:
                if name is None or not _NAME.match(name):
                    raise CellboxError(
                        f"pushing a {type(item).__name__} needs name= a valid Python variable name; got {name!r}"
                    )
                jobs.append(self._value_job(item, name))
        remotes = self._upload_many(jobs)
        for _, remote, _, spec in jobs:
            if spec is not None:
                self.pending[spec["name"]] = remote
        return remotes

    def _value_job(self, value: Any, name: str) -> tuple[Path, str, str, dict[str, Any]]:
        if frames.kind_of(value) is None:
            frames.write(value, self._cache / "x")  # raises the clear "can't be sent" error
        fp = frames.fingerprint(value)
        for entry in self.manifest.values():
            if entry.fingerprint == fp and entry.spec is not None and entry.spec["name"] == name:
                return entry.local, entry.remote, fp, entry.spec
        # One file per variable, here and in the sandbox: a new value replaces the old one rather than piling up.
        spec = frames.write(value, self._cache / name)
        local = Path(spec.pop("path"))
        spec["name"] = name
        return local, f"{PRIVATE}/inputs/{local.name}", fp, spec

    def _file_jobs(self, pattern: str, to: str | None) -> list[tuple[Path, str, str, None]]:
        matches = sorted(globlib.glob(pattern, recursive=True)) if globlib.has_magic(pattern) else [pattern]
        if not matches:
            raise CellboxError(f"nothing matches {pattern!r}; no files were sent")
        jobs = []
        for match in matches:
            path = Path(match)
            if path.is_dir():
                base = posixpath.join(to or "", path.resolve().name)
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    remote = posixpath.join(base, file.relative_to(path).as_posix())
                    jobs.append((file, remote, _file_fingerprint(file), None))
            elif path.is_file():
                remote = posixpath.join(to, path.name) if to else path.name
                jobs.append((path, remote, _file_fingerprint(path), None))
            else:
                raise CellboxError(f"no such file or folder: {match}; no files were sent")
        return jobs

    def _upload_many(self, jobs: Sequence[tuple[Path, str, str, dict[str, Any] | None]]) -> list[str]:
        # One upload per remote path, even when a push names the same file twice (the last one wins).
        todo = list({job[1]: job for job in jobs if self._changed(job[1], job[2])}.values())
        counter = progress.start(
            self.progress, f"push to {self.name or self.id}", sum(j[0].stat().st_size for j in todo)
        )

        def upload(job: tuple[Path, str, str, dict[str, Any] | None]) -> Pushed:
            local, remote, fp, spec = job
            with local.open("rb") as raw:
                body = progress.CountingReader(raw, counter) if counter else raw
                record = self._call(self.client.containers.files.create, self.id, body, filename=remote)
            return Pushed(remote, fp, local, record.id, record.path, spec)

        try:
            for entry in self._parallel(upload, todo):
                self.manifest[entry.remote] = entry
        finally:
            progress.finish(counter)
        return [job[1] for job in jobs]

    def _changed(self, remote: str, fp: str) -> bool:
        entry = self.manifest.get(remote)
        return entry is None or entry.fingerprint != fp

    def _parallel(self, work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
            return list(pool.map(work, items))

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
        """Run `code` in the sandbox. `inputs` are pushed as variables first, `files` as files; `outputs` name
        variables to bring back; `pull` globs of files to download into `to` afterwards."""
        for var, value in (inputs or {}).items():
            self.push(value, name=var)
        if files:
            self.push(*files)
        for var in outputs:
            if not _NAME.match(var):
                raise CellboxError(f"-o {var!r} is not a valid Python variable name")
        runtime = self._ensure_runtime()
        run_id = uuid.uuid4().hex[:12]
        run_dir = f"{DATA_DIR}/{PRIVATE}/runs/{run_id}"
        request: dict[str, Any] = {
            "run_id": run_id,
            "code": code,
            "result_path": f"{run_dir}/result.json",
            "out_dir": f"{run_dir}/out",
            "private_dir": f"{DATA_DIR}/{PRIVATE}",
            "watch": DATA_DIR,
            "inputs": [self._input_spec(var, remote) for var, remote in self.pending.items()],
            "outputs": list(outputs),
        }
        uploaded = self._call(
            self.client.containers.files.create,
            self.id,
            json.dumps(request).encode(),
            filename=f"{PRIVATE}/runs/{run_id}/request.json",
        )
        loader = loader_line(runtime.path or f"{DATA_DIR}/{runtime.remote}", uploaded.path or "")
        response = self._call(
            self.client.responses.create,
            model=self.model,
            input=run_prompt(loader),
            container=self.id,
            tool_choice="required",
            timeout=timeout,
        )
        calls = response.code_interpreter_calls
        if len(calls) != 1 or (calls[0].code or "").strip() != loader:
            ran = "\n---\n".join(c.code or "" for c in calls) or "(no code)"
            raise LoaderMismatch(
                f"the model did not run cellbox's loader exactly; it ran:\n{ran}\nNothing from this run is used. "
                f"Check CELLBOX_MODEL ({self.model}) supports the code_interpreter tool and follows instructions."
            )
        self.pending.clear()
        result = self._result(calls[0].logs, request["result_path"])
        return self._build_run(result, pull, to)

    def _input_spec(self, var: str, remote: str) -> dict[str, Any]:
        entry = self.manifest[remote]
        assert entry.spec is not None
        return {**entry.spec, "name": var, "path": entry.path or f"{DATA_DIR}/{remote}"}

    def _ensure_runtime(self) -> Pushed:
        source, fp = _runtime_source()
        if self._runtime is None or self._runtime.fingerprint != fp:
            # Named by content: the kernel keeps a loaded runtime by path, so a new version is a new path.
            name = f"{PRIVATE}/cellbox_runtime_{fp[:12]}.py"
            local = self._cache / posixpath.basename(name)
            local.write_bytes(source)
            record = self._call(self.client.containers.files.create, self.id, local, filename=name)
            self._runtime = Pushed(name, fp, local, record.id, record.path)
        return self._runtime

    def _result(self, logs: str, result_path: str) -> dict[str, Any]:
        for line in logs.splitlines():
            if line.startswith(RESULT_MARKER):
                return json.loads(line[len(RESULT_MARKER) :])
        found = self._files_at([result_path])
        if result_path not in found:
            raise CellboxError(
                f"the run left no result record ({result_path}); the sandbox may have restarted mid-run. "
                f"Output it printed:\n{logs[-2000:]}"
            )
        return json.loads(self._call(self.client.containers.files.content, self.id, found[result_path].id))

    def _files_at(self, paths: Iterable[str]) -> dict[str, ContainerFile]:
        """The file records at these absolute paths (newest first, stopping once all are found)."""
        wanted = set(paths)
        found: dict[str, ContainerFile] = {}
        if not wanted:
            return found

        def scan(container_id: str) -> None:
            for record in self.client.containers.files.list(container_id, order="desc", limit=100):
                if record.path in wanted and record.path not in found:
                    found[record.path] = record
                    if len(found) == len(wanted):
                        return

        self._call(scan, self.id)
        return found

    def _build_run(self, result: dict[str, Any], pull: Sequence[str], to: str | Path) -> Run:
        error = result.get("error")
        run = Run(
            id=result["run_id"],
            stdout=result.get("stdout", ""),
            stderr=result.get("stderr", ""),
            error=RemoteError(error["ename"], error["evalue"], error["traceback"], run_id=result["run_id"])
            if error
            else None,
            duration=result.get("duration"),
        )
        value = result.get("value") or {}
        outputs = result.get("outputs") or {}
        # The run's own files (values, figures) live in its folder, which the next run drops: everything the Run
        # hands over from there is fetched now. Files the code made in /mnt/data stay there, read when asked.
        figures = ([value["path"]] if value.get("kind") == "image" else []) + (result.get("figures") or [])
        specs = [outputs[n] for n in outputs]
        if value.get("kind") in ("dataframe", "series"):
            specs.append(value)
        records = self._files_at([s["path"] for s in specs] + figures + (result.get("changed") or []))

        def record_of(path: str) -> ContainerFile:
            record = records.get(path)
            if record is None:
                raise CellboxError(f"the sandbox wrote {path} but it is not in the container's file list")
            return record

        def fetch(spec: dict[str, Any]) -> Any:
            record = record_of(spec["path"])
            local = self._cache / f"{run.id}-{record.id}{posixpath.splitext(spec['path'])[1]}"
            self._call(self.client.containers.files.download, self.id, record.id, local)
            try:
                return frames.read(spec, local)
            finally:
                local.unlink()  # read into memory: the copy on disk has done its job

        def fetch_figure(path: str) -> Artifact:
            artifact = self._artifact(record_of(path))
            artifact.read()
            return artifact

        fetched = self._parallel(lambda job: fetch_figure(job) if isinstance(job, str) else fetch(job), specs + figures)
        run.variables = dict(zip(outputs, fetched[: len(outputs)], strict=True))
        if value.get("kind") in ("dataframe", "series"):
            run.value = fetched[len(outputs)]
            if value.get("truncated_from"):
                run.stderr += (
                    f"cellbox: showing the first {len(run.value):,} of {value['truncated_from']:,} rows; "
                    "bring the whole frame back with -o NAME (outputs=[...]).\n"
                )
        elif value.get("kind") == "json":
            run.value = value.get("json")
        elif value.get("kind") == "repr":
            run.value = RemoteValue(value)
        run.figures = fetched[len(specs) :]
        run.artifacts = [self._artifact(records[p]) for p in result.get("changed") or [] if p in records]
        if pull:
            self.pull(*pull, to=to)
        return run

    def _artifact(self, record: ContainerFile) -> Artifact:
        return Artifact(
            record,
            lambda f: self._call(self.client.containers.files.content, self.id, f.id),
            lambda f, target: self._call(self.client.containers.files.download, self.id, f.id, target),
        )

    # --- files and pull -----------------------------------------------------------------------------------------

    def files(self, *, include_private: bool = False) -> list[ContainerFile]:
        records = self._call(lambda cid: list(self.client.containers.files.list(cid, limit=100)), self.id)
        private = f"{DATA_DIR}/{PRIVATE}/"
        return [r for r in records if include_private or not (r.path or "").startswith(private)]

    def pull(self, *patterns: str, to: str | Path = ".") -> list[Path]:
        """Download the files matching these globs (relative to /mnt/data) into folder `to`."""
        target = Path(to)
        records = self.files()
        chosen: dict[str, ContainerFile] = {}
        for pattern in patterns:
            absolute = pattern if pattern.startswith("/") else f"{DATA_DIR}/{pattern}"
            matches = [r for r in records if fnmatch.fnmatchcase(r.path or "", absolute)]
            if not matches:
                raise CellboxError(f"no file in the sandbox matches {pattern!r}; `%container files` lists them")
            chosen.update({r.path or r.id: r for r in matches})
        todo = list(chosen.values())
        counter = progress.start(self.progress, f"pull from {self.name or self.id}", sum(r.bytes or 0 for r in todo))

        def download(record: ContainerFile) -> Path:
            local = target / posixpath.relpath(record.path or record.id, DATA_DIR)
            self._call(self.client.containers.files.download, self.id, record.id, local, progress=counter)
            return local

        try:
            return self._parallel(download, todo)
        finally:
            progress.finish(counter)

    # --- errors ---------------------------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API, turning "the container is gone" into one clear error."""
        try:
            return fn(*args, **kwargs)
        except (NotFoundError, BadRequestError) as exc:
            if _is_gone(exc, lambda: self.client.containers.retrieve(self.id)):
                raise SandboxGone(
                    f"sandbox {self.name or self.id} ({self.id}) has expired or was deleted. "
                    "Call revive() (the next %%container cell does it for you) to make a new one with the same "
                    "data pushed again."
                ) from None
            raise


GONE_STATUSES = ("expired", "deleted")


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


def loader_line(runtime_path: str, request_path: str) -> str:
    """The one line the model must run. Deterministic, so the code it reports running can be checked exactly.

    The runtime keeps itself loaded in the kernel (`sys.cellbox_runtimes`, keyed by its path, which names its
    content), so only the first run of a session pays for compiling it."""
    return (
        f"(getattr(__import__('sys'), 'cellbox_runtimes', {{}}).get({runtime_path!r}) "
        f"or __import__('runpy').run_path({runtime_path!r}))['run']({request_path!r})"
    )


@functools.lru_cache(maxsize=1)
def _runtime_source() -> tuple[bytes, str]:
    source = container_runtime_source()
    return source, frames.file_fingerprint_bytes(source)


def run_prompt(loader: str) -> str:
    return (
        "Call the python tool exactly once with exactly the code below, unchanged, then reply with the single word "
        f"done.\n\n```python\n{loader}\n```\n"
    )
