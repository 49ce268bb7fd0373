"""Typed objects for what the API returns.

Each object names the fields cellbox relies on and keeps every other field it was given in `extra`, readable as
an attribute too: the API grows, and a newer server must not break an older client. `to_dict()` gives back the
object as the server sent it.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

__all__ = [
    "APIObject",
    "CodeInterpreterCall",
    "Container",
    "ContainerFile",
    "ContainerFileCitation",
    "Deleted",
    "ExpiresAfter",
    "File",
    "ImageOutput",
    "LogsOutput",
    "Page",
    "Response",
    "ResponseEvent",
]

R = TypeVar("R", bound="APIObject")
_FIELD_NAMES: dict[type, frozenset[str]] = {}  # per object class, its fields but `extra`


class APIObject:
    """A dataclass filled from a JSON object; unknown fields land in `extra`."""

    # Fields that hold nested objects: name -> how to build one from its JSON.
    _nested: ClassVar[Mapping[str, Any]] = {}
    extra: dict[str, Any]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls)) - {"extra"}  # type: ignore[arg-type]
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in names:
                build = cls._nested.get(key)
                known[key] = build(value) if build is not None and value is not None else value
            else:
                extra[key] = value
        made = cls(**known, extra=extra)  # type: ignore[call-arg]  # every subclass is an @api_object dataclass
        made.__dict__["_sent"] = dict(data)
        return made

    def to_dict(self) -> dict[str, Any]:
        sent = self.__dict__.get("_sent")
        if sent is not None:
            return dict(sent)
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if field.name == "extra":
                continue
            out[field.name] = _plain(getattr(self, field.name))
        out.update(self.extra)
        return out

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that aren't fields: look in the unknown fields the server sent.
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!s} has no field {name!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, APIObject):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def api_object(cls: type[R]) -> type[R]:
    """Make an APIObject subclass a dataclass with an `extra` field, repr'd compactly."""
    cls.__annotations__["extra"] = "dict[str, Any]"
    cls.extra = dataclasses.field(default_factory=dict, repr=False)
    return dataclasses.dataclass(cls)


@api_object
class ExpiresAfter(APIObject):
    anchor: str = "last_active_at"
    minutes: int | None = None


@api_object
class Container(APIObject):
    """A container: `id` is `cntr_…`; status is `running`, `expired` or `deleted`."""

    _nested: ClassVar[Mapping[str, Any]] = {"expires_after": ExpiresAfter.from_dict}

    id: str
    name: str | None = None
    object: str = "container"
    created_at: int | None = None
    status: str | None = None
    last_active_at: int | None = None
    expires_after: ExpiresAfter | None = None
    memory_limit: str | None = None
    network_policy: dict[str, Any] | None = None

    @property
    def expires_at(self) -> int | None:
        """Unix time at which the container expires if left idle, when the server says."""
        if self.last_active_at is None or self.expires_after is None or self.expires_after.minutes is None:
            return None
        return self.last_active_at + 60 * int(self.expires_after.minutes)


@api_object
class ContainerFile(APIObject):
    """A file inside a container; `path` is absolute (`/mnt/data/…`), `source` is `user` or `assistant`."""

    id: str
    container_id: str | None = None
    path: str | None = None
    bytes: int | None = None
    source: str | None = None
    created_at: int | None = None
    object: str = "container.file"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path or "")


@api_object
class File(APIObject):
    """A file of the Files API (`file-…`), which containers can be created with."""

    id: str
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    created_at: int | None = None
    expires_at: int | None = None  # when the service deletes it, if it was created to expire
    object: str = "file"


@api_object
class Model(APIObject):
    """A model the service offers (`GET /models/{model}`)."""

    id: str
    created: int | None = None
    owned_by: str | None = None
    object: str = "model"


@api_object
class Deleted(APIObject):
    """The marker a delete returns (`container.deleted`, `container.file.deleted`, `file`)."""

    id: str
    object: str | None = None
    deleted: bool = True


T = TypeVar("T", bound=APIObject)


