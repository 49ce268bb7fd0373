"""What a run gives back: `Run`, its `Artifact`s, the `Usage` of the model it took, and `RemoteError` for an
exception raised in the container.

They render themselves in a notebook (`_repr_html_`, `_repr_png_`, `_render_traceback_`) and are plain Python
objects elsewhere.
"""

from __future__ import annotations

import dataclasses
import html
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..api import ContainerFile
from ..boundary import local_paths
from .errors import RemoteError

IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
PNG_REPR_LIMIT = 10_000_000  # an artifact displays itself as an image up to this size


@dataclasses.dataclass
class Display:
    """One display of a run, as its mimebundle: it shows itself in a notebook as it showed in the container."""

    data: dict[str, Any]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.data, self.metadata

    def __repr__(self) -> str:
        return str(self.data.get("text/plain", f"<display {', '.join(self.data)}>"))


class RemoteValue:
    """A cell's last expression that is neither a frame nor an image: shown as the container's displayhook showed
    it (its bundle, cleaned at the boundary), else as its repr."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        bundle = self.info.get("bundle") or {}
        data = dict(bundle.get("data") or {})
        data.setdefault("text/plain", repr(self))
        return data, dict(bundle.get("metadata") or {})

    def __repr__(self) -> str:
        return str(self.info.get("repr", ""))


@dataclasses.dataclass
class Artifact:
    """A file in the container that a run created or changed.

    `read()` brings the whole file; `head(n)` at most its first n bytes, whatever size the file claims (what
    previews use: a sparse file can claim gigabytes). `_head` asks for that byte range and stops reading there
    even if the backend sends more; an artifact made without one reads the whole file once and keeps it."""

    file: ContainerFile
    _fetch: Callable[[ContainerFile], bytes] = dataclasses.field(repr=False)
    _download: Callable[[ContainerFile, BinaryIO], object] = dataclasses.field(repr=False)  # streams it into a file
    _cache: bytes | None = dataclasses.field(default=None, repr=False)
    _head: Callable[[ContainerFile, int], bytes] | None = dataclasses.field(default=None, repr=False)
    _prefix: bytes = dataclasses.field(default=b"", repr=False)  # the longest prefix read so far
    _prefix_is_all: bool = dataclasses.field(default=False, repr=False)  # ... and the file ends there
    # saved from a figure the run displayed too: the notebook shows it there, and lists this file without it
    shown_as_figure: bool = False

    @property
    def path(self) -> str:
        return self.file.path or ""

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def size(self) -> int | None:
        return self.file.bytes

    @property
    def mimetype(self) -> str | None:
        return IMAGE_SUFFIXES.get(posixpath.splitext(self.path)[1].lower())

    def read(self) -> bytes:
        if self._cache is None:
            self._cache = self._fetch(self.file)
        return self._cache

    def head(self, limit: int) -> bytes:
        """The first `limit` bytes of the file (all of it when shorter); never reads past them."""
        if self._cache is not None:
            return self._cache[:limit]
        if len(self._prefix) < limit and not self._prefix_is_all:
            if self._head is None:
                return self.read()[:limit]
            self._prefix = self._head(self.file, limit)
            self._prefix_is_all = len(self._prefix) < limit
        return self._prefix[:limit]

    def download(
        self, to: str | Path = ".", *, hidden: bool = False, force: bool = False, modules: bool = False
    ) -> Path:
        """Save into folder `to` under the file's name (or as file `to` when it isn't an existing folder); returns
        the local path. The name is the container's: a hidden one (".bashrc") is saved only with `hidden`; code
        that would shadow a Python module ("pandas.py", named so by the container or by `to`) only with `modules`;
        an existing file is replaced only with `force` (`local_paths.Refused` says why not)."""
        target = Path(to)
        if target.is_dir():
            folder, name, hidden_ok = target, self.name, hidden
        else:  # a name the user chose
            folder, name, hidden_ok = target.parent, target.name, True
        hints = {
            "hidden": "hidden=True saves it",
            "module": "modules=True saves it",
            "existing": "force=True replaces it",
        }
        try:
            with local_paths.create(folder, (name,), hidden=hidden_ok, force=force, modules=modules) as out:
                if self._cache is not None:
                    out.write(self._cache)
                else:
                    self._download(self.file, out)
        except local_paths.Refused as refused:
            hint = hints.get(refused.kind)
            said = f"{refused.reason}; {hint}" if hint else refused.reason
            raise local_paths.Refused(refused.kind, refused.name, f"not saved in {folder}: {said}") from None
        return folder / name

    def _repr_png_(self) -> bytes | None:
        if self.mimetype != "image/png" or (self.size or 0) > PNG_REPR_LIMIT:
            return None
        data = self.head(PNG_REPR_LIMIT + 1)
        return data if len(data) <= PNG_REPR_LIMIT else None

    def _repr_html_(self) -> str:
        size = "?" if self.size is None else f"{self.size:,} bytes"
        return f"<code>{html.escape(self.path)}</code> ({size})"


@dataclasses.dataclass(frozen=True)
class Usage:
    """Tokens the backend billed for running cells, as its responses' `usage` says: what the model read
    (`input_tokens`: the prompt, the instructions and the call's logs, of which `cached_tokens` came from its prompt
    cache) and wrote (`output_tokens`: the call, the reply and `reasoning_tokens`), summed over `responses`."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    responses: int = 0

    @classmethod
    def of(cls, usage: object) -> Usage | None:
        """From one response's `usage` object; None when the backend sent none."""
        if not isinstance(usage, Mapping):
            return None

        def count(value: object) -> int:
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

        read, written = count(usage.get("input_tokens")), count(usage.get("output_tokens"))
        read_details = usage.get("input_tokens_details")
        written_details = usage.get("output_tokens_details")
        return cls(
            input_tokens=read,
            output_tokens=written,
            total_tokens=count(usage.get("total_tokens")) or read + written,
            cached_tokens=count(read_details.get("cached_tokens")) if isinstance(read_details, Mapping) else 0,
            reasoning_tokens=(
                count(written_details.get("reasoning_tokens")) if isinstance(written_details, Mapping) else 0
            ),
            responses=1,
        )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))

    def __str__(self) -> str:
        said = f"{self.total_tokens:,} tokens ({self.input_tokens:,} in, {self.output_tokens:,} out"
        if self.cached_tokens:
            said += f", {self.cached_tokens:,} cached"
        if self.reasoning_tokens:
            said += f", {self.reasoning_tokens:,} reasoning"
        said += ")"
        if self.responses != 1:
            said += f" over {self.responses:,} responses"
        return said


