"""Helpers for testing OCI request signing the way OCI verifies it (see test_oci_auth.py).

`SigningServer` is a real HTTP server on loopback that records every request as it arrives (method, raw request
target, headers, and the sha256 and length of the body, hashed as it streams in); it also plays the instance
metadata service and the federation (auth) endpoint for instance principals. `verify` rebuilds the signing
string from what the server received, per the OCI HTTP-signature spec, and checks the `Authorization:
Signature …` header with the public key, the keyId, the list of signed headers, and that `x-content-sha256` /
`content-length` describe the body that actually arrived. The rest makes credentials: keys, certificates,
JWTs, files only their owner can read.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import email.utils
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from cellbox.api import AsyncClient, Client

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancy"
USER = "ocid1.user.oc1..aaaaaaaauser"
OTHER_USER = "ocid1.user.oc1..aaaaaaaaother"
PROJECT = "ocid1.generativeaiproject.oc1.us-chicago-1.aaaaaaaaproject"
BASIC = ["date", "(request-target)", "host"]
BODY = [*BASIC, "content-length", "content-type", "x-content-sha256"]


# --- the recording server -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Received:
    method: str
    target: str  # the raw request target: path and query exactly as sent
    headers: dict[str, str]  # names lower-cased
    header_names: list[str]
    sha256: str  # base64, of the body as received
    length: int
    body: bytes  # kept only when small


class SigningServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.before_answer: list[Callable[[Received], tuple[int, Any] | None]] = []
        self.imds: dict[str, bytes] = {}
        self.federation_token = ""
        self.federation_public_keys: list[bytes] = []

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def api_requests(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.target.startswith("/v1/")]

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
        self.before_answer.clear()

    def answer(self, rec: Received) -> tuple[int, Any]:
        for hook in list(self.before_answer):
            answer = hook(rec)
            if answer is not None:
                self.before_answer.remove(hook)
                return answer
        path = rec.target.split("?", 1)[0]
        if path.startswith("/imds/opc/v2/"):
            name = path.rsplit("/", 1)[1]
            return (200, self.imds[name]) if name in self.imds else (404, {"message": "not found"})
        if path == "/auth/v1/x509" and rec.method == "POST":
            self.federation_public_keys.append(base64.b64decode(json.loads(rec.body)["publicKey"]))
            return 200, {"token": self.federation_token}
        parts = path.strip("/").split("/")  # v1, containers, [id, [files]]
        if parts[:2] != ["v1", "containers"]:
            return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        if len(parts) == 2:
            if rec.method == "POST":
                return 200, _container("cntr_new", json.loads(rec.body).get("name"))
            return 200, {"object": "list", "data": [_container("cntr_1")], "has_more": False}
        cid = parts[2]
        if len(parts) == 3:
            if rec.method == "DELETE":
                return 200, {"id": cid, "object": "container.deleted", "deleted": True}
            return 200, _container(cid)
        if parts[3:] == ["files"] and rec.method == "POST":
            return 200, {
                "id": "cfile_1",
                "object": "container.file",
                "container_id": cid,
                "path": "/mnt/data/upload.bin",
                "bytes": rec.length,
                "source": "user",
                "created_at": 1,
            }
        return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}


def _container(cid: str, name: str | None = "demo") -> dict[str, Any]:
    return {"id": cid, "object": "container", "name": name, "status": "running", "created_at": 1}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SigningServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> Iterator[bytes]:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("content-length") or 0)
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def _handle(self) -> None:
        digest = hashlib.sha256()
        length = 0
        small = bytearray()
        for chunk in self._body():
            digest.update(chunk)
            length += len(chunk)
            if length <= 1 << 16:
                small += chunk
        rec = Received(
            method=self.command,
            target=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            header_names=[name.lower() for name in self.headers],
            sha256=base64.b64encode(digest.digest()).decode(),
            length=length,
            body=bytes(small) if length <= 1 << 16 else b"",
        )
        with self.server.lock:
            self.server.requests.append(rec)
        status, payload = self.server.answer(rec)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if not rec.target.startswith("/v1/"):
            # The oci SDK's own sessions (metadata, federation) are never closed; don't leave sockets open.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextmanager
def serving() -> Iterator[SigningServer]:
    """A `SigningServer` on 127.0.0.1 in a background thread, for the duration of the block."""
    server = SigningServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- verification, the way OCI does it ----------------------------------------------------------------------


class BadSignature(AssertionError):
    pass


def verify(rec: Received, public_key: Any, key_id: str, signed: list[str]) -> dict[str, str]:
    """Check `rec`'s OCI signature from what the server received. Raises BadSignature saying what is wrong."""
    auth = rec.headers.get("authorization", "")
    if not auth.startswith("Signature "):
        raise BadSignature(f"no Signature authorization: {auth[:20]!r}")
    params = dict(re.findall(r'(\w+)="([^"]*)"', auth[len("Signature ") :]))
    if params.get("version") != "1" or params.get("algorithm") != "rsa-sha256":
        raise BadSignature(f"version/algorithm: {params.get('version')!r} {params.get('algorithm')!r}")
    if params.get("keyId") != key_id:
        raise BadSignature(f"keyId {params.get('keyId')!r} != {key_id!r}")
    names = params.get("headers", "").split(" ")
    if names != signed:
        raise BadSignature(f"signed headers {names} != {signed}")
    duplicated = {n for n in rec.header_names if rec.header_names.count(n) > 1}
    if duplicated:
        raise BadSignature(f"headers sent twice: {duplicated}")
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {rec.method.lower()} {rec.target}")
        elif name not in rec.headers:
            raise BadSignature(f"signed header {name} was not received")
        else:
            lines.append(f"{name}: {rec.headers[name]}")
    try:
        public_key.verify(
            base64.b64decode(params["signature"]), "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise BadSignature("the signature does not verify over the received request") from None
    if "x-content-sha256" in names and rec.headers["x-content-sha256"] != rec.sha256:
        raise BadSignature("x-content-sha256 is not the sha256 of the body received")
    if "content-length" in names and int(rec.headers["content-length"]) != rec.length:
        raise BadSignature(f"content-length {rec.headers['content-length']} != {rec.length} bytes received")
    sent = email.utils.parsedate_to_datetime(rec.headers["date"]).timestamp()
    if abs(sent - time.time()) > 300:
        raise BadSignature(f"date {rec.headers['date']!r} is not now")
    return params


# --- credentials ------------------------------------------------------------------------------------------


def pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(private_key: rsa.RSAPrivateKey) -> str:
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())


