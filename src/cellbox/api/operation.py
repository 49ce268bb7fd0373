"""What one API call is: an `Operation` (method, path, body, how to read the answer) and the file an upload sends.

`operations.py` declares every call the client makes with these; `BaseClient.flow` runs them. Reading an answer
lives here once: a body that isn't the JSON the call promised is a `malformed_response`, never a bare KeyError.
"""

from __future__ import annotations

import dataclasses
import json
import mimetypes
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, Union

import httpx

from .errors import ValidationError, malformed_response
from .objects import APIObject, Page

__all__ = ["FileSource", "Operation", "Upload", "json_body", "next_page", "page_of", "record_of"]

FileSource = Union[str, "os.PathLike[str]", bytes, IO[bytes]]
T = TypeVar("T")
R = TypeVar("R", bound=APIObject)


@dataclasses.dataclass(frozen=True)
class Upload:
    """A file to send as multipart field `file`: a path (opened lazily, streamed), bytes or a binary file."""

    source: FileSource
    filename: str | None = None

    @property
    def rewindable(self) -> bool:
        """Whether the body can be sent again (httpx seeks back to the start); a pipe or socket can't."""
        source = self.source
        if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
            return True
        try:
            return bool(source.seekable())
        except (AttributeError, OSError, ValueError):
            return False

    def open(self, stack: ExitStack) -> dict[str, Any]:
        source = self.source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ValidationError(f"no such file to upload: {path}")
            handle: Any = stack.enter_context(path.open("rb"))
            name = self.filename or path.name
        elif isinstance(source, (bytes, bytearray, memoryview)):
            handle = bytes(source)
            name = self.filename or "upload.bin"
        elif hasattr(source, "read"):
            handle = source
            given = getattr(source, "name", None)  # an int for os.fdopen() files and pipes
            name = self.filename or (os.path.basename(given) if isinstance(given, str) else "") or "upload.bin"
        else:
            raise ValidationError(
                f"can't upload a {type(source).__name__}: pass a path, bytes or a file opened in binary mode"
            )
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return {"file": (name, handle, content_type)}


@dataclasses.dataclass(frozen=True)
class Operation(Generic[T]):
    """One API call, answering a `T`. `parse` reads a successful response; with `stream=True` the open
    response is the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T] | None = None
    params: Mapping[str, Any] | None = None
    json: Any = None
    upload: Upload | None = None
    form: Mapping[str, str] | None = None
    stream: bool = False
    timeout: httpx.Timeout | None = None
    headers: Mapping[str, str] | None = None
    # Fields of the JSON body a backend may refuse: sent again without them (see `BaseClient.flow`).
    optional: frozenset[str] = frozenset()

    @property
    def may_have_side_effects(self) -> bool:
        """A POST that reached the server may have done its work: it is not re-sent after that."""
        return self.method == "POST"


# --- parsing ------------------------------------------------------------------------------------------------


def json_body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise malformed_response(response, f"invalid JSON: {exc}") from None


def _parse(build: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        data = json_body(response)
        try:
            return build(data)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise malformed_response(response, f"unexpected shape: {exc}") from None

    return parse


def page_of(item: type[R]) -> Callable[[httpx.Response], Page[R]]:
    return _parse(lambda data: Page.parse(data, item))


def record_of(item: type[R]) -> Callable[[httpx.Response], R]:
    return _parse(item.from_dict)


def next_page(op: Operation[Page[R]], page: Page[R]) -> Operation[Page[R]] | None:
    """The call for the page after `page` (the same call, `after` its last item), or None at the end."""
    after = page.next_after
    if after is None:
        return None
    return dataclasses.replace(op, params={**(op.params or {}), "after": after})