@dataclasses.dataclass
class Page(Generic[T]):
    """One page of a list. Iterating it yields this page's items; the client's `list()` follows `after`."""

    data: list[T]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None
    object: str = "list"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def next_after(self) -> str | None:
        """The `after` cursor for the next page, or None at the end."""
        if not self.has_more or not self.data:
            return None
        return self.last_id or self.data[-1].id

    @classmethod
    def parse(cls, data: Mapping[str, Any], item: type[T]) -> Page[T]:
        if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
            raise TypeError("a list response needs a `data` array")
        rest = {k: v for k, v in data.items() if k not in ("data", "has_more", "first_id", "last_id", "object")}
        return cls(
            data=[item.from_dict(x) for x in data["data"]],
            has_more=bool(data.get("has_more", False)),
            first_id=data.get("first_id"),
            last_id=data.get("last_id"),
            object=data.get("object", "list"),
            extra=rest,
        )


# --- Responses API: the code_interpreter parts cellbox uses ---------------------------------------------------


@api_object
class LogsOutput(APIObject):
    logs: str = ""
    type: str = "logs"


@api_object
class ImageOutput(APIObject):
    url: str = ""
    type: str = "image"


def _output(data: Mapping[str, Any]) -> APIObject:
    if data.get("type") == "image":
        return ImageOutput.from_dict(data)
    if data.get("type") == "logs":
        return LogsOutput.from_dict(data)
    return _Unknown.from_dict(data)


@api_object
class _Unknown(APIObject):
    type: str | None = None


@api_object
class CodeInterpreterCall(APIObject):
    """A `code_interpreter_call` output item: the code the model ran and, when included, its outputs."""

    _nested: ClassVar[Mapping[str, Any]] = {"outputs": lambda items: [_output(x) for x in items]}

    id: str
    container_id: str | None = None
    code: str | None = None
    status: str | None = None
    outputs: list[APIObject] | None = None
    type: str = "code_interpreter_call"

    @property
    def logs(self) -> str:
        """All `logs` outputs joined."""
        return "".join(o.logs for o in self.outputs or [] if isinstance(o, LogsOutput))

    @property
    def images(self) -> list[str]:
        """The URLs of the `image` outputs."""
        return [o.url for o in self.outputs or [] if isinstance(o, ImageOutput)]


@api_object
class ContainerFileCitation(APIObject):
    """A `container_file_citation` annotation: a file the model cites in its message."""

    container_id: str
    file_id: str
    filename: str | None = None
    start_index: int | None = None
    end_index: int | None = None
    type: str = "container_file_citation"


@api_object
class Response(APIObject):
    """A Response. `output` keeps its raw items; the properties give typed access to the parts cellbox uses."""

    id: str
    status: str | None = None
    model: str | None = None
    output: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: Any = None
    created_at: int | None = None
    object: str = "response"

    @property
    def code_interpreter_calls(self) -> list[CodeInterpreterCall]:
        return [
            CodeInterpreterCall.from_dict(item)
            for item in self.output or []
            if isinstance(item, Mapping) and item.get("type") == "code_interpreter_call"
        ]

    def _output_texts(self) -> Iterator[Mapping[str, Any]]:
        for item in self.output or []:
            if isinstance(item, Mapping) and item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, Mapping) and part.get("type") == "output_text":
                        yield part

    @property
    def output_text(self) -> str:
        """The text of the message items, joined (as the official SDK's `output_text`)."""
        return "".join(str(part.get("text", "")) for part in self._output_texts())

    @property
    def container_file_citations(self) -> list[ContainerFileCitation]:
        return [
            ContainerFileCitation.from_dict(annotation)
            for part in self._output_texts()
            for annotation in part.get("annotations") or []
            if isinstance(annotation, Mapping) and annotation.get("type") == "container_file_citation"
        ]


@api_object
class ResponseEvent(APIObject):
    """One event of a streamed response: its `type` (`response.created`, `response.output_item.done`,
    `response.completed`, ...), its `sequence_number`, and the fields of its kind: `response` (a `Response`) for
    the `response.*` events, `item`, `delta`, `code`, `output_index`, ... as sent."""

    _nested: ClassVar[Mapping[str, Any]] = {"response": Response.from_dict}

    type: str
    sequence_number: int | None = None
    response: Response | None = None
