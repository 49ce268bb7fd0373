"""Every endpoint the client calls, described once as data: method, path, body, and how to read the answer.

The functions here validate arguments and build `Operation`s (`operation.py` says what one is and reads its
answer); they do no I/O. Each one is where its call's parameters are declared: the resource methods of `Client`
and `AsyncClient` are made from these functions and take the same parameters (see `resources.py`), so request
building and response parsing exist exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from .errors import ValidationError
from .objects import Container, ContainerFile, Deleted, File, Model, Page, Response
from .operation import FileSource, Operation, Upload, page_of, record_of
from .operation import next_page as next_page  # resources page through lists with `ops.next_page`

MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
# `reasoning.effort` values (openai-python `types/shared/reasoning_effort.py`); which a model takes varies.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
ORDERS = ("asc", "desc")
# Running code through a model can take minutes; everything else is quick.
RESPONSES_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


# --- validation ---------------------------------------------------------------------------------------------


def _checked_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")
    return value


# An id that goes into a URL path is a plain token, so no server can read it as anything but one id: not `.` or
# `..` (which would name the collection itself, so `DELETE /containers/..` could delete everything), not `/`, not
# an escape a server might decode. Dots and colons are allowed: OCI ids are OCIDs (`ocid1.generativeai….oc1.iad.…`).
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}")


def is_plain_id(value: object) -> bool:
    """Whether `value` can be an id in a URL path: an ASCII letter or digit, then letters, digits, `_ - . :`."""
    return isinstance(value, str) and _PLAIN_ID.fullmatch(value) is not None


def _id(value: str, what: str) -> str:
    """An id for a URL path segment, sent as it is; anything but a plain token is refused before sending."""
    if not is_plain_id(value):
        shown = (
            repr(value) if not isinstance(value, str) or len(value) <= 80 else f"{value[:60]!r}… ({len(value)} chars)"
        )
        raise ValidationError(
            f"{what} must be an id as the API returned it (an ASCII letter or digit, then letters, digits, "
            f"'_', '-', '.' or ':', at most 256 characters); got {shown}. Nothing was sent."
        )
    return value


def _memory_limit(value: str | None) -> str | None:
    if value is None:
        return None
    normalized = str(value).strip().lower()
    if normalized not in MEMORY_LIMITS:
        raise ValidationError(f"memory_limit must be one of {', '.join(MEMORY_LIMITS)}; got {value!r}")
    return normalized


def _list_params(limit: int | None, order: str | None, after: str | None, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValidationError(f"limit must be an integer from 1 to 100; got {limit!r}")
        params["limit"] = limit
    if order is not None:
        if order not in ORDERS:
            raise ValidationError(f"order must be 'asc' or 'desc'; got {order!r}")
        params["order"] = order
    if after is not None:
        params["after"] = after
    params.update({k: v for k, v in more.items() if v is not None})
    return params


def _expires_after(value: int | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        minutes = value.get("minutes")
        anchor = value.get("anchor", "last_active_at")
    else:
        minutes, anchor = value, "last_active_at"
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ValidationError(f"expires_after minutes must be a positive integer; got {minutes!r}")
    if anchor != "last_active_at":
        raise ValidationError(f"expires_after anchor must be 'last_active_at'; got {anchor!r}")
    return {"anchor": anchor, "minutes": minutes}


# --- containers ---------------------------------------------------------------------------------------------


def create_container(
    name: str,
    *,
    memory_limit: str | None = None,
    expires_after: int | Mapping[str, Any] | None = None,
    file_ids: Sequence[str] | None = None,
    network_policy: Mapping[str, Any] | None = None,
) -> Operation[Container]:
    """Create a container. `memory_limit` is one of 1g, 4g, 16g, 64g; `expires_after` is minutes of idleness
    (or the API's {anchor, minutes}); `file_ids` are Files API ids to copy in."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"a container needs a non-empty name; got {name!r}")
    body: dict[str, Any] = {"name": name}
    if (limit := _memory_limit(memory_limit)) is not None:
        body["memory_limit"] = limit
    if (expiry := _expires_after(expires_after)) is not None:
        body["expires_after"] = expiry
    if file_ids is not None:
        if isinstance(file_ids, str):
            raise ValidationError("file_ids must be a list of file ids, not one string")
        body["file_ids"] = [_checked_id(f, "file id") for f in file_ids]
    if network_policy is not None:
        if not isinstance(network_policy, Mapping) or network_policy.get("type") not in ("disabled", "allowlist"):
            raise ValidationError("network_policy must be {'type': 'disabled'} or {'type': 'allowlist', ...}")
        body["network_policy"] = dict(network_policy)
    return Operation("POST", "/containers", record_of(Container), json=body)


def list_containers(
    *, limit: int | None = None, order: str | None = None, after: str | None = None, name: str | None = None
) -> Operation[Page[Container]]:
    """Containers, newest first unless `order="asc"`, `limit` (1-100) a page, starting after id `after`;
    `name` keeps those of that name."""
    return Operation("GET", "/containers", page_of(Container), params=_list_params(limit, order, after, name=name))


def retrieve_container(container_id: str) -> Operation[Container]:
    """The container with this id."""
    return Operation("GET", f"/containers/{_id(container_id, 'container_id')}", record_of(Container))


def delete_container(container_id: str) -> Operation[Deleted]:
    """Delete the container and its files."""
    return Operation("DELETE", f"/containers/{_id(container_id, 'container_id')}", record_of(Deleted))


# --- container files ----------------------------------------------------------------------------------------


def _files_path(container_id: str) -> str:
    return f"/containers/{_id(container_id, 'container_id')}/files"


def create_container_file(
    container_id: str,
    file: FileSource | None = None,
    *,
    file_id: str | None = None,
    filename: str | None = None,
) -> Operation[ContainerFile]:
    """Upload `file` (a path, streamed from disk; bytes; or a binary file object) into the container's
    /mnt/data, under its own name or `filename`; or copy the Files API file `file_id` there."""
    path = _files_path(container_id)
    if (file is None) == (file_id is None):
        raise ValidationError("give exactly one of file (a path, bytes or binary file) or file_id")
    if file_id is not None:
        return Operation("POST", path, record_of(ContainerFile), json={"file_id": _checked_id(file_id, "file_id")})
    if filename is not None and (not filename or "\x00" in filename):
        raise ValidationError(f"invalid filename {filename!r}")
    assert file is not None  # exactly one of the two was given
    return Operation("POST", path, record_of(ContainerFile), upload=Upload(file, filename))


def list_container_files(
    container_id: str, *, limit: int | None = None, order: str | None = None, after: str | None = None
) -> Operation[Page[ContainerFile]]:
    """The container's files, `limit` (1-100) a page, starting after id `after`."""
    return Operation("GET", _files_path(container_id), page_of(ContainerFile), params=_list_params(limit, order, after))


def retrieve_container_file(container_id: str, file_id: str) -> Operation[ContainerFile]:
    """One file of the container."""
    return Operation("GET", f"{_files_path(container_id)}/{_id(file_id, 'file_id')}", record_of(ContainerFile))


def delete_container_file(container_id: str, file_id: str) -> Operation[Deleted]:
    """Delete one file of the container."""
    return Operation("DELETE", f"{_files_path(container_id)}/{_id(file_id, 'file_id')}", record_of(Deleted))


def container_file_content(container_id: str, file_id: str) -> Operation[httpx.Response]:
    # identity: bytes arrive exactly as stored and are passed through raw, in large chunks.
    return Operation(
        "GET",
        f"{_files_path(container_id)}/{_id(file_id, 'file_id')}/content",
        stream=True,
        headers={"Accept-Encoding": "identity"},
    )


# --- files (the Files API, for file_id / file_ids) -----------------------------------------------------------


# How long a file of the Files API may be kept: from an hour to 30 days after its creation.
FILE_EXPIRY_SECONDS = (3600, 2_592_000)


def create_file(
    file: FileSource, *, purpose: str = "user_data", filename: str | None = None, expires_after: int | None = None
) -> Operation[File]:
    """Upload `file` (a path, bytes or a binary file object) to the Files API; `expires_after` (seconds after its
    creation, an hour to 30 days) has the service delete it then."""
    form = {"purpose": purpose}
    if expires_after is not None:
        low, high = FILE_EXPIRY_SECONDS
        if isinstance(expires_after, bool) or not isinstance(expires_after, int) or not low <= expires_after <= high:
            raise ValidationError(f"expires_after must be whole seconds from {low} to {high}; got {expires_after!r}")
        form |= {"expires_after[anchor]": "created_at", "expires_after[seconds]": str(expires_after)}
    return Operation("POST", "/files", record_of(File), upload=Upload(file, filename), form=form)


def list_files(
    *, limit: int | None = None, order: str | None = None, after: str | None = None
) -> Operation[Page[File]]:
    """Files of the Files API, `limit` (1-100) a page, starting after id `after`."""
    return Operation("GET", "/files", page_of(File), params=_list_params(limit, order, after))


def retrieve_file(file_id: str) -> Operation[File]:
    """One file of the Files API."""
    return Operation("GET", f"/files/{_id(file_id, 'file_id')}", record_of(File))


def delete_file(file_id: str) -> Operation[Deleted]:
    """Delete a file of the Files API."""
    return Operation("DELETE", f"/files/{_id(file_id, 'file_id')}", record_of(Deleted))


def file_content(file_id: str) -> Operation[httpx.Response]:
    return Operation(
        "GET", f"/files/{_id(file_id, 'file_id')}/content", stream=True, headers={"Accept-Encoding": "identity"}
    )


# --- models -------------------------------------------------------------------------------------------------


def retrieve_model(model: str) -> Operation[Model]:
    """A model the service offers; NotFoundError (code `model_not_found` on OpenAI) when it has none of that name."""
    return Operation("GET", f"/models/{_id(model, 'model')}", record_of(Model))


# --- responses ----------------------------------------------------------------------------------------------


def code_interpreter_tool(container: str | Mapping[str, Any]) -> dict[str, Any]:
    """The `code_interpreter` tool bound to a container id, or to an `{"type": "auto", ...}` container."""
    if isinstance(container, str):
        _checked_id(container, "container")
        return {"type": "code_interpreter", "container": container}
    if isinstance(container, Mapping) and container.get("type") == "auto":
        return {"type": "code_interpreter", "container": dict(container)}
    raise ValidationError("container must be a container id or {'type': 'auto', ...}")


def create_response(
    *,
    input: str | Sequence[Mapping[str, Any]],
    model: str | None = None,
    container: str | Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    include: Sequence[str] | None = ("code_interpreter_call.outputs",),
    instructions: str | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    max_tool_calls: int | None = None,
    parallel_tool_calls: bool | None = None,
    store: bool | None = None,
    background: bool | None = None,
    reasoning_effort: str | None = None,
    previous_response_id: str | None = None,
    optional: Sequence[str] = (),
    extra_body: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Operation[Response]:
    """Create a response; `container` binds the `code_interpreter` tool to a container id (or `auto`).
    `model` defaults to the client's (CELLBOX_MODEL); `timeout` (seconds) bounds how long to wait for the
    answer, ten minutes unless given. `max_tool_calls`, `parallel_tool_calls`, `store`, `background` and
    `reasoning_effort` (sent as `reasoning: {"effort": …}`) are sent when given; `previous_response_id` continues
    the chain of a stored response (its context, and with it the auto container its code_interpreter calls
    used). Body fields named in `optional` may be left out: a backend that refuses one (400 unknown or unsupported
    parameter) gets the request again without it, and the client remembers not to send it again."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValidationError(f"timeout must be a positive number of seconds; got {timeout!r}")
    if not isinstance(model, str) or not model.strip():
        raise ValidationError("a model is needed to run code remotely; set CELLBOX_MODEL or pass model=")
    if max_tool_calls is not None and (
        isinstance(max_tool_calls, bool) or not isinstance(max_tool_calls, int) or max_tool_calls < 1
    ):
        raise ValidationError(f"max_tool_calls must be a positive integer; got {max_tool_calls!r}")
    if reasoning_effort is not None and reasoning_effort not in REASONING_EFFORTS:
        raise ValidationError(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}; got {reasoning_effort!r}"
        )
    body: dict[str, Any] = {"model": model, "input": input if isinstance(input, str) else list(input)}
    all_tools = [dict(t) for t in tools or ()]
    if container is not None:
        all_tools.append(code_interpreter_tool(container))
    if all_tools:
        body["tools"] = all_tools
    if include:
        body["include"] = list(include)
    if instructions is not None:
        body["instructions"] = instructions
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    for name, value in (
        ("max_tool_calls", max_tool_calls),
        ("parallel_tool_calls", parallel_tool_calls),
        ("store", store),
        ("background", background),
    ):
        if value is not None:
            body[name] = value
    if reasoning_effort is not None:
        body["reasoning"] = {"effort": reasoning_effort}
    if previous_response_id is not None:
        body["previous_response_id"] = _id(previous_response_id, "previous_response_id")
    body.update(extra_body or {})
    if isinstance(optional, str):
        raise ValidationError("optional must be a list of body field names, not one string")
    limit = RESPONSES_TIMEOUT if timeout is None else httpx.Timeout(timeout, connect=min(10.0, timeout))
    return Operation(
        "POST", "/responses", record_of(Response), json=body, timeout=limit, optional=frozenset(optional) & set(body)
    )


def stream_response(
    *,
    input: str | Sequence[Mapping[str, Any]],
    model: str | None = None,
    container: str | Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    include: Sequence[str] | None = ("code_interpreter_call.outputs",),
    instructions: str | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    max_tool_calls: int | None = None,
    parallel_tool_calls: bool | None = None,
    store: bool | None = None,
    background: bool | None = None,
    reasoning_effort: str | None = None,
    previous_response_id: str | None = None,
    optional: Sequence[str] = (),
    extra_body: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Operation[httpx.Response]:
    """Create a response and read its events as they happen (`stream: true`); the parameters are `create`'s, but
    `timeout` bounds only connecting and sending: events come when they come (a run may be quiet for hours). A
    background response keeps running when its stream is closed, and can still be polled. With "stream" among
    `optional`, a backend that refuses streaming gets the request again without it: its JSON answer is then the
    one event (see `cellbox.api.events`)."""
    created = create_response(
        input=input,
        model=model,
        container=container,
        tools=tools,
        include=include,
        instructions=instructions,
        tool_choice=tool_choice,
        max_tool_calls=max_tool_calls,
        parallel_tool_calls=parallel_tool_calls,
        store=store,
        background=background,
        reasoning_effort=reasoning_effort,
        previous_response_id=previous_response_id,
        optional=optional,
        extra_body=extra_body,
        timeout=timeout,
    )
    sending = RESPONSES_TIMEOUT.connect if timeout is None else timeout
    return Operation(
        "POST",
        "/responses",
        json={**created.json, "stream": True},
        stream=True,
        timeout=httpx.Timeout(sending, read=None),
        headers={"Accept": "text/event-stream"},
        optional=created.optional | ({"stream"} & set(optional)),
    )


def retrieve_response(response_id: str) -> Operation[Response]:
    """A stored response (a `background: true` one is polled this way until its status is final)."""
    return Operation("GET", f"/responses/{_id(response_id, 'response_id')}", record_of(Response))


def cancel_response(response_id: str) -> Operation[Response]:
    """Cancel a `background: true` response that is still queued or in progress."""
    return Operation("POST", f"/responses/{_id(response_id, 'response_id')}/cancel", record_of(Response))


def delete_response(response_id: str) -> Operation[Deleted]:
    """Delete a stored response."""
    return Operation("DELETE", f"/responses/{_id(response_id, 'response_id')}", record_of(Deleted))
