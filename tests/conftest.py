"""Fixtures for the whole suite: a clean configuration for every test, and one real local server per session
for the tests of the layers above `cellbox.api` (CLI, sandboxes, magics).

The Sandbox and magics tests run against each server of `--cloud-profiles` (all by default): `plain` keeps the
documented API semantics, `openai` and `oci` behave like those services with every model quirk on and a lagging
file listing (`cellbox serve --profile … --model-quirks all --listing-lag-ms …`), so the suite fails if cellbox
only works against a kind server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.local.testing import RunningServer, running_server

# Server options per profile; the quirky ones are what a test of the cloud path needs (issue 8).
CLOUD_PROFILES: dict[str, dict[str, object]] = {
    "plain": {},
    "openai": {"profile": "openai", "model_quirks": "all", "listing_lag_ms": 300},
    "oci": {"profile": "oci", "model_quirks": "all", "listing_lag_ms": 300},
}
OCI_PROJECT = "ocid1.generativeaiproject.oc1.iad.test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cloud-profiles",
        default=",".join(CLOUD_PROFILES),
        help=f"servers the Sandbox and magics tests run against (comma list of {', '.join(CLOUD_PROFILES)})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cloud_profiles(*names): run only against these of --cloud-profiles")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cloud_profile" in metafunc.fixturenames:
        chosen = [p.strip() for p in metafunc.config.getoption("--cloud-profiles").split(",") if p.strip()]
        unknown = set(chosen) - set(CLOUD_PROFILES)
        if unknown:
            raise pytest.UsageError(f"--cloud-profiles: unknown {', '.join(sorted(unknown))}")
        only = metafunc.definition.get_closest_marker("cloud_profiles")
        if only is not None:
            chosen = [name for name in chosen if name in only.args]
        metafunc.parametrize("cloud_profile", chosen, scope="session")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CELLBOX_* / OCI_* variables, and config and state in empty tmp dirs: the user's files never leak in."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("CELLBOX_", "OCI_")) or name == "XDG_STATE_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("CELLBOX_STATE_DIR", str(home / "state"))
    return home


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("local-server"), pool_size=2, exec_timeout=60) as server:
        yield server


@pytest.fixture
def use_local_server(local_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """Configure cellbox (through the environment, as a user would) to use the session's local server."""
    monkeypatch.setenv("CELLBOX_BASE_URL", local_server.base_url)
    monkeypatch.setenv("CELLBOX_API_KEY", local_server.token)
    monkeypatch.setenv("CELLBOX_MODEL", "cellbox-local")
    return local_server


@pytest.fixture(scope="session")
def cloud_server(cloud_profile: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A local server for each of --cloud-profiles (the tests using it run once per profile)."""
    options = CLOUD_PROFILES[cloud_profile]
    folder = tmp_path_factory.mktemp(f"server-{cloud_profile}")
    with running_server(folder, pool_size=2, exec_timeout=60, **options) as server:
        yield server


@pytest.fixture(scope="session")
def cloud_environment(cloud_server: RunningServer, cloud_profile: str) -> dict[str, str]:
    """The CELLBOX_* variables a user would set for the profile's server (OCI's needs a project)."""
    env = {
        "CELLBOX_BASE_URL": cloud_server.base_url,
        "CELLBOX_API_KEY": cloud_server.token,
        "CELLBOX_MODEL": "cellbox-local",
    }
    if cloud_profile == "oci":
        env["CELLBOX_PROJECT"] = OCI_PROJECT
    return env


@pytest.fixture
def use_cloud_server(cloud_environment: dict[str, str], cloud_profile: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Configure cellbox (through the environment, as a user would) for the profile's server; returns the
    profile."""
    for name, value in cloud_environment.items():
        monkeypatch.setenv(name, value)
    return cloud_profile
