"""Run the example notebooks (`pytest --nbval notebooks`) against a local server made for the run.

Kernels inherit this process's environment, so the server is configured there, as a user would through
CELLBOX_BASE_URL / CELLBOX_API_KEY. A "minute" of container expiry lasts two seconds here, so the expiry demo in
errors-and-recovery.ipynb finishes quickly; everything else behaves as it does for a user.

CELLBOX_NOTEBOOK_PROFILE=openai (or oci) runs them against a server that behaves like that cloud: its profile,
every model quirk on and a listing that lags (`cellbox serve --profile … --model-quirks all --listing-lag-ms 300`,
tests/conftest.py's CLOUD_PROFILES). The outputs must be the same: a user sees no difference but one, said on
purpose: a cell the model had to be asked twice says so, and that its second response was billed (REASKED).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat

from cellbox.local.testing import RunningServer, running_server
from cellbox.notebook.save_buttons import SAVE_MIME

SECONDS_PER_MINUTE = 2.0
PROFILE_VARIABLE = "CELLBOX_NOTEBOOK_PROFILE"
# The server options of each profile (as in tests/conftest.py), and the project OCI's needs.
PROFILES: dict[str, dict[str, object]] = {
    "plain": {},
    "openai": {"profile": "openai", "model_quirks": "all", "listing_lag_ms": 300},
    "oci": {"profile": "oci", "model_quirks": "all", "listing_lag_ms": 300},
}
OCI_PROJECT = "ocid1.generativeaiproject.oc1.iad.notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RUNNING_LINE = "running in "  # cellbox.notebook.replay.Replay.waiting
REASKED = "(a second billed response)"  # the end of the note a cell asked twice gives (session/running.py)
_stack = contextlib.ExitStack()


def pytest_configure(config) -> None:
    if not config.getoption("nbval", default=False):
        return
    profile = os.environ.get(PROFILE_VARIABLE) or "plain"
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE}={profile!r}: expected one of {', '.join(PROFILES)}")
    work = Path(tempfile.mkdtemp(prefix="cellbox-notebooks-"))
    _stack.callback(shutil.rmtree, work, True)
    options = PROFILES[profile]
    server = _stack.enter_context(running_server(work / "data", seconds_per_minute=SECONDS_PER_MINUTE, **options))
    use_server(server, work, project=OCI_PROJECT if profile == "oci" else None)
    _compare_as_users_see()


def _is_running_line(output: dict) -> bool:
    data = output.get("data") or {}
    shown = str(data.get("text/plain", ""))
    # A live view that ends emptied (a progress line, a pool's running grid, as a widget or not): nbval sees no
    # updates, so it sees what the display began as.
    emptied = (
        output.get("output_type") == "display_data"
        and data.get("text/plain") == ""
        and set(data) <= {"text/plain", WIDGET_VIEW}
    )
    return shown.startswith(RUNNING_LINE) or emptied


def _with_text_data(output: dict) -> dict:
    """The output with cellbox's JSON data as text, which nbval's sanitizers (container and file ids) then read."""
    data = output.get("data") or {}
    if SAVE_MIME not in data:
        return output
    text = json.dumps(data[SAVE_MIME], sort_keys=True)
    return nbformat.from_dict({**output, "data": {**data, SAVE_MIME: text}})


def _without_reask_notes(output: dict) -> dict | None:
    """A stderr stream without the lines saying a cell was asked twice (None when nothing else is left)."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return output
    lines = [line for line in str(output.get("text", "")).splitlines(keepends=True) if REASKED not in line]
    return nbformat.from_dict({**output, "text": "".join(lines)}) if lines else None


def _comparable(outputs: list) -> list:
    kept = [_without_reask_notes(o) for o in outputs if not _is_running_line(o)]
    return [_with_text_data(o) for o in kept if o is not None]


def _compare_as_users_see() -> None:
    """A cell quiet for a second shows a "running in NAME · N s" line that ends empty when the run does. nbval
    keeps its first state and drops the updates (`update_display_data`), a saved notebook its last (empty) state,
    and whether it appears at all depends on the machine's speed: compare without it. The save buttons' data
    names the run's container and files, whose ids change from run to run: compared as sanitized text."""
    from nbval.plugin import IPyNbCell

    compare = IPyNbCell.compare_outputs
    IPyNbCell.compare_outputs = lambda cell, test, ref, skip_compare=None: compare(
        cell, _comparable(test), _comparable(ref), skip_compare
    )


def use_server(server: RunningServer, work: Path, project: str | None = None) -> None:
    """Point this process's environment (which kernels inherit) at `server`, with config and state in `work`."""
    for name in [n for n in os.environ if n.startswith(("CELLBOX_", "OCI_"))]:
        del os.environ[name]
    os.environ.update(
        CELLBOX_BASE_URL=server.base_url,
        CELLBOX_API_KEY=server.token,
        CELLBOX_MODEL="cellbox-local",
        CELLBOX_STATE_DIR=str(work / "state"),
        XDG_CONFIG_HOME=str(work / "config"),
    )
    if project:
        os.environ["CELLBOX_PROJECT"] = project


def pytest_unconfigure(config) -> None:
    _stack.close()
    here = Path(__file__).parent
    for produced in ("downloads", "outputs"):  # what the notebooks pull into their folder
        shutil.rmtree(here / produced, ignore_errors=True)
