""" "Save to the notebook's folder" buttons under an artifact gallery.

The output is data of cellbox's own type (`SAVE_MIME`: the container and each file's id and path), which the
cellbox JupyterLab extension draws as buttons: a click has the Jupyter server download the file from the
container into the notebook's folder, so they work without the kernel too, in a notebook reopened later, for as
long as the sandbox lives. The same output carries the `%container pull` that does it from a cell, which every
other frontend (nbconvert, GitHub, a JupyterLab without the extension) shows instead.
"""

from __future__ import annotations

import html
import posixpath
from collections.abc import Sequence
from typing import Any

from IPython.display import display

from .protocol import DATA_DIR
from .results import Artifact

SAVE_MIME = "application/vnd.cellbox.save+json"


def show(artifacts: Sequence[Artifact]) -> None:
    """Display the buttons for these files."""
    display(bundle(artifacts), raw=True)


def relative(artifact: Artifact) -> str:
    """Where a file lands in the folder: its path under /mnt/data, as `%container pull` puts it."""
    path = artifact.path
    if path.startswith(DATA_DIR + "/"):
        return posixpath.relpath(path, DATA_DIR)
    return artifact.name


def bundle(artifacts: Sequence[Artifact]) -> dict[str, Any]:
    """The buttons' output: the files for the extension to draw, and the `%container pull` line for the rest
    (alone when the backend's file records don't name their container)."""
    pull = "%container pull " + " ".join(relative(a) for a in artifacts)
    said = f"save to the notebook's folder: {pull}"
    data: dict[str, Any] = {
        "text/plain": said,
        "text/html": f"<div style='opacity:.7'><code>{html.escape(pull)}</code></div>",
    }
    containers = {a.file.container_id for a in artifacts}
    if len(containers) == 1 and None not in containers:
        files = [{"file_id": a.file.id, "path": relative(a)} for a in artifacts]
        data[SAVE_MIME] = {"container_id": containers.pop(), "files": files}
    return data
