"""OCI request signing, verified the way OCI verifies it.

A real HTTP server on loopback records every request as it arrives (method, raw request target, headers, and
the sha256 and length of the body, hashed as it streams in). Each test rebuilds the signing string from what
the server received, per the OCI HTTP-signature spec, and checks the `Authorization: Signature …` header with
the public key, the keyId, the list of signed headers, and that `x-content-sha256` / `content-length` describe
the body that actually arrived. The same server plays the instance metadata service and the federation
(auth) endpoint for instance principals, so no test talks to anything but 127.0.0.1. The server, the
verification and the credential makers are in ocisigning.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ocisigning import (
    BASIC,
    BODY,
    OTHER_USER,
    PROJECT,
    TENANCY,
    USER,
    BadSignature,
    OciUser,
    Received,
    SigningServer,
    aexchange,
    assert_no_key_material,
    certificate,
    check_exchange,
    exchange,
    fake_jwt,
    fingerprint,
    pem,
    public_pem,
    secret_file,
    serving,
    verify,
)

from cellbox.api import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConfigurationError,
    OCIAuth,
    ValidationError,
)

# --- the recording server (ocisigning.SigningServer) ------------------------------------------------------


@pytest.fixture(scope="module")
def signing_server() -> Iterator[SigningServer]:
    with serving() as server:
        yield server


@pytest.fixture
def server(signing_server: SigningServer) -> SigningServer:
    signing_server.reset()
    return signing_server


# --- credentials ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(autouse=True)
def clean_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the user's (config, state, ~/.oci, proxies) leaks in."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("CELLBOX_", "OCI_")) or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("CELLBOX_STATE_DIR", str(home / "state"))


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to somewhere other than 127.0.0.1 (the instance metadata service…) fails the test."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"connection to {address!r} attempted; only loopback is allowed here")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def oci_user(tmp_path: Path, key: rsa.RSAPrivateKey, server: SigningServer, monkeypatch: pytest.MonkeyPatch) -> OciUser:
    """An OCI API-key profile CELLBOX (DEFAULT names another user) and cellbox configured to use it."""
    key_file = secret_file(tmp_path / "oci_api_key.pem", pem(key))
    config = tmp_path / "oci" / "config"
    config.parent.mkdir()
    config.write_text(
        textwrap.dedent(
            f"""\
            [DEFAULT]
            user={OTHER_USER}
            fingerprint={fingerprint(key)}
            tenancy={TENANCY}
            region=us-chicago-1
            key_file={key_file}

            [CELLBOX]
            user={USER}
            fingerprint={fingerprint(key)}
            tenancy={TENANCY}
            region=us-chicago-1
            key_file={key_file}
            """
        )
    )
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_AUTH", "oci_user_principal")
    monkeypatch.setenv("OCI_CONFIG_FILE", str(config))
    monkeypatch.setenv("OCI_CONFIG_PROFILE", "CELLBOX")
    return OciUser(config, key_file, f"{TENANCY}/{USER}/{fingerprint(key)}")


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def test_user_principal_signs_get_delete_json_and_multipart(
    oci_user: OciUser, key: rsa.RSAPrivateKey, server: SigningServer, upload: Path
) -> None:
    exchange(upload)
    check_exchange(server, key.public_key(), oci_user.key_id, upload)


@pytest.mark.asyncio
async def test_user_principal_signs_the_same_from_async_client(
    oci_user: OciUser, key: rsa.RSAPrivateKey, server: SigningServer, upload: Path
) -> None:
    await aexchange(upload)
    check_exchange(server, key.public_key(), oci_user.key_id, upload)


def test_tampered_requests_fail_verification(oci_user: OciUser, key: rsa.RSAPrivateKey, server: SigningServer) -> None:
    """The check can fail: a request signed for one path or body and delivered with another is caught."""
    with Client() as client:
        client.containers.create("demo")
        auth = client._auth
    good = server.api_requests()[0]
    verify(good, key.public_key(), oci_user.key_id, BODY)

    signed = httpx.Request("POST", f"{server.base_url}/containers", content=b'{"name":"demo"}')
    assert isinstance(auth, OCIAuth)
    auth.sign(signed)
    headers = {k: v for k, v in signed.headers.items() if k.lower() not in ("host", "content-length")}
    with httpx.Client() as http:
        http.post(f"{server.base_url}/containerz", headers=headers, content=signed.content)  # another path
        http.post(f"{server.base_url}/containers", headers=headers, content=b'{"name":"evil"}')  # same length
        http.post(f"{server.base_url}/containers?x=1", headers=headers, content=signed.content)  # a query added
    other_path, other_body, other_query = server.api_requests()[1:]
    with pytest.raises(BadSignature, match="does not verify"):
        verify(other_path, key.public_key(), oci_user.key_id, BODY)
    with pytest.raises(BadSignature, match="x-content-sha256"):
        verify(other_body, key.public_key(), oci_user.key_id, BODY)
    with pytest.raises(BadSignature, match="does not verify"):
        verify(other_query, key.public_key(), oci_user.key_id, BODY)
    wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BadSignature, match="does not verify"):
        verify(good, wrong_key.public_key(), oci_user.key_id, BODY)
    with pytest.raises(BadSignature, match="keyId"):
        verify(good, key.public_key(), f"{TENANCY}/{OTHER_USER}/{fingerprint(key)}", BODY)


def test_project_header_is_sent_and_requests_still_verify(
    oci_user: OciUser, key: rsa.RSAPrivateKey, server: SigningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_PROJECT", PROJECT)
    with Client() as client:
        client.containers.create("demo")
        client.containers.retrieve("cntr_1")
    create, get = server.api_requests()
    for rec in (create, get):
        assert rec.headers["openai-project"] == PROJECT
    verify(create, key.public_key(), oci_user.key_id, BODY)
    verify(get, key.public_key(), oci_user.key_id, BASIC)


def test_a_body_that_cannot_be_read_twice_is_refused_before_sending(oci_user: OciUser, server: SigningServer) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"streamed from a pipe")
    os.close(write_end)
    with Client() as client, os.fdopen(read_end, "rb") as pipe, pytest.raises(ValidationError, match="seekable"):
        client.containers.files.create("cntr_1", pipe, filename="pipe.txt")
    assert server.api_requests() == []


# --- large uploads stream -----------------------------------------------------------------------------------

_MEMORY_PROBE = """
import asyncio, resource, sys
from cellbox.api import AsyncClient, Client

