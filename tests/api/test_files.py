"""Container files (upload, list, retrieve, delete, content, download) and the Files API, sync and async."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakeserver import TOKEN, FakeServer
from runboth import Both

from cellbox.api import (
    APIConnectionError,
    AsyncClient,
    Client,
    ContainerFile,
    Deleted,
    File,
    InternalServerError,
    NotFoundError,
    ValidationError,
)

PAYLOAD = bytes(range(256)) * 1000 + b"\r\n--not-a-boundary--\r\n"  # 256 kB and change, every byte value


@pytest.fixture
def box(both: Both):
    return both(lambda c: c.containers.create("files"))


def _stored(server: FakeServer, cid: str, fid: str):
    return server.container_files[cid][fid]


def test_upload_from_a_path_streams_the_exact_bytes(both: Both, box, tmp_path: Path) -> None:
    source = tmp_path / "report.csv"
    source.write_bytes(PAYLOAD)
    made = both(lambda c: c.containers.files.create(box.id, source))
    assert isinstance(made, ContainerFile) and made.path == "/mnt/data/report.csv" and made.name == "report.csv"
    assert made.bytes == len(PAYLOAD) and made.container_id == box.id and made.source == "user"
    stored = _stored(both.server, box.id, made.id)
    assert stored.field == "file" and stored.content_type == "text/csv"
    assert stored.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    [sent] = both.server.requests("POST", "*/files")
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(sent.headers["content-length"]) > len(PAYLOAD)  # sized up front, not chunked


def test_upload_from_a_str_path_with_a_filename(both: Both, box, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"abc")
    made = both(lambda c: c.containers.files.create(box.id, str(source), filename="renamed.txt"))
    assert made.path == "/mnt/data/renamed.txt"
    assert _stored(both.server, box.id, made.id).content_type == "text/plain"


def test_upload_bytes(both: Both, box) -> None:
    made = both(lambda c: c.containers.files.create(box.id, PAYLOAD, filename="blob.dat"))
    stored = _stored(both.server, box.id, made.id)
    assert made.bytes == len(PAYLOAD) and made.path == "/mnt/data/blob.dat"
    assert stored.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    unnamed = both(lambda c: c.containers.files.create(box.id, b"x"))
    assert unnamed.path == "/mnt/data/upload.bin"


def test_upload_a_file_object(both: Both, box, tmp_path: Path) -> None:
    source = tmp_path / "opened.json"
    source.write_bytes(b'{"a": 1}')
    with source.open("rb") as handle:
        made = both(lambda c: c.containers.files.create(box.id, handle))
        assert not handle.closed  # the caller's file stays the caller's
    assert made.path == "/mnt/data/opened.json" and made.bytes == 8
    memory = both(lambda c: c.containers.files.create(box.id, io.BytesIO(PAYLOAD), filename="mem.bin"))
    assert _stored(both.server, box.id, memory.id).sha256 == hashlib.sha256(PAYLOAD).hexdigest()


def test_upload_from_a_file_id(both: Both, box) -> None:
    uploaded = both(lambda c: c.files.create(PAYLOAD, filename="shared.bin"))
    assert isinstance(uploaded, File) and uploaded.id.startswith("file-") and uploaded.purpose == "user_data"
    made = both(lambda c: c.containers.files.create(box.id, file_id=uploaded.id))
    assert made.path == "/mnt/data/shared.bin" and made.bytes == len(PAYLOAD)
    assert both.server.bodies[-1] == {"file_id": uploaded.id}
    assert both(lambda c: c.containers.files.content(box.id, made.id)) == PAYLOAD


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c, cid: c.containers.files.create(cid), "exactly one of file"),
        (lambda c, cid: c.containers.files.create(cid, b"x", file_id="file-1"), "exactly one of file"),
        (lambda c, cid: c.containers.files.create(cid, "/no/such/file.csv"), "no such file to upload"),
        (lambda c, cid: c.containers.files.create(cid, 42), "can't upload a int"),
        (lambda c, cid: c.containers.files.create(cid, file_id=""), "file_id"),
        (lambda c, cid: c.containers.files.create(cid, b"x", filename=""), "invalid filename"),
        (lambda c, cid: c.containers.files.create("", b"x"), "container_id"),
        (lambda c, cid: c.containers.files.list_page(cid, limit=500), "limit"),
        (lambda c, cid: c.containers.files.retrieve(cid, ""), "file_id"),
    ],
)
def test_bad_file_arguments_fail_before_sending(both: Both, box, call, match: str) -> None:
    before = both.server.count()
    with pytest.raises(ValidationError, match=match):
        both(lambda c: call(c, box.id))
    assert both.server.count() == before


def test_list_retrieve_delete(both: Both, box) -> None:
    made = [both(lambda c, i=i: c.containers.files.create(box.id, b"%d" % i, filename=f"f{i}.txt")) for i in range(7)]
    listed = both(lambda c: c.containers.files.list(box.id, limit=3, order="asc"))
    assert [f.id for f in listed] == [f.id for f in made]
    assert both.server.count("GET", f"/v1/containers/{box.id}/files") == 3
    page = both(lambda c: c.containers.files.list_page(box.id, limit=2))
    assert page.has_more and [f.id for f in page] == [made[6].id, made[5].id]
    one = both(lambda c: c.containers.files.retrieve(box.id, made[3].id))
    assert one == made[3]
    gone = both(lambda c: c.containers.files.delete(box.id, made[3].id))
    assert isinstance(gone, Deleted) and gone.object == "container.file.deleted"
    with pytest.raises(NotFoundError, match="not found"):
        both(lambda c: c.containers.files.retrieve(box.id, made[3].id))
    with pytest.raises(NotFoundError):
        both(lambda c: c.containers.files.list("cntr_nope"))


def test_content_and_download(both: Both, box, tmp_path: Path) -> None:
    made = both(lambda c: c.containers.files.create(box.id, PAYLOAD, filename="p.bin"))
    assert both(lambda c: c.containers.files.content(box.id, made.id)) == PAYLOAD
    target = tmp_path / "deep" / "dir" / "p.bin"
    assert both(lambda c: c.containers.files.download(box.id, made.id, target)) == target
    assert target.read_bytes() == PAYLOAD
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's private 0600
    assert list(target.parent.iterdir()) == [target]  # no temp file left behind
    [sent] = both.server.requests("GET", "*/content")[:1]
    assert sent.headers["accept-encoding"] == "identity"


def test_download_replaces_an_existing_file(both: Both, box, tmp_path: Path) -> None:
    made = both(lambda c: c.containers.files.create(box.id, b"new", filename="n.txt"))
    target = tmp_path / "n.txt"
    target.write_bytes(b"old contents")
    both(lambda c: c.containers.files.download(box.id, made.id, str(target)))
    assert target.read_bytes() == b"new"


def test_a_dropped_download_leaves_no_file(both: Both, box, tmp_path: Path) -> None:
    made = both(lambda c: c.containers.files.create(box.id, PAYLOAD, filename="p.bin"))
    both.server.drop("*/content", mid_body=True)
    target = tmp_path / "p.bin"
    with pytest.raises(APIConnectionError, match="stopped part-way") as info:
        both(lambda c: c.containers.files.download(box.id, made.id, target))
    assert "stopped part-way" in info.value.message
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "keep.bin"
    existing.write_bytes(b"keep me")
    both.server.drop("*/content", mid_body=True)
    with pytest.raises(APIConnectionError):
        both(lambda c: c.containers.files.download(box.id, made.id, existing))
    assert existing.read_bytes() == b"keep me" and list(tmp_path.iterdir()) == [existing]


def test_download_of_an_unknown_file_is_not_found(both: Both, box, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        both(lambda c: c.containers.files.download(box.id, "cfile_missing", tmp_path / "x"))
    assert list(tmp_path.iterdir()) == []


def test_stream_in_chunks_sync(client: Client, server: FakeServer) -> None:
    box = client.containers.create("s")
    made = client.containers.files.create(box.id, PAYLOAD, filename="p.bin")
    with client.containers.files.stream(box.id, made.id, chunk_size=10_000) as body:
        assert body.size == len(PAYLOAD)
        chunks = list(body)
    assert b"".join(chunks) == PAYLOAD and max(map(len, chunks)) <= 10_000 and len(chunks) > 20
    # stopping early releases the connection
    with client.containers.files.stream(box.id, made.id) as body:
        next(iter(body))
    assert client.containers.retrieve(box.id).id == box.id


@pytest.mark.asyncio
async def test_stream_in_chunks_async(aclient: AsyncClient) -> None:
    box = await aclient.containers.create("s")
    made = await aclient.containers.files.create(box.id, PAYLOAD, filename="p.bin")
    async with aclient.containers.files.stream(box.id, made.id, chunk_size=10_000) as body:
        assert body.size == len(PAYLOAD)
        chunks = [chunk async for chunk in body]
    assert b"".join(chunks) == PAYLOAD and max(map(len, chunks)) <= 10_000


def test_files_api(both: Both) -> None:
    made = both(lambda c: c.files.create(b"hello", purpose="assistants", filename="h.txt"))
    assert made.filename == "h.txt" and made.purpose == "assistants" and made.bytes == 5
    assert both(lambda c: c.files.retrieve(made.id)) == made
    assert [f.id for f in both(lambda c: c.files.list(limit=1))] == [made.id]
    assert both(lambda c: c.files.content(made.id)) == b"hello"
    assert both(lambda c: c.files.delete(made.id)).deleted
    with pytest.raises(NotFoundError):
        both(lambda c: c.files.retrieve(made.id))


class _Pipe(io.RawIOBase):
    """A readable stream that can't seek back, like a pipe or a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.name = "piped.bin"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_an_unrewindable_upload_is_not_resent(mocked: Both) -> None:
    # A 503 would normally be retried, but a second attempt would read an exhausted pipe and send nothing.
    box = mocked.server.add_container("files")["id"]
    mocked.server.fail(f"/v1/containers/{box}/files", status=503, method="POST")
    with pytest.raises(InternalServerError):
        mocked(lambda c: c.containers.files.create(box, _Pipe(PAYLOAD)))
    assert mocked.server.count("POST", "*/files") == 1
    mocked(lambda c: c.containers.files.create(box, _Pipe(PAYLOAD)))
    _, sent = mocked.server.requests("POST", "*/files")
    assert PAYLOAD in sent.body and b'filename="piped.bin"' in sent.body


