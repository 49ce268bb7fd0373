"""Handlers of container files (`/v1/containers/{id}/files…`) and of the Files API (`/v1/files…`): uploads
checked against the container's disk quota and stored complete or not at all, listings, content streamed."""

from __future__ import annotations

import asyncio
import errno
import os
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import errors
from ..errors import APIError, refuse_unknown
from ..jail.containers import Containers
from ..options import ServerOptions
from ..store import disk, safepath
from .appstate import containers_of, lag_of, options_of
from .download import FileStream
from .objects import container_file_json, file_json, page_json
from .params import (
    CONTAINER_FILE_FIELDS,
    FILE_FIELDS,
    is_multipart,
    list_params,
    path_param,
    read_json,
)
from .uploads import ensure, read_multipart


async def create_container_file(request: Request) -> JSONResponse:
    containers = containers_of(request)
    container_id = path_param(request, "container_id")
    containers.use(container_id)
    if is_multipart(request):
        upload = await _read_upload(request, containers, container_id)
        try:
            refuse_unknown(upload.fields, CONTAINER_FILE_FIELDS)
            if upload.path is None and upload.fields.get("file_id"):
                return await _container_file_from_id(containers, container_id, upload.fields["file_id"])
            ensure(upload)
            assert upload.path is not None and upload.filename is not None
            name = _stored_name(upload.filename, options_of(request))
            async with containers.lock(container_id):
                containers.use(container_id, touch=False)  # still there (touched above)
                # In a thread: into a container's own filesystem, the bytes are copied and synced (store/).
                row = await asyncio.to_thread(_add, containers, container_id, name, upload.path)
            if containers.quota is not None:
                containers.quota.wrote(container_id, upload.size)
        finally:
            upload.discard()
        return JSONResponse(container_file_json(row))
    body = await read_json(request)
    refuse_unknown(body, CONTAINER_FILE_FIELDS)
    file_id = body.get("file_id")
    if not file_id:
        raise errors.missing("file_id")
    if not isinstance(file_id, str):
        raise errors.invalid("Invalid 'file_id': expected a string.", "file_id")
    return await _container_file_from_id(containers, container_id, file_id)


async def _container_file_from_id(containers: Containers, container_id: str, file_id: str) -> JSONResponse:
    store = containers.store
    found = store.get_file(file_id)
    if found is None:
        raise errors.not_found("file", file_id, param="file_id")
    if containers.quota is not None:
        room, why = await containers.quota.room(container_id)
        if found["bytes"] > room:
            raise errors.insufficient_storage(why)
    async with containers.lock(container_id):
        containers.use(container_id)
        try:
            row = await asyncio.to_thread(store.copy_file_to_container, file_id, container_id)
        except safepath.UnsafePath as exc:
            raise errors.invalid(f"Invalid file name: {exc}", "file_id") from None
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise errors.invalid(str(exc), "file_id") from None
        except FileNotFoundError:  # the file or the container was deleted meanwhile
            raise errors.not_found("file", file_id, param="file_id") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            quota = containers.quota
            raise errors.insufficient_storage(quota.limit_said() if quota else "the disk is full") from None
    return JSONResponse(container_file_json(row))


async def _read_upload(request: Request, containers: Containers, container_id: str | None):
    """The multipart body, refused with 507 as soon as it would pass the container's disk quota (or eat into the
    server's reserve, for the Files API) rather than at the end."""
    limit = options_of(request).max_upload_bytes
    room, why = limit, ""
    quota = containers.quota
    if quota is not None:
        if container_id is not None:
            room, why = await quota.room(container_id)
        else:
            room, why = disk.free_bytes(containers.store.files_dir) - quota.reserve.size, "the server's disk is full"
    if room >= limit:
        return await read_multipart(request, containers.store.temp_path(), limit)
    try:
        return await read_multipart(request, containers.store.temp_path(), max(0, room))
    except APIError as exc:
        if exc.status == 413:
            raise errors.insufficient_storage(why) from None
        raise


def _stored_name(filename: str, options: ServerOptions) -> str:
    """Where an upload lands under /mnt/data: its name, or (`--upload-names prefixed`, as OpenAI's example
    answers "/mnt/data/<32 hex>-<name>") 32 random hex digits, a dash and its basename: folders are dropped."""
    if options.upload_names != "prefixed":
        return filename
    return f"{secrets.token_hex(16)}-{filename.rsplit('/', 1)[-1]}"


def _add(containers: Containers, container_id: str, filename: str, path) -> dict:
    try:
        return containers.store.add_container_file(container_id, filename, path, "user")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # its own filesystem filled meanwhile (code wrote)
            quota = containers.quota
            raise errors.insufficient_storage(quota.limit_said() if quota else "the disk is full") from None
        if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
            raise errors.invalid(str(exc), "file") from None
        if isinstance(exc, FileNotFoundError):  # the container was deleted meanwhile
            raise errors.not_found("container", container_id, param="container_id") from None
        raise
    except safepath.UnsafePath as exc:
        raise errors.invalid(f"Invalid file name: {exc}", "file") from None