mode, big, small = sys.argv[1:]

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def upload_async():
    async with AsyncClient() as client:
        await client.containers.files.create("cntr_1", small)  # warm up: imports, signer, connection, thread
        before = peak_kib()
        await client.containers.files.create("cntr_1", big)
        return peak_kib() - before

if mode == "sync":
    with Client() as client:
        client.containers.files.create("cntr_1", small)
        before = peak_kib()
        client.containers.files.create("cntr_1", big)
        print(peak_kib() - before)
else:
    print(asyncio.run(upload_async()))
"""


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_large_upload_is_signed_and_streamed_with_flat_memory(
    mode: str, oci_user: OciUser, key: rsa.RSAPrivateKey, server: SigningServer, upload: Path, tmp_path: Path
) -> None:
    """A 96 MiB upload, hashed and sent in chunks: the peak RSS of the uploading process barely moves.

    Each mode runs in a fresh process, since the peak (ru_maxrss) never goes down.
    """
    size = 96 * 1024 * 1024
    big = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with big.open("wb") as f:
        for i in range(size >> 20):
            f.write(i.to_bytes(8, "big") + block[8:])
    probe = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, mode, str(big), str(upload)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    growth_kib = int(probe.stdout)
    warm, sent = server.api_requests()
    for rec in (warm, sent):
        verify(rec, key.public_key(), oci_user.key_id, BODY)
    assert size < sent.length < size + 1024
    # Reading the file into memory would raise the peak by ~96 MiB or more; streamed, it stays within a few.
    assert growth_kib < 16 * 1024, f"peak RSS grew by {growth_kib} KiB"


# --- sessions (oci session authenticate) --------------------------------------------------------------------


@pytest.fixture
def session_profile(
    tmp_path: Path, key: rsa.RSAPrivateKey, server: SigningServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    key_file = secret_file(tmp_path / "session_key.pem", pem(key))
    token_file = secret_file(tmp_path / "token", fake_jwt(sess_exp=1) + "\n")
    config = tmp_path / "config"
    config.write_text(
        f"[SESSION]\nfingerprint={fingerprint(key)}\nkey_file={key_file}\ntenancy={TENANCY}\n"
        f"region=us-chicago-1\nsecurity_token_file={token_file}\n"
    )
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_AUTH", "oci_session")
    monkeypatch.setenv("OCI_CONFIG_FILE", str(config))
    monkeypatch.setenv("OCI_CONFIG_PROFILE", "SESSION")
    return token_file


def test_session_token_signs_with_st_key_id_and_follows_refresh(
    session_profile: Path, key: rsa.RSAPrivateKey, server: SigningServer, upload: Path
) -> None:
    token = session_profile.read_text().strip()
    with Client() as client:
        client.containers.create("demo")
        client.containers.files.create("cntr_1", upload)
        client.containers.retrieve("cntr_1")
        refreshed = fake_jwt(sess_exp=2, refreshed=True)  # what `oci session refresh` does
        session_profile.write_text(refreshed)
        client.containers.retrieve("cntr_1")
    create, files, get, after = server.api_requests()
    verify(create, key.public_key(), f"ST${token}", BODY)
    verify(files, key.public_key(), f"ST${token}", BODY)
    verify(get, key.public_key(), f"ST${token}", BASIC)
    verify(after, key.public_key(), f"ST${refreshed}", BASIC)


@pytest.mark.asyncio
async def test_session_token_from_async_client(
    session_profile: Path, key: rsa.RSAPrivateKey, server: SigningServer
) -> None:
    async with AsyncClient() as client:
        await client.containers.create("demo")
    (create,) = server.api_requests()
    verify(create, key.public_key(), f"ST${session_profile.read_text().strip()}", BODY)


# --- resource principals (v2.2) ----------------------------------------------------------------------------


@pytest.fixture
def resource_principal(
    tmp_path: Path, server: SigningServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, rsa.RSAPrivateKey]:
    rp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rpst = secret_file(tmp_path / "rpst", fake_jwt(res_tenant=TENANCY, res_compartment="ocid1.compartment.oc1..c"))
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_AUTH", "oci_resource_principal")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", str(rpst))  # an absolute path: re-read on refresh
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", str(secret_file(tmp_path / "rp.pem", pem(rp_key))))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-chicago-1")
    return rpst, rp_key


def test_resource_principal_signs_with_the_rpst(
    resource_principal: tuple[Path, rsa.RSAPrivateKey], server: SigningServer, upload: Path
) -> None:
    rpst, rp_key = resource_principal
    exchange(upload)
    check_exchange(server, rp_key.public_key(), f"ST${rpst.read_text()}", upload)


@pytest.mark.asyncio
async def test_resource_principal_refreshes_its_token_after_a_401(
    resource_principal: tuple[Path, rsa.RSAPrivateKey], server: SigningServer, upload: Path
) -> None:
    """The service rotates the RPST file and the old token gets a 401: the upload is re-signed and re-sent."""
    rpst, rp_key = resource_principal
    old = rpst.read_text()
    new = fake_jwt(res_tenant=TENANCY, res_compartment="ocid1.compartment.oc1..c", rotated=True)

    def rotate_and_reject(rec: Received) -> tuple[int, Any] | None:
        if not rec.target.startswith("/v1/"):
            return None
        rpst.write_text(new)
        return 401, {"code": "NotAuthenticated", "message": "token expired"}

    server.before_answer.append(rotate_and_reject)
    async with AsyncClient() as client:
        made = await client.containers.files.create("cntr_1", upload)
    assert made.id == "cfile_1"
    rejected, accepted = server.api_requests()
    verify(rejected, rp_key.public_key(), f"ST${old}", BODY)
    verify(accepted, rp_key.public_key(), f"ST${new}", BODY)
    assert accepted.sha256 == rejected.sha256


# --- instance principals, against a fake metadata service and federation endpoint on loopback ------------


@pytest.fixture
def instance_metadata(server: SigningServer, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> SigningServer:
    import oci

    leaf_key = key
    intermediate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.imds = {
        "region": b"us-chicago-1",
        "cert.pem": certificate(
            leaf_key, "instance", x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-tenant:{TENANCY}")
        ),
        "key.pem": pem(leaf_key),
        "intermediate.pem": certificate(intermediate_key, "intermediate"),
    }
    server.federation_token = fake_jwt(tenant=TENANCY)
    server.federation_public_keys.clear()
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_AUTH", "oci_instance_principal")
    monkeypatch.setenv("OCI_METADATA_BASE_URL", f"http://127.0.0.1:{server.port}/imds/opc/v2")
    # The federation endpoint is https://auth.<region>.oraclecloud.com unless this says otherwise.
    monkeypatch.setattr(oci.regions, "endpoint_for", lambda *a, **k: f"http://127.0.0.1:{server.port}/auth")
    return server


def test_instance_principal_is_lazy_then_signs_with_the_federated_token(
    instance_metadata: SigningServer, key: rsa.RSAPrivateKey, upload: Path
) -> None:
    server = instance_metadata
    with Client() as client:
        assert server.requests == []  # making a client talks to nobody
        client.containers.create("demo")
        client.containers.files.create("cntr_1", upload)
        client.containers.retrieve("cntr_1")
    with server.lock:
        paths = [r.target for r in server.requests if not r.target.startswith("/v1/")]
    assert "/auth/v1/x509" in paths and "/imds/opc/v2/identity/cert.pem" in paths
    federation = next(r for r in server.requests if r.target == "/auth/v1/x509")
    leaf_fingerprint = ":".join(
        f"{b:02X}" for b in x509.load_pem_x509_certificate(server.imds["cert.pem"]).fingerprint(hashes.SHA1())
    )
    # The SDK's own token request, signed with the instance's leaf key: proves the fake is faithful.
    verify(
        federation,
        key.public_key(),
        f"{TENANCY}/fed-x509/{leaf_fingerprint}",
        ["date", "(request-target)", "content-length", "content-type", "x-content-sha256"],
    )
    (session_public_der,) = server.federation_public_keys
    session_key = serialization.load_der_public_key(session_public_der)
    create, files, get = server.api_requests()
    key_id = f"ST${server.federation_token}"
    verify(create, session_key, key_id, BODY)
    verify(files, session_key, key_id, BODY)
    verify(get, session_key, key_id, BASIC)


@pytest.mark.asyncio
async def test_instance_principal_from_async_client(instance_metadata: SigningServer) -> None:
    server = instance_metadata
    async with AsyncClient() as client:
        await client.containers.create("demo")
    (session_public_der,) = server.federation_public_keys
    (create,) = server.api_requests()
    verify(create, serialization.load_der_public_key(session_public_der), f"ST${server.federation_token}", BODY)


def test_instance_principal_without_a_metadata_service_is_a_configuration_error(
    server: SigningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_AUTH", "oci_instance_principal")
    monkeypatch.setenv("OCI_METADATA_BASE_URL", f"http://127.0.0.1:{closed_port}/opc/v2")
    started = time.monotonic()
    with (
        Client() as client,
        pytest.raises(ConfigurationError, match="oci_instance_principal auth could not be set up") as err,
    ):
        client.containers.retrieve("cntr_1")
    assert "compute instance" in str(err.value)
    assert time.monotonic() - started < 20  # a few quick attempts, not the SDK's minutes of retries
    assert server.api_requests() == []


# --- errors ---------------------------------------------------------------------------------------------------


def test_missing_config_file(oci_user: OciUser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OCI_CONFIG_FILE", str(tmp_path / "nope" / "config"))
    with pytest.raises(ConfigurationError, match=r"no OCI config file at .*nope.*oci setup config"):
        Client()


def test_missing_profile(oci_user: OciUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONFIG_PROFILE", "NOPE")
    with pytest.raises(ConfigurationError, match="Profile 'NOPE' not found"):
        Client()


def test_public_key_as_key_file(oci_user: OciUser, key: rsa.RSAPrivateKey) -> None:
    secret_file(oci_user.key_file, public_pem(key))
    with pytest.raises(ConfigurationError, match="public key was provided") as err:
        Client()
    assert_no_key_material(str(err.value), public_pem(key), pem(key))


def test_session_without_token_file(session_profile: Path) -> None:
    session_profile.unlink()
    with pytest.raises(ConfigurationError, match=r"session token file .*`oci session authenticate`"):
        Client()


def test_resource_principal_outside_oci(server: SigningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_AUTH", "oci_resource_principal")
    with Client() as client, pytest.raises(ConfigurationError, match="OCI_RESOURCE_PRINCIPAL_VERSION"):
        client.containers.retrieve("cntr_1")


def test_oci_not_installed(oci_user: OciUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oci", None)  # `import oci` now raises ImportError
    with pytest.raises(ConfigurationError, match=r"pip install 'cellbox\[oci\]'"):
        Client()


def test_invalid_metadata_key_never_echoes_key_material() -> None:
    from oci.auth.certificate_retriever import InvalidCertificateFromInstanceMetadataError

    leaked = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def make() -> Any:
        raise InvalidCertificateFromInstanceMetadataError(certificate_type="private_key", certificate_raw=leaked)

    auth = OCIAuth(make, kind="oci_instance_principal")
    with pytest.raises(ConfigurationError, match="invalid private_key") as err:
        auth.sign(httpx.Request("GET", "http://127.0.0.1:1/v1/containers"))
    assert_no_key_material(str(err.value), leaked)

    def make_other() -> Any:
        raise ValueError(f"bad key {leaked.decode()} and token {fake_jwt()}")

    with pytest.raises(ConfigurationError) as err:
        OCIAuth(make_other).sign(httpx.Request("GET", "http://127.0.0.1:1/v1/containers"))
    assert_no_key_material(str(err.value), leaked)
    assert "eyJ" not in str(err.value)


def test_secrets_never_in_reprs_or_errors(
    oci_user: OciUser, key: rsa.RSAPrivateKey, server: SigningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_key = "sk-cellbox-test-" + "s3cr3t" * 4
    monkeypatch.setenv("CELLBOX_AUTH", "api_key")
    monkeypatch.setenv("CELLBOX_API_KEY", api_key)
    server.before_answer.append(lambda rec: (401, {"error": {"message": "bad key", "type": "auth"}}))
    texts = []
    with Client(max_retries=0) as client:
        texts += [repr(client), repr(client._auth), repr(client.settings), str(client.settings.describe())]
        with pytest.raises(AuthenticationError) as err:
            client.containers.retrieve("cntr_1")
        texts.append(str(err.value))
    assert server.api_requests()[0].headers["authorization"] == f"Bearer {api_key}"  # it was sent, though
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with (
        Client(base_url=f"http://127.0.0.1:{closed}/v1", max_retries=0) as client,
        pytest.raises(APIConnectionError) as err,
    ):
        client.containers.retrieve("cntr_1")
    texts.append(str(err.value))
    monkeypatch.setenv("CELLBOX_AUTH", "oci_user_principal")
    with Client() as client:
        texts += [repr(client), repr(client._auth)]
    for text in texts:
        assert api_key not in text
        assert_no_key_material(text, pem(key))
