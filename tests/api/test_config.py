"""Where settings come from: arguments, then the environment, then config.toml, then the endpoint file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellbox.api import Client, ConfigurationError, load_settings
from cellbox.api.config import oci_base_url
from cellbox.common import paths


def _write_config(text: str) -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _write_endpoint(pid: int, url: str = "http://127.0.0.1:9999/v1", token: str = "tok-local") -> Path:
    path = paths.endpoint_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"base_url": url, "token": token, "pid": pid}))
    return path


def test_the_user_s_config_is_isolated(clean_environment: Path) -> None:
    assert str(paths.config_file()).startswith(str(clean_environment))
    assert str(paths.endpoint_file()).startswith(str(clean_environment))
    # But for the run's own state folder and the one sandbox environment every server of the run shares.
    kept = {"CELLBOX_STATE_DIR", "CELLBOX_SANDBOX_ENV_DIR"}
    assert not any(name.startswith("CELLBOX_") and name not in kept for name in os.environ)


def test_env_over_toml_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _write_config('base_url = "https://toml.example/v1/"\napi_key = "toml-key"\nmodel = "toml-model"\n')
    settings = load_settings()
    assert settings.base_url == "https://toml.example/v1" and settings.api_key == "toml-key"
    assert settings.model == "toml-model" and settings.auth == "api_key" and settings.oci_profile == "DEFAULT"
    assert settings.origin["base_url"] == str(config)
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://env.example/v1")
    monkeypatch.setenv("CELLBOX_MODEL", "env-model")
    settings = load_settings()
    assert settings.base_url == "https://env.example/v1" and settings.model == "env-model"
    assert settings.api_key == "toml-key" and settings.origin["base_url"] == "CELLBOX_BASE_URL"
    settings = load_settings(base_url="https://arg.example/v1")
    assert settings.base_url == "https://arg.example/v1" and settings.origin["base_url"] == "argument"


def test_the_container_binding_is_id_unless_set_to_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().container_binding == "id"
    _write_config('container_binding = "auto"\n')
    assert load_settings().container_binding == "auto" and load_settings().describe()["container_binding"] == "auto"
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", "ID")
    assert load_settings().container_binding == "id"
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", "explicit")
    with pytest.raises(ConfigurationError, match="container_binding must be one of id, auto, got 'explicit'"):
        load_settings()


def test_a_cellbox_table_is_accepted() -> None:
    _write_config('[cellbox]\nbase_url = "https://table.example/v1"\napi_key = "k"\n')
    assert load_settings().base_url == "https://table.example/v1"


def test_region_builds_the_oci_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_OCI_REGION", "us-chicago-1")
    settings = load_settings()
    assert settings.base_url == oci_base_url("us-chicago-1") and settings.backend == "oci"
    assert settings.base_url == "https://inference.generativeai.us-chicago-1.oci.oraclecloud.com/openai/v1"


def test_the_endpoint_file_of_a_live_server() -> None:
    _write_endpoint(os.getpid())
    settings = load_settings()
    assert settings.base_url == "http://127.0.0.1:9999/v1" and settings.api_key == "tok-local"
    assert settings.backend == "local" and settings.origin["api_key"] == "endpoint file"


def test_the_endpoint_file_of_a_dead_server_is_ignored() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_endpoint(dead.pid)
    assert load_settings().base_url is None
    with pytest.raises(ConfigurationError, match="cellbox serve") as info:
        Client()
    assert "CELLBOX_BASE_URL" in str(info.value)


def test_an_explicit_url_wins_over_the_endpoint_file(monkeypatch: pytest.MonkeyPatch) -> None:
    _write_endpoint(os.getpid())
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://remote.example/v1")
    monkeypatch.setenv("CELLBOX_API_KEY", "remote-key")
    settings = load_settings()
    assert settings.base_url == "https://remote.example/v1" and settings.api_key == "remote-key"


def test_no_backend_names_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="cellbox serve") as info:
        Client()
    assert "CELLBOX_BASE_URL" in str(info.value) and "CELLBOX_OCI_REGION" in str(info.value)


def test_no_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://remote.example/v1")
    with pytest.raises(ConfigurationError, match="CELLBOX_API_KEY"):
        Client()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("base_url = ", "can't read"),
        ("[[oops", "can't read"),
        ('base_url = "https://x/v1"\ncolour = "blue"\n', "unknown setting"),
        ("base_url = 42\n", "must be a string"),
        ('base_url = "ftp://x"\napi_key = "k"\n', "must start with http"),
        ("cellbox = 3\n", "expected key = value"),
    ],
)
def test_a_bad_config_file(text: str, match: str) -> None:
    config = _write_config(text)
    with pytest.raises(ConfigurationError, match=match) as info:
        load_settings()
    assert str(config) in str(info.value) or match == "must start with http"


def test_the_local_servers_sandbox_packages_are_a_known_key() -> None:
    _write_config('base_url = "https://x.example/v1"\napi_key = "k"\nsandbox_packages = ["duckdb"]\n')
    assert load_settings().base_url == "https://x.example/v1"


def test_an_unknown_auth_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://x.example/v1")
    monkeypatch.setenv("CELLBOX_AUTH", "password")
    with pytest.raises(ConfigurationError, match="unknown auth kind 'password'") as info:
        Client()
    assert "oci_instance_principal" in str(info.value)
    _write_config('auth = "kerberos"\n')
    monkeypatch.delenv("CELLBOX_AUTH")
    with pytest.raises(ConfigurationError, match="kerberos"):
        load_settings()


def test_describe_shows_sources_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("CELLBOX_API_KEY", "sk-secret-value")
    monkeypatch.setenv("CELLBOX_PROJECT", "proj_1")
    described = load_settings().describe()
    assert described["backend"] == "openai" and described["api_key"] == "set" and described["project"] == "proj_1"
    assert described["sources"]["api_key"] == "CELLBOX_API_KEY"
    assert "sk-secret-value" not in json.dumps(described)


def test_the_client_takes_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://env.example/v1")
    monkeypatch.setenv("CELLBOX_API_KEY", "sk-env")
    with Client() as client:
        assert client.base_url == "https://env.example/v1" and client.settings.api_key == "sk-env"
        assert repr(client) == "Client(base_url='https://env.example/v1', auth='api_key')"
    with Client("https://arg.example/v1", api_key="sk-arg", timeout=3) as client:
        assert client.base_url == "https://arg.example/v1" and client.timeout.read == 3
