"""Attack: bodies that are not what they claim. A multipart body with no closing boundary was stored as a
complete file (half the bytes); two `file` parts and 100k-deep JSON answered generic 500s.

Uploads complete or nothing: a truncated body is a 400 (or, when the client went away, nothing at all) and
nothing is stored; every malformed body is a clear 400."""

from __future__ import annotations

import socket
import urllib.parse

import httpx

from cellbox.local.testing import wait_until

BOUNDARY = "cellboxboundary"
HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def _part(name: str, filename: str, body: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n'
    return head.encode() + body + b"\r\n"


def _listed(http: httpx.Client, container_id: str) -> list[str]:
    return [f["path"] for f in http.get(f"/containers/{container_id}/files").json()["data"]]


def test_a_body_without_its_closing_boundary_stores_nothing(http: httpx.Client, server, container):
    cut = _part("file", "half.csv", b"a,b\n" * 1000)[:-2]  # no CRLF, no closing boundary
    r = http.post(f"/containers/{container.id}/files", content=cut, headers=HEADERS)
    assert r.status_code == 400, r.text
    assert "incomplete" in r.json()["error"]["message"]
    assert _listed(http, container.id) == []
    assert not (server.data_dir / "containers" / container.id / "half.csv").exists()
    assert list((server.data_dir / "tmp").iterdir()) == []
    r = http.post("/files", content=cut + f"--{BOUNDARY}".encode(), headers=HEADERS)
    assert r.status_code == 400, r.text


def test_a_client_that_hangs_up_mid_body_stores_nothing(http: httpx.Client, server, container):
    url = urllib.parse.urlsplit(server.base_url)
    body = _part("file", "dropped.bin", b"x" * 100_000) + f"--{BOUNDARY}--\r\n".encode()
    head = (
        f"POST {url.path}/containers/{container.id}/files HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: {HEADERS['content-type']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
    # The server notices the hang-up on its next read and removes what it had written.
    wait_until(lambda: not list((server.data_dir / "tmp").iterdir()), what="the partial upload to be removed")
    assert _listed(http, container.id) == []


def test_two_file_parts_are_a_400(http: httpx.Client, container):
    body = _part("file", "a.txt", b"A") + _part("file", "b.txt", b"B") + f"--{BOUNDARY}--\r\n".encode()
    r = http.post(f"/containers/{container.id}/files", content=body, headers=HEADERS)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "file"
    assert _listed(http, container.id) == []


def test_deeply_nested_json_is_a_400(http: httpx.Client, container):
    deep = b"[" * 100_000 + b"]" * 100_000
    for path, body in [
        ("/containers", deep),
        ("/responses", b'{"model": "m", "input": ' + deep + b"}"),
        (f"/containers/{container.id}/files", b'{"file_id": ' + deep + b"}"),
    ]:
        r = http.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, (path, r.text)
        assert "nested too deeply" in r.json()["error"]["message"]
