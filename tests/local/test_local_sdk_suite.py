"""The openai SDK's own tests of the containers, container files, container file content and responses resources
run against a real local server, under strict response validation, with real ids.

The tests come from the sdist of the installed openai (downloaded once into pytest's cache; a failed download
fails this test). They run in a subprocess under tests/sdk_suite/conftest_sdk.py, which starts the server, gives
them their `client` and `async_client` and maps their placeholder ids to real ones. Every SDK test must pass
except those listed in EXPECTED_FAILURES, each failing with the error given there: a new pass or a new failure
fails this test, so the list stays true.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the suite's conftest starts a local server

CONFTEST = Path(__file__).parents[1] / "sdk_suite" / "conftest_sdk.py"
# The SDK's resource tests this suite runs (paths under its tests/api_resources; a folder means all of it), and
# the SDK's test helpers they import.
RESOURCE_TESTS = ("test_containers.py", "containers/", "test_responses.py", "responses/")
HELPERS = ("tests/__init__.py", "tests/utils.py", "tests/respx2/", "tests/api_resources/__init__.py")


def _each(file: str, names: tuple[str, ...], error: str) -> dict[str, str]:
    return {f"{file}::{name}": error for name in names}


_CALLS = ("test_method_{}", "test_raw_response_{}", "test_streaming_response_{}")

# What the server refuses on purpose, as `<file under tests/api_resources>::<test>` (the sync and async tests of
# that name, with every client) -> a piece of the error the SDK raises, so that failing for another reason is
# noticed too. The SDK's tests send placeholder arguments a real service would refuse as well.
EXPECTED_FAILURES: dict[str, str] = {
    # Every parameter, with placeholder values: expires_after.minutes 0 (1 to 1440 are accepted, as documented),
    # a file id that does not exist, and skills (not available in local containers).
    "test_containers.py::test_method_create_with_all_params": "Invalid 'expires_after.minutes'",
    # limit=0: a list takes 1 to 100 items, as documented.
    "test_containers.py::test_method_list_with_all_params": "Invalid 'limit'",
    "containers/test_files.py::test_method_list_with_all_params": "Invalid 'limit'",
    "responses/test_input_items.py::test_method_list_with_all_params": "Invalid 'limit'",
    # Neither `file` nor `file_id`: a container file is made from one of them.
    **_each(
        "containers/test_files.py",
        tuple(call.format("create") for call in _CALLS),
        "Missing required parameter: 'file_id'",
    ),
    # No model (and no code_interpreter tool, the only thing the local model does).
    **_each(
        "test_responses.py",
        tuple(call.format(f"create_overload_{n}") for call in _CALLS for n in (1, 2)),
        "Missing required parameter: 'model'",
    ),
    # Every parameter: a conversation (not kept locally: the whole input comes with each request), and beyond it
    # a prompt template, a previous response that does not exist and a function tool, none available locally.
    **_each(
        "test_responses.py",
        ("test_method_create_with_all_params_overload_1", "test_method_create_with_all_params_overload_2"),
        "Conversations are not available",
    ),
    # POST /v1/responses/compact and /v1/responses/input_tokens are not served (the local model has no context
    # window to compact, and a request's usage is only an estimate made once it ran).
    **_each(
        "test_responses.py",
        (*(call.format("compact") for call in _CALLS), "test_method_compact_with_all_params"),
        "Method POST is not allowed for /v1/responses/compact",
    ),
    **_each(
        "responses/test_input_tokens.py",
        (*(call.format("count") for call in _CALLS), "test_method_count_with_all_params"),
        "Method POST is not allowed for /v1/responses/input_tokens",
    ),
}


def _key(nodeid: str) -> str:
    """`tests/api_resources/x/test_y.py::TestAsyncY::test_z[aiohttp]` -> `x/test_y.py::test_z`."""
    file, *_, name = nodeid.split("::")
    return f"{file.removeprefix('tests/api_resources/')}::{name.split('[')[0]}"


def _sdist(cache: Path, version: str) -> Path:
    """The sdist of openai `version`, downloaded from PyPI into `cache` unless it is there already."""
    cached = cache / f"openai-{version}.tar.gz"
    if cached.exists():
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        argv = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
        argv += ["--disable-pip-version-check", "-q", "-d", scratch, f"openai=={version}"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(f"downloading the openai {version} sdist from PyPI took over 300 s")
        found = sorted(Path(scratch).glob("openai-*.tar.gz"))
        if done.returncode != 0 or not found:
            pytest.fail(
                f"could not download the openai {version} sdist from PyPI (its tests are what this test runs): "
                f"pip download exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
        # Renamed into place whole, so a download cut short never looks cached.
        found[0].replace(cached)
    return cached


def _under(path: str, wanted: tuple[str, ...]) -> bool:
    """Whether `path` is one of `wanted` or inside one of its folders (those ending in `/`)."""
    return any(path == w or (w.endswith("/") and path.startswith(w)) for w in wanted)


def _extract(sdist: Path, into: Path) -> None:
    """Writes the SDK's helpers and the resource tests of RESOURCE_TESTS from the sdist under `into`."""
    wanted = (*HELPERS, *(f"tests/api_resources/{path}" for path in RESOURCE_TESTS))
    written: list[str] = []
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts[1:]  # below the sdist's top folder
            path = "/".join(parts)
            if not member.isfile() or ".." in parts or not _under(path, wanted):
                continue
            source = tar.extractfile(member)
            assert source is not None
            target = into.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
            written.append(path)
    missing = [w for w in wanted if not any(_under(path, (w,)) for path in written)]
    if missing:
        pytest.fail(f"the sdist {sdist.name} has none of {missing}: where are the SDK's resource tests now?")