def add_usage(total: Usage | None, more: Usage | None) -> Usage | None:
    """A sum where None is "not reported": it counts for nothing, and a sum of nothing reported stays None."""
    if more is None:
        return total
    return more if total is None else total + more


@dataclasses.dataclass
class Run:
    """The outcome of `Sandbox.run`: output streams, the error if any, the last value, the `-o` variables brought
    back (`variables`, by name), figures and artifacts, `usage` (the model's tokens, summed when it was asked
    twice), and `notes`: what cellbox could not do (an artifact it could not find, an upload it could not place) or
    had to say (the model was asked again)."""

    id: str
    stdout: str = ""
    stderr: str = ""
    error: RemoteError | None = None
    value: Any = None
    variables: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: list[Artifact] = dataclasses.field(default_factory=list)
    figures: list[Artifact] = dataclasses.field(default_factory=list)
    duration: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # what cellbox could not do or had to say
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # streams, displays and the value, in order
    value_bundle: Display | None = None  # the last value as the container's displayhook showed it
    state_lost: bool = False  # the container's Python process restarted before this run: earlier variables are gone
    restored: list[str] = dataclasses.field(default_factory=list)  # pushed variables loaded again after that
    usage: Usage | None = None  # what the model billed for this run (None: the backend did not say)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def displays(self) -> list[Display]:
        """What the code displayed (`display()`, figures), in order, as mimebundles."""
        return [Display(e["data"], e.get("metadata") or {}) for e in self.events if e.get("type") == "display_data"]

    def raise_for_error(self) -> Run:
        if self.error is not None:
            raise self.error
        return self

    def _repr_html_(self) -> str:
        parts = [f"<b>run {html.escape(self.id)}</b>: {'ok' if self.ok else 'failed'}"]
        if self.stdout:
            parts.append(f"<pre>{html.escape(self.stdout)}</pre>")
        if self.error is not None:
            parts.append(f"<pre style='color:var(--jp-error-color1,#c00)'>{html.escape(self.error.traceback)}</pre>")
        if self.artifacts:
            items = "".join(f"<li>{a._repr_html_()}</li>" for a in self.artifacts)
            parts.append(f"<ul>{items}</ul>")
        for note in self.notes:
            parts.append(f"<p>cellbox: {html.escape(note)}</p>")
        return "\n".join(parts)