def test_a_rewindable_upload_is_resent_whole(mocked: Both, tmp_path: Path) -> None:
    box = mocked.server.add_container("files")["id"]
    source = tmp_path / "again.bin"
    source.write_bytes(PAYLOAD)
    mocked.server.fail(f"/v1/containers/{box}/files", status=503, method="POST", times=2)
    mocked(lambda c: c.containers.files.create(box, source))
    attempts = mocked.server.requests("POST", "*/files")
    assert len(attempts) == 3 and [a.fault for a in attempts] == [True, True, False]
    assert all(PAYLOAD in a.body and len(a.body) == len(attempts[0].body) for a in attempts)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- memory stays flat ------------------------------------------------------------------------------------------

_MEASURE = textwrap.dedent(
    """
    import asyncio, resource, sys
    from cellbox.api import AsyncClient, Client

    base_url, token, cid, path, kind = sys.argv[1:]

    def peak_kb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    if kind == "sync":
        with Client(base_url=base_url, api_key=token) as client:
            client.containers.retrieve(cid)  # warm: connection, imports, first parse
            before = peak_kb()
            made = client.containers.files.create(cid, path)
            after = peak_kb()
    else:
        async def main():
            async with AsyncClient(base_url=base_url, api_key=token) as client:
                await client.containers.retrieve(cid)
                before = peak_kb()
                made = await client.containers.files.create(cid, path)
                return before, peak_kb(), made
        before, after, made = asyncio.run(main())
    print(before, after, made.bytes)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_50_mb_upload_keeps_memory_flat(server: FakeServer, tmp_path: Path, kind: str) -> None:
    size = 50 * 1024 * 1024
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        block = os.urandom(1024 * 1024)
        for i in range(50):
            chunk = bytes([i]) + block[1:]
            f.write(chunk)
            digest.update(chunk)
    box = server.add_container("big")
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, server.base_url, TOKEN, box["id"], str(source), kind],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    before_kb, after_kb, sent = map(int, out)
    assert sent == size
    stored = next(iter(server.container_files[box["id"]].values()))
    assert stored.sha256 == digest.hexdigest()
    assert (after_kb - before_kb) * 1024 < 20 * 1024 * 1024, f"peak RSS grew {(after_kb - before_kb) // 1024} MB"
