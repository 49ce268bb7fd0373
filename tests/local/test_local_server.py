"""The server process: auth, the endpoint file, refusing to run without isolation, latency injection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest

from cellbox.local.testing import running_server, wait_until


def test_every_request_needs_the_token(server):
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": server.token}]:
        r = httpx.get(f"{server.base_url}/containers", headers=headers)
        assert r.status_code == 401
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert server.token not in r.text
    r = httpx.get(f"{server.base_url}/containers", headers={})
    assert "didn't provide an API key" in r.json()["error"]["message"]
    r = httpx.get(f"{server.base_url}/nope", headers={"Authorization": "Bearer x"})
    assert r.status_code == 401  # unknown routes are no way around auth
    with (
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0) as c,
        pytest.raises(openai.AuthenticationError),
    ):
        c.containers.list()


def test_binds_loopback_by_default(server):
    assert server.base_url.startswith("http://127.0.0.1:")


@pytest.mark.integration
def test_endpoint_file_lifecycle(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "CELLBOX_STATE_DIR": str(state)}
    argv = [sys.executable, "-m", "cellbox.local", "--port", "0", "--data-dir", str(tmp_path / "d")]
    argv += ["--pool-size", "0", "--unsafe-no-isolation"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        endpoint = state / "server.json"

        def written() -> bool:
            assert proc.poll() is None
            return endpoint.exists()

        wait_until(written, timeout=30, what="the server to write its endpoint file")
        assert endpoint.stat().st_mode & 0o777 == 0o600
        info = json.loads(endpoint.read_text())
        assert set(info) == {"base_url", "token", "pid"}
        assert info["pid"] == proc.pid
        assert info["base_url"].endswith("/v1")
        r = httpx.get(f"{info['base_url']}/containers", headers={"Authorization": f"Bearer {info['token']}"})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0
    assert not endpoint.exists()
    assert info["token"] not in output


def test_serving_in_a_process_that_goes_on_gives_back_its_signal_handlers(tmp_path):
    # `serve` called from a program's main thread (not the CLI, whose process ends with it): once it returns,
    # Ctrl-C and SIGTERM do what they did before.
    script = f"""
import signal, sys
from cellbox.local.options import ServerOptions
from cellbox.local.server import serve
signal.signal(signal.SIGTERM, signal.SIG_DFL)
before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
options = ServerOptions(port=0, data_dir={str(tmp_path / "d")!r}, pool_size=0, unsafe_no_isolation=True,
                        endpoint_file={str(tmp_path / "server.json")!r})
status = serve(options)
print("after", status, (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before, flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (tmp_path / "server.json").exists() or proc.poll() is not None, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert "after 0 True" in output, output


@pytest.mark.integration
def test_refuses_to_run_without_isolation(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no bwrap to be found
    argv = [sys.executable, "-m", "cellbox.local", "--port", "0", "--data-dir", str(tmp_path / "d")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "bubblewrap" in done.stderr
    assert "--unsafe-no-isolation" in done.stderr


@pytest.mark.integration
def test_latency_injection(tmp_path):
    with running_server(tmp_path / "d", latency_ms=300, pool_size=0) as srv:
        started = time.perf_counter()
        r = httpx.get(f"{srv.base_url}/containers", headers=srv.headers)
        assert r.status_code == 200
        assert time.perf_counter() - started >= 0.3
        started = time.perf_counter()
        assert httpx.get(f"{srv.base_url}/containers").status_code == 401
        assert time.perf_counter() - started >= 0.3


def test_cli_parser_registers_serve():
    import argparse

    from cellbox.local.cli import add_serve_parser

    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--port", "9", "--token", "t", "--latency-ms", "5", "--unsafe-no-isolation"])
    assert (args.port, args.token, args.latency_ms, args.unsafe_no_isolation, args.host) == (
        9,
        "t",
        5.0,
        True,
        "127.0.0.1",
    )
    assert args.max_upload_mb == 512


@pytest.mark.integration
def test_unsafe_mode_runs_code_without_a_sandbox(tmp_path, run, logs):
    with (
        running_server(tmp_path / "d", unsafe_no_isolation=True, pool_size=0) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key=srv.token, max_retries=0) as c,
    ):
        cid = c.containers.create(name="plain").id
        # Relative paths are the container's folder; there is no /mnt/data without a sandbox.
        call, _ = run(c, cid, "open('made.txt', 'w').write('x')\nprint('ok')")
        assert logs(call) == "ok\n"
        assert [f.path for f in c.containers.files.list(container_id=cid)] == ["/mnt/data/made.txt"]
        assert (srv.data_dir / "containers" / cid / "made.txt").read_text() == "x"


@pytest.mark.integration
def test_fault_injection(tmp_path):
    with running_server(tmp_path / "d", error_rate=1.0, pool_size=0) as srv:
        r = httpx.get(f"{srv.base_url}/containers", headers=srv.headers)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "injected_fault"
        assert httpx.get(f"{srv.base_url}/containers").status_code == 401  # auth still comes first
    with (
        running_server(tmp_path / "e", error_rate=0.3, pool_size=0) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key=srv.token, max_retries=12) as c,
    ):
        # The SDK retries 503s: with a third of the requests failing, every call still gets through.
        for i in range(4):
            created = c.containers.create(name=f"retry{i}")
            assert c.containers.retrieve(created.id).name == f"retry{i}"


@pytest.mark.integration
def test_access_log_shows_requests_but_never_the_token(tmp_path):
    with running_server(tmp_path / "d", access_log=True, pool_size=0, token="tok-not-in-logs") as srv:
        httpx.get(f"{srv.base_url}/containers", headers=srv.headers)
        httpx.get(f"{srv.base_url}/containers", headers={"Authorization": "Bearer wrong-token-also-hidden"})

        def both_logged() -> str | None:
            log = srv.log()
            return log if log.count("GET /v1/containers") >= 2 else None

        log = wait_until(both_logged, what="both requests in the access log")
    assert "GET /v1/containers" in log
    assert "tok-not-in-logs" not in log
    assert "wrong-token-also-hidden" not in log
