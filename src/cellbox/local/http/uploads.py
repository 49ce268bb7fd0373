"""Streaming multipart uploads: the `file` part goes straight to a temp file in the data dir.

Memory stays flat whatever the upload size (Starlette's `request.form()` would spool to /tmp and need a second
copy). The temp file lives on the data dir's filesystem, so the caller can rename it into place atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..errors import APIError, invalid, too_large

_MAX_FIELD_BYTES = 64 * 1024
_MAX_FIELDS_BYTES = 1024 * 1024  # all text fields together: a form of many small fields stays small too


@dataclass
class Upload:
    """The text fields of a form and, if there was one, the `file` part saved at `path`."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class _Parser:
    def __init__(self, temp_path: Path, max_bytes: int) -> None:
        self.upload = Upload()
        self._temp_path = temp_path
        self._max_bytes = max_bytes
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._buffer = bytearray()
        self._fd: int | None = None
        self._fields_bytes = 0
        self.complete = False  # the closing boundary arrived

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._buffer = bytearray()
        self._is_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise invalid("A multipart part has no name in its Content-Disposition header.")
        self._name = options[b"name"].decode("utf-8", "replace")
        if self._name == "file" and b"filename" in options:
            if self.upload.path is not None:
                raise invalid("Only one `file` part is accepted.", param="file")
            self._is_file = True
            self.upload.filename = options[b"filename"].decode("utf-8", "replace")
            self._fd = os.open(self._temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            self.upload.path = self._temp_path

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self._fd is not None
            self.upload.size += end - start
            if self.upload.size > self._max_bytes:
                raise too_large(self._max_bytes)
            view = memoryview(data)[start:end]
            while view:
                view = view[os.write(self._fd, view) :]
        else:
            self._buffer += data[start:end]
            self._fields_bytes += end - start
            if len(self._buffer) > _MAX_FIELD_BYTES:
                raise invalid(f"The form field '{self._name}' is too long.", param=self._name)
            if self._fields_bytes > _MAX_FIELDS_BYTES:
                raise invalid("The form has too much text besides the file.")

    def on_part_end(self) -> None:
        if self._is_file:
            self._close()
        elif self._name:
            self.upload.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.complete = True

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def read_multipart(request: Request, temp_path: Path, max_bytes: int) -> Upload:
    """Parses a multipart/form-data body; the caller owns (and must rename or discard) `upload.path`."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise invalid("The multipart/form-data body has no boundary.")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + 1024 * 1024:
        raise too_large(max_bytes)
    state = _Parser(temp_path, max_bytes)
    callbacks = {name: getattr(state, name) for name in dir(state) if name.startswith("on_")}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if not state.complete:
            # A body cut short (a dropped connection, a client that gave up) must not be stored as a whole file.
            raise invalid(
                "The multipart/form-data body ended before its closing boundary: the upload is incomplete and "
                "nothing was stored. Send it again."
            )
    except FormParserError as exc:
        state._close()
        state.upload.discard()
        raise invalid("The multipart/form-data body is malformed.") from exc
    except BaseException:
        state._close()
        state.upload.discard()
        raise
    state._close()
    return state.upload


def ensure(upload: Upload) -> None:
    """An APIError unless the upload carried a file part."""
    if upload.path is None:
        raise APIError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