def fake_jwt(**claims: Any) -> str:
    """A JWT the oci SDK can decode (it doesn't check the signature): far-future expiry."""

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    payload = {"iat": now, "exp": now + 10 * 365 * 86400, "sub": "test", **claims}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(payload)}.{part('not-a-real-signature')}"


def secret_file(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    path.chmod(0o600)
    return path


@dataclasses.dataclass
class OciUser:
    config_file: Path
    key_file: Path
    key_id: str


def certificate(subject_key: rsa.RSAPrivateKey, common_name: str, *extra: x509.NameAttribute) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), *extra])
    now = time.time()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(now - 3600, datetime.timezone.utc))
        .not_valid_after(datetime.datetime.fromtimestamp(now + 86400, datetime.timezone.utc))
        .sign(subject_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _secret_lines(data: bytes) -> list[str]:
    return [line for line in data.decode().splitlines() if line and not line.startswith("-----")]


def assert_no_key_material(text: str, *secrets: bytes) -> None:
    assert "BEGIN" not in text
    for secret in secrets:
        for line in _secret_lines(secret):
            assert line not in text


# --- the standard exchange, sync and async ------------------------------------------------------------------


def exchange(upload: Path) -> None:
    with Client() as client:
        client.containers.list_page(limit=2, order="desc", name="a b/c")
        client.containers.retrieve("cntr_1")
        client.containers.create("demo", memory_limit="4g", expires_after=20)
        client.containers.files.create("cntr_1", upload)
        client.containers.files.create("cntr_1", b"in memory bytes", filename="x.txt")
        client.containers.delete("cntr_1")


async def aexchange(upload: Path) -> None:
    async with AsyncClient() as client:
        await client.containers.list_page(limit=2, order="desc", name="a b/c")
        await client.containers.retrieve("cntr_1")
        await client.containers.create("demo", memory_limit="4g", expires_after=20)
        await client.containers.files.create("cntr_1", upload)
        await client.containers.files.create("cntr_1", b"in memory bytes", filename="x.txt")
        await client.containers.delete("cntr_1")


def check_exchange(server: SigningServer, public_key: Any, key_id: str, upload: Path) -> list[Received]:
    got = server.api_requests()
    assert [(r.method, r.target.split("?")[0]) for r in got] == [
        ("GET", "/v1/containers"),
        ("GET", "/v1/containers/cntr_1"),
        ("POST", "/v1/containers"),
        ("POST", "/v1/containers/cntr_1/files"),
        ("POST", "/v1/containers/cntr_1/files"),
        ("DELETE", "/v1/containers/cntr_1"),
    ]
    assert got[0].target == "/v1/containers?limit=2&order=desc&name=a+b%2Fc"
    for rec in got:
        verify(rec, public_key, key_id, BODY if rec.method == "POST" else BASIC)
        assert rec.headers["host"] == f"127.0.0.1:{server.port}"
    create, upload_rec = got[2], got[3]
    assert json.loads(create.body) == {
        "name": "demo",
        "memory_limit": "4g",
        "expires_after": {"anchor": "last_active_at", "minutes": 20},
    }
    assert create.headers["content-type"] == "application/json"
    assert upload_rec.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert upload_rec.length > upload.stat().st_size  # the file plus the multipart framing
    return got