def test_the_sdks_own_resource_tests(request: pytest.FixtureRequest, tmp_path: Path):
    version = importlib.metadata.version("openai")
    cache = getattr(request.config, "cache", None)
    cache_dir = cache.mkdir("openai-sdist") if cache is not None else tmp_path / "sdist"
    sdist = _sdist(Path(cache_dir), version)

    root = tmp_path / "sdk"
    _extract(sdist, root)
    shutil.copyfile(CONFTEST, root / "tests" / "conftest.py")
    # Async tests and the session's async clients share the session's loop, as in the SDK's own settings.
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\ntimeout = 120\n"
    )
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CELLBOX_"))}
    # Only the plugins the SDK's tests need (the others would only slow the start down).
    env |= {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "CELLBOX_SDK_SUITE_REPORT": str(report)}
    env["CELLBOX_STATE_DIR"] = str(tmp_path / "state")
    argv = [sys.executable, "-m", "pytest", "-p", "pytest_asyncio.plugin", "-p", "pytest_timeout"]
    argv += ["-p", "no:cacheprovider", "-c", str(root / "pytest.ini"), "--rootdir", str(root)]
    argv += ["--basetemp", str(tmp_path / "basetemp"), "-q", "--tb=short"]
    argv += [f"tests/api_resources/{path}" for path in RESOURCE_TESTS]
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=240)
    output = done.stdout[-6000:] + done.stderr[-3000:]
    # 0: all passed, 1: some failed; anything else means the run itself went wrong.
    assert done.returncode in (0, 1) and report.exists(), f"the SDK's tests did not run:\n{output}"

    outcomes: dict[str, dict[str, str]] = json.loads(report.read_text())
    unexpected = []
    for nodeid, entry in outcomes.items():
        error = EXPECTED_FAILURES.get(_key(nodeid))
        if error is None and entry["outcome"] != "passed":
            unexpected.append(f"{nodeid}: {entry['outcome']}: {entry['message']}")
        elif error is not None and not (entry["outcome"] == "failed" and error in entry["message"]):
            unexpected.append(f"{nodeid}: expected to fail with {error!r}, {entry['outcome']}: {entry['message']}")
    stale = set(EXPECTED_FAILURES) - {_key(nodeid) for nodeid in outcomes}
    assert not unexpected, "\n".join(["unexpected outcomes of the SDK's tests:", *unexpected, "", output])
    assert not stale, f"EXPECTED_FAILURES names tests the SDK {version} no longer has: {sorted(stale)}"
    # A floor, so that a change in how the SDK's tests are collected can't leave this passing on a handful.
    passed = [nodeid for nodeid, entry in outcomes.items() if entry["outcome"] == "passed"]
    assert len(passed) >= 100, f"only {len(passed)} of the SDK's tests passed:\n{output}"
