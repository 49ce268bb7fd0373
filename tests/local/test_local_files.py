"""Container files and the Files API: uploads (multipart and file_id), list, retrieve, delete, content."""

from __future__ import annotations

import hashlib
import os

import openai
import pytest

from cellbox.local.testing import wait_until


def test_upload_list_retrieve_content_delete(client: openai.OpenAI, container):
    up = client.containers.files.create(container_id=container.id, file=("report.csv", b"a,b\n1,2\n"))
    assert up.id.startswith("cfile_")
    assert (up.object, up.path, up.bytes, up.source) == ("container.file", "/mnt/data/report.csv", 8, "user")
    assert up.container_id == container.id
    listed = client.containers.files.list(container_id=container.id)
    assert [f.id for f in listed.data] == [up.id]
    got = client.containers.files.retrieve(up.id, container_id=container.id)
    assert got.path == up.path
    content = client.containers.files.content.retrieve(up.id, container_id=container.id)
    assert content.read() == b"a,b\n1,2\n"
    client.containers.files.delete(up.id, container_id=container.id)
    assert client.containers.files.list(container_id=container.id).data == []
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(up.id, container_id=container.id)


def test_delete_marker(http, container):
    fid = http.post(f"/containers/{container.id}/files", files={"file": ("x.txt", b"x")}).json()["id"]
    r = http.delete(f"/containers/{container.id}/files/{fid}")
    assert r.json() == {"id": fid, "object": "container.file.deleted", "deleted": True}
    assert http.delete(f"/containers/{container.id}/files/{fid}").status_code == 404


def test_subfolder_upload_lands_under_mnt_data(client, server, container):
    up = client.containers.files.create(container_id=container.id, file=("sub/dir/x.bin", b"\x00\x01"))
    assert up.path == "/mnt/data/sub/dir/x.bin"
    on_disk = server.data_dir / "containers" / container.id / "sub" / "dir" / "x.bin"
    assert on_disk.read_bytes() == b"\x00\x01"