async def list_container_files(request: Request) -> JSONResponse:
    containers = containers_of(request)
    container_id = path_param(request, "container_id")
    limit, order, after = list_params(request)
    containers.use(container_id)
    page = containers.store.list_container_files(container_id, limit, order, after)
    page.rows = lag_of(request).shown(page.rows)
    return JSONResponse(page_json(page, container_file_json))


def _container_file(request: Request) -> dict:
    containers = containers_of(request)
    container_id, file_id = path_param(request, "container_id"), path_param(request, "file_id")
    containers.use(container_id)
    row = containers.store.get_container_file(container_id, file_id)
    if row is None or lag_of(request).phase(file_id) == "hidden":
        raise errors.not_found("container file", file_id, param="file_id")
    return row


async def retrieve_container_file(request: Request) -> JSONResponse:
    row = _container_file(request)
    return JSONResponse(container_file_json(lag_of(request).shown([row])[0]))


async def delete_container_file(request: Request) -> JSONResponse:
    containers = containers_of(request)
    container_id, file_id = path_param(request, "container_id"), path_param(request, "file_id")
    async with containers.lock(container_id):
        containers.use(container_id)
        deleted = containers.store.delete_container_file(container_id, file_id)
        if deleted is None:
            raise errors.not_found("container file", file_id, param="file_id")
    if containers.quota is not None:  # room at once for the upload that may follow; measured again soon
        containers.quota.wrote(container_id, -deleted["bytes"])
        containers.quota.changed(container_id)
    return JSONResponse({"id": file_id, "object": "container.file.deleted", "deleted": True})


async def container_file_content(request: Request) -> FileStream:
    row = _container_file(request)
    if lag_of(request).phase(row["id"]) is not None:  # the words a cloud was seen to answer (emulation/listing.py)
        message = f"File {row['id']} not found on container {row['container_id']}"
        raise APIError(404, message, param="file_id", code="not_found")
    try:
        fd = containers_of(request).store.open_container_file(row["container_id"], row)
    except OSError:
        raise errors.not_found("container file", row["id"], param="file_id") from None
    return FileStream(fd, row["path"].rsplit("/", 1)[-1])


# -- files ------------------------------------------------------------------------------------------------------


async def create_file(request: Request) -> JSONResponse:
    if not is_multipart(request):
        raise errors.invalid("Upload files as multipart/form-data with a `file` part and a `purpose` field.")
    store = containers_of(request).store
    upload = await _read_upload(request, containers_of(request), None)
    try:
        refuse_unknown(upload.fields, FILE_FIELDS)
        ensure(upload)
        purpose = upload.fields.get("purpose")
        if not purpose:
            raise errors.missing("purpose")
        seconds = _expires_after(upload.fields)
        # A server whose minutes are shortened (--seconds-per-minute) shortens a file's life as much.
        scale = containers_of(request).seconds_per_minute / 60
        assert upload.path is not None
        lifetime = None if seconds is None else (seconds, seconds * scale)
        row = store.add_file(upload.filename or "file", purpose, upload.path, lifetime)
    finally:
        upload.discard()
    return JSONResponse(file_json(row))


def _expires_after(fields: dict[str, str]) -> int | None:
    """The seconds after its creation a file is to be deleted (`expires_after`), if asked: an hour to 30 days."""
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise errors.invalid("Invalid 'expires_after[anchor]': expected 'created_at'.", "expires_after.anchor")
    if seconds is None or not seconds.isdigit() or not 3600 <= int(seconds) <= 2_592_000:
        raise errors.invalid(
            "Invalid 'expires_after[seconds]': expected an integer from 3600 (1 hour) to 2592000 (30 days).",
            "expires_after.seconds",
        )
    return int(seconds)


async def list_files(request: Request) -> JSONResponse:
    limit, order, after = list_params(request, max_limit=10_000)
    page = containers_of(request).store.list_files(limit, order, after, request.query_params.get("purpose"))
    return JSONResponse(page_json(page, file_json))


def _file(request: Request) -> dict:
    file_id = path_param(request, "file_id")
    row = containers_of(request).store.get_file(file_id)
    if row is None:
        raise errors.not_found("file", file_id, param="file_id")
    return row


async def retrieve_file(request: Request) -> JSONResponse:
    return JSONResponse(file_json(_file(request)))


async def delete_file(request: Request) -> JSONResponse:
    file_id = path_param(request, "file_id")
    if not containers_of(request).store.delete_file(file_id):
        raise errors.not_found("file", file_id, param="file_id")
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


async def file_content(request: Request) -> FileStream:
    row = _file(request)
    try:
        fd = os.open(containers_of(request).store.file_path(row["id"]), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise errors.not_found("file", row["id"], param="file_id") from None
    return FileStream(fd, row["filename"])
