"""A real Jupyter kernel driven as a frontend drives it (jupyter_client), for the tests of the magics: what a cell
sends on iopub, as a notebook would receive it."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from typing import Any

from jupyter_client.manager import KernelManager

OUTPUTS = ("stream", "error", "display_data", "update_display_data", "execute_result")


class Kernel:
    def __init__(self, env: dict[str, str], cwd: str | None = None) -> None:
        self.id = str(uuid.uuid4())
        # Named as Jupyter's server names it: the kernel finds its own id in it.
        connection_file = os.path.join(tempfile.gettempdir(), f"kernel-{self.id}.json")
        self.manager = KernelManager(kernel_name="python3", connection_file=connection_file)
        self.manager.start_kernel(env=env, **({"cwd": cwd} if cwd else {}))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str) -> tuple[str, list[dict[str, Any]]]:
        """Execute `code`; returns the reply status and the iopub messages it produced."""
        messages: list[dict[str, Any]] = []

        def keep(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in ("stream", "error", "display_data", "execute_result"):
                messages.append({"type": msg["msg_type"], **msg["content"]})

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=120)
        for payload in reply["content"].get("payload", []):  # `?` help arrives as a pager payload
            if payload.get("source") == "page":
                messages.append({"type": "page", "data": payload["data"]})
        return reply["content"]["status"], messages

    def timed(self, code: str, *, comms: bool = False) -> tuple[str, float, list[dict[str, Any]]]:
        """Execute `code`; returns the reply status, the seconds it took, and every output message (updates of
        displays included; with `comms`, the widgets' messages too), each with `at`: the seconds from the request
        to its arrival."""
        messages: list[dict[str, Any]] = []
        started = time.monotonic()
        kept = (*OUTPUTS, "comm_open", "comm_msg") if comms else OUTPUTS

        def keep(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in kept:
                messages.append({"type": msg["msg_type"], "at": time.monotonic() - started, **msg["content"]})

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=120)
        return reply["content"]["status"], time.monotonic() - started, messages

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def text(messages: list[dict[str, Any]], name: str) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "stream" and m["name"] == name)


def value(messages: list[dict[str, Any]]) -> str | None:
    """The cell's last value as text (its Out[n]), None without one; what comes after it (a note on stderr) aside."""
    results = [m for m in messages if m["type"] == "execute_result"]
    return plain(results[-1]) if results else None


def plain(message: dict[str, Any]) -> str:
    return str(message.get("data", {}).get("text/plain", ""))


# Code in a cell that rewrites the result record the runtime is about to write with `forge(record)` (defined by the
# cell), then steps aside: the runtime runs in the cell's own process, so this is what an attacker can do.
FORGE = """
import json as _json
_dumps = _json.dumps
def _forging(obj, *args, **kwargs):
    if isinstance(obj, dict) and "run_id" in obj and "events" in obj:
        _json.dumps = _dumps
        obj = forge(obj)
    return _dumps(obj, *args, **kwargs)
_json.dumps = _forging
"""


def user_env(settings: dict[str, str], home: Any) -> dict[str, str]:
    """A kernel's environment configured with `settings` (CELLBOX_* variables, as a user sets them), its state and
    config in folders of `home`: nothing of the machine's own configuration leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLBOX_", "OCI_"))}
    env.update(**settings, CELLBOX_STATE_DIR=str(home / "state"), XDG_CONFIG_HOME=str(home / "config"))
    return env


def local_env(base_url: str, token: str, home: Any) -> dict[str, str]:
    """A kernel's environment for the local server at `base_url` (see `user_env`)."""
    return user_env({"CELLBOX_BASE_URL": base_url, "CELLBOX_API_KEY": token, "CELLBOX_MODEL": "cellbox-local"}, home)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_text(messages: list[dict[str, Any]], display: dict[str, Any], child: int) -> list[dict[str, Any]]:
    """The values a live widget's `child`-th child was given (a label set in place), each as a message of its own
    (`data["text/plain"]`, `at`), from the messages of `timed(..., comms=True)`: the display names the box, the
    box's comm_open names its children, and each comm_msg update of that child carries its new value."""
    box = display["data"][WIDGET_VIEW]["model_id"]
    opened = next(m for m in messages if m["type"] == "comm_open" and m["comm_id"] == box)
    target = opened["data"]["state"]["children"][child].removeprefix("IPY_MODEL_")
    first = next(m for m in messages if m["type"] == "comm_open" and m["comm_id"] == target)
    values = [{"at": first["at"], "data": {"text/plain": first["data"]["state"].get("value", "")}}]
    for m in messages:
        state = m.get("data", {}).get("state", {}) if m["type"] == "comm_msg" else {}
        if m.get("comm_id") == target and "value" in state:
            values.append({"at": m["at"], "data": {"text/plain": state["value"]}})
    return values