def test_reupload_replaces_with_a_new_id(client, container):
    first = client.containers.files.create(container_id=container.id, file=("same.txt", b"one"))
    second = client.containers.files.create(container_id=container.id, file=("same.txt", b"second"))
    assert first.id != second.id
    ids = [f.id for f in client.containers.files.list(container_id=container.id).data]
    assert ids == [second.id]
    assert client.containers.files.content.retrieve(second.id, container_id=container.id).read() == b"second"


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "/mnt/data/../x", "a//b", "nul\x00.txt", "x" * 300, ".", ""],
)
def test_hostile_upload_names_are_rejected(http, server, container, name):
    # Built by hand: HTTP clients escape some of these names before they reach the server.
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="'
        + name.encode()
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\nevil\r\n--XyZ--\r\n'
    )
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    r = http.post(f"/containers/{container.id}/files", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "file"
    assert not (server.data_dir / "escape.txt").exists()
    assert not (server.data_dir / "containers" / "escape.txt").exists()
    assert http.get(f"/containers/{container.id}/files").json()["data"] == []
    # Nothing left behind in the upload area either.
    assert os.listdir(server.data_dir / "tmp") == []


def test_upload_through_a_planted_symlink_is_refused(client, http, server, container, run):

    run(client, container.id, "import os; os.symlink('/etc', 'link')")
    r = http.post(f"/containers/{container.id}/files", files={"file": ("link/owned.txt", b"evil")})
    assert r.status_code == 400
    assert not os.path.exists("/etc/owned.txt")


def test_missing_file_part_is_400(http, container):
    r = http.post(f"/containers/{container.id}/files", files={"file_id": (None, "")})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "file"
    r = http.post(f"/containers/{container.id}/files", files={"other": ("x.txt", b"x")})
    assert r.status_code == 400
    assert r.json()["error"] | {"message": ""} == {
        "message": "", "type": "invalid_request_error", "param": "other", "code": "unknown_parameter"
    }  # fmt: skip
    r = http.post(f"/containers/{container.id}/files", json={})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "file_id"


def test_files_api_and_file_id_copy(client: openai.OpenAI, container):
    uploaded = client.files.create(file=("data.json", b'{"k": 1}'), purpose="user_data")
    assert uploaded.id.startswith("file-")
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == ("data.json", 8, "user_data")
    assert client.files.retrieve(uploaded.id).filename == "data.json"
    assert uploaded.id in [f.id for f in client.files.list()]
    assert client.files.content(uploaded.id).read() == b'{"k": 1}'
    copied = client.containers.files.create(container_id=container.id, file_id=uploaded.id)
    assert (copied.path, copied.bytes, copied.source) == ("/mnt/data/data.json", 8, "user")
    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted is True
    # The container keeps its own copy.
    assert client.containers.files.content.retrieve(copied.id, container_id=container.id).read() == b'{"k": 1}'
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_create_container_with_file_ids(client: openai.OpenAI):
    a = client.files.create(file=("a.txt", b"A"), purpose="user_data")
    b = client.files.create(file=("b.txt", b"BB"), purpose="user_data")
    created = client.containers.create(name="with-files", file_ids=[a.id, b.id])
    try:
        files = {f.path: f.bytes for f in client.containers.files.list(container_id=created.id)}
        assert files == {"/mnt/data/a.txt": 1, "/mnt/data/b.txt": 2}
    finally:
        client.containers.delete(created.id)


def test_files_upload_requires_purpose(http):
    r = http.post("/files", files={"file": ("x.txt", b"x")})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "purpose"


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def test_large_upload_streams_and_round_trips(http, server, container, tmp_path):
    payload = os.urandom(1024 * 1024) * 48  # 48 MiB
    peak_before = _peak_rss_kib(server.process.pid)
    r = http.post(f"/containers/{container.id}/files", files={"file": ("big.bin", payload)})
    assert r.status_code == 200, r.text
    # Streamed to disk: the server's peak memory does not grow with the upload.
    assert _peak_rss_kib(server.process.pid) - peak_before < 16 * 1024
    fid = r.json()["id"]
    digest = hashlib.sha256()
    with http.stream("GET", f"/containers/{container.id}/files/{fid}/content") as resp:
        assert resp.headers["content-length"] == str(len(payload))
        for chunk in resp.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()


@pytest.mark.integration
def test_upload_over_the_limit_is_413_and_leaves_nothing(tmp_path):
    import httpx

    from cellbox.local.testing import running_server

    with (
        running_server(tmp_path / "d", max_upload_mb=1, pool_size=0) as srv,
        httpx.Client(base_url=srv.base_url, headers=srv.headers) as h,
    ):
        cid = h.post("/containers", json={"name": "small"}).json()["id"]
        r = h.post(f"/containers/{cid}/files", files={"file": ("big.bin", b"x" * (3 * 1024 * 1024))})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "file_too_large"
        assert h.get(f"/containers/{cid}/files").json()["data"] == []
        assert os.listdir(srv.data_dir / "tmp") == []


def test_an_aborted_upload_leaves_nothing(http, server, container):
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server.base_url)
    head = (
        f"POST {url.path}/containers/{container.id}/files HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
        '--B\r\nContent-Disposition: form-data; name="file"; filename="partial.bin"\r\n\r\n'
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head + b"x" * (1024 * 1024))
        wait_until(lambda: os.listdir(server.data_dir / "tmp"), what="the upload to reach a temp file")
    wait_until(lambda: not os.listdir(server.data_dir / "tmp"), what="the aborted upload's temp file to go")
    assert http.get(f"/containers/{container.id}/files").json()["data"] == []
    assert not (server.data_dir / "containers" / container.id / "partial.bin").exists()


def test_byte_ranges_and_head(http, container):
    data = bytes(range(256)) * 4
    fid = http.post(f"/containers/{container.id}/files", files={"file": ("r.bin", data)}).json()["id"]
    url = f"/containers/{container.id}/files/{fid}/content"
    r = http.get(url, headers={"Range": "bytes=10-19"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (206, data[10:20], "bytes 10-19/1024")
    assert http.get(url, headers={"Range": "bytes=1000-"}).content == data[1000:]
    assert http.get(url, headers={"Range": "bytes=-4"}).content == data[-4:]
    r = http.get(url, headers={"Range": "bytes=2000-3000"})
    assert (r.status_code, r.headers["content-range"]) == (416, "bytes */1024")
    r = http.head(url)
    assert (r.status_code, r.headers["content-length"], r.content) == (200, "1024", b"")
    assert http.get(url).headers["accept-ranges"] == "bytes"
