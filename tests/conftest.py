"""Fixtures for the whole suite: a clean configuration for every test, and one real local server per session
for the tests of the layers above `cellbox.api` (CLI, sandboxes, magics).

Profiles. A test that takes `cloud_profile` (through `use_cloud_server`, `cloud_server` or a kernel made on
them) runs against the servers of `--cloud-profiles`: `plain` keeps the documented API semantics, `openai` and
`oci` behave like those services with every model quirk on and a lagging file listing (`cellbox serve --profile
… --model-quirks all --listing-lag-ms …`), so the suite fails if cellbox only works against a kind server.
A test marked `quirks` (it exercises a listing that lags, uploads the service renames, parameters it refuses,
a misbehaving model, OCI's error and 404 shapes) runs against each of them; `cloud_profiles(...)` names the
ones a test needs; any other runs against the first of `--cloud-profiles` only (plain by default), and
`--every-profile` runs them all against each as well.

`oci-auto` is OCI's profile refusing a container id in the code_interpreter tool, with cellbox configured to bind
auto containers (CELLBOX_CONTAINER_BINDING=auto): only the tests marked `auto_binding` (those exercising what the
binding changes: state between cells, -i/-o, files, pulls, revive) or naming it in `cloud_profiles(...)` run
against it, unless it is the only profile asked for or `--every-profile` is given.

Kinds. A test that starts a local sandbox server, a Jupyter server, a kernel or a browser is an `integration`
test (and a `browser` test when it drives JupyterLab in Chromium): the fixtures that start them request
`starts_processes`, which marks every test using them, and a test that starts one itself is marked by hand.
`make check` runs the others; a test that is not marked and starts one anyway fails, saying so."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cellbox.local.sandbox_env.environment import ROOT_VARIABLE as SANDBOX_ENV_VARIABLE
from cellbox.local.sandbox_env.environment import default_root as sandbox_env_root
from cellbox.local.testing import RunningServer, running_server

# Server options per profile; the quirky ones are what a test of the cloud path needs (issue 8).
CLOUD_PROFILES: dict[str, dict[str, object]] = {
    "plain": {},
    "openai": {"profile": "openai", "model_quirks": "all", "listing_lag_ms": 300},
    "oci": {"profile": "oci", "model_quirks": "all", "listing_lag_ms": 300},
    "oci-auto": {"profile": "oci-auto", "model_quirks": "all", "listing_lag_ms": 300},
}
AUTO_ONLY = "oci-auto"
OCI_PROJECT = "ocid1.generativeaiproject.oc1.iad.test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cloud-profiles",
        default=",".join(CLOUD_PROFILES),
        help=f"servers the tests taking a profile run against (comma list of {', '.join(CLOUD_PROFILES)}): those "
        "marked quirks against each, the others against the first",
    )
    parser.addoption(
        "--every-profile",
        action="store_true",
        help="run every test taking a profile against each of --cloud-profiles, not only those marked quirks",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cloud_profiles(*names): run only against these of --cloud-profiles")
    # Every server of the run, however started (a fixture, the sidebar's or a kernel's autostart under a HOME a
    # fixture changed), finds the one sandbox environment built for the run rather than building its own.
    os.environ.setdefault(SANDBOX_ENV_VARIABLE, str(sandbox_env_root()))
    subprocess.Popen.__init__ = _guarded_popen_init  # type: ignore[method-assign]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cloud_profile" in metafunc.fixturenames:
        chosen = [p.strip() for p in metafunc.config.getoption("--cloud-profiles").split(",") if p.strip()]
        unknown = set(chosen) - set(CLOUD_PROFILES)
        if unknown:
            raise pytest.UsageError(f"--cloud-profiles: unknown {', '.join(sorted(unknown))}")
        only = metafunc.definition.get_closest_marker("cloud_profiles")
        every = metafunc.config.getoption("--every-profile")
        auto = AUTO_ONLY in chosen and (
            every or chosen == [AUTO_ONLY] or metafunc.definition.get_closest_marker("auto_binding") is not None
        )
        if only is not None:
            chosen = [name for name in chosen if name in only.args]
        else:
            chosen = [name for name in chosen if name != AUTO_ONLY]
            if metafunc.definition.get_closest_marker("quirks") is None and not every:
                chosen = chosen[:1]
            chosen += [AUTO_ONLY] if auto else []
        metafunc.parametrize("cloud_profile", chosen, scope="session")


# The fixtures that start a browser (the rest that start something request `starts_processes`).
BROWSER_FIXTURES = {"lab", "page"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "starts_processes" in names or BROWSER_FIXTURES & names:
            item.add_marker(pytest.mark.integration)
        if BROWSER_FIXTURES & names:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def starts_processes() -> None:
    """Requested by each fixture that starts a local server, a Jupyter server, a kernel or a browser: the tests
    using one are marked integration."""


# What a test that is not marked integration must not start: the local server (`python -m cellbox.local`, or
# `cellbox serve` without --help), a kernel, Jupyter, Chromium.
_STARTS = re.compile(r"-m cellbox\.local\b|\bcellbox(\.cli)? serve\b(?!.*--help)|ipykernel|\bjupyter|chrom|playwright")
_real_popen_init = subprocess.Popen.__init__
_running: list[pytest.Item] = []


def _guarded_popen_init(self: subprocess.Popen, args: Any, *rest: Any, **options: Any) -> None:
    if _running and _running[-1].get_closest_marker("integration") is None:
        line = args if isinstance(args, (str, bytes)) else " ".join(map(str, args))
        line = line.decode(errors="replace") if isinstance(line, bytes) else line
        if _STARTS.search(line):
            raise RuntimeError(
                f"{_running[-1].nodeid} starts `{line[:120]}` but is not marked integration: add "
                "@pytest.mark.integration (or use a fixture that requests starts_processes)"
            )
    _real_popen_init(self, args, *rest, **options)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.fixture(autouse=True)
def python_sigint() -> None:
    """SIGINT raises KeyboardInterrupt in every test, as in a kernel: an in-process Jupyter server of an earlier
    test in the same process (pytest-jupyter's) may have left a handler of its own that swallows it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def clean_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CELLBOX_* / OCI_* variables, and config and state in empty tmp dirs: the user's files never leak in."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if (name.startswith(("CELLBOX_", "OCI_")) and name != SANDBOX_ENV_VARIABLE) or name == "XDG_STATE_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("CELLBOX_STATE_DIR", str(home / "state"))
    return home


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory, starts_processes: None) -> Iterator[RunningServer]:
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
def cloud_server(
    cloud_profile: str, tmp_path_factory: pytest.TempPathFactory, starts_processes: None
) -> Iterator[RunningServer]:
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
    if cloud_profile in ("oci", AUTO_ONLY):
        env["CELLBOX_PROJECT"] = OCI_PROJECT
    if cloud_profile == AUTO_ONLY:
        env["CELLBOX_CONTAINER_BINDING"] = "auto"
    return env


@pytest.fixture
def use_cloud_server(cloud_environment: dict[str, str], cloud_profile: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Configure cellbox (through the environment, as a user would) for the profile's server; returns the
    profile."""
    for name, value in cloud_environment.items():
        monkeypatch.setenv(name, value)
    return cloud_profile
