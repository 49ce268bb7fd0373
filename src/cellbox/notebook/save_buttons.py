""" "Save to the notebook's folder" buttons under an artifact gallery.

The output is data of cellbox's own type (`SAVE_MIME`: the container and each file's id and path), which the
cellbox JupyterLab extension draws as buttons: a click has the Jupyter server download the file from the
container into the notebook's folder, so they work without the kernel too, in a notebook reopened later, for as
long as the sandbox lives. The same output carries the `%container pull` that does it from a cell, which every
other frontend (nbconvert, GitHub, a JupyterLab without the extension) shows instead.
"""

from __future__ import annotations

import html
import os
import shlex
from collections.abc import Sequence
from typing import Any

from IPython.display import display

from ..boundary import local_paths
from ..session.protocol import DATA_DIR
from ..session.results import Artifact

SAVE_MIME = "application/vnd.cellbox.save+json"


def show(artifacts: Sequence[Artifact]) -> None:
    """Display the buttons for these files."""
    display(bundle(artifacts), raw=True)


def relative(artifact: Artifact) -> tuple[str, ...]:
    """Where a file lands in the folder: its path under /mnt/data, as `%container pull` puts it, checked by
    `cellbox.boundary.local_paths` (`Refused` when it can't be written as it is)."""
    if artifact.path.startswith(DATA_DIR + "/"):
        return local_paths.parts_under(artifact.path, DATA_DIR)
    return local_paths.name_parts(artifact.name)


def bundle(artifacts: Sequence[Artifact]) -> dict[str, Any]:
    """The buttons' output: the files for the extension to draw, and the `%container pull` line for the rest
    (alone when the backend's file records don't name their container).

    The names are the container's, so a button is offered only for a path a pull writes as it is: hidden files
    get a `pull --hidden` line to type instead, code that would shadow a Python module in the notebook's folder
    (the kernel's working folder) a `pull --modules` line, and unsafe names are only counted."""
    offered: list[tuple[Artifact, str]] = []
    hidden: list[str] = []
    modules: list[str] = []
    unsafe = 0
    for artifact in artifacts:
        try:
            parts = relative(artifact)
        except local_paths.Refused:
            unsafe += 1
            continue
        if local_paths.is_hidden(parts):
            hidden.append("/".join(parts))
        elif local_paths.shadows(parts, os.getcwd()) is not None:
            modules.append("/".join(parts))
        else:
            offered.append((artifact, "/".join(parts)))
    said: list[str] = []
    shown: list[str] = []
    if offered:
        pull = "%container pull " + " ".join(shlex.quote(path) for _, path in offered)
        said.append(f"save to the notebook's folder: {pull}")
        shown.append(f"<code>{html.escape(pull)}</code>")
    if hidden:
        pull = "%container pull --hidden " + " ".join(shlex.quote(path) for path in hidden)
        said.append(f"hidden, not offered: {pull}")
        shown.append(f"hidden, not offered: <code>{html.escape(pull)}</code>")
    if modules:
        pull = "%container pull --modules " + " ".join(shlex.quote(path) for path in modules)
        said.append(f"would shadow a Python module, not offered: {pull}")
        shown.append(f"would shadow a Python module, not offered: <code>{html.escape(pull)}</code>")
    if unsafe:
        said.append(f"{unsafe} file(s) with unsafe names, not offered")
        shown.append(html.escape(said[-1]))
    data: dict[str, Any] = {
        "text/plain": " · ".join(said),
        "text/html": f"<div style='opacity:.7'>{'<br>'.join(shown)}</div>",
    }
    containers = {a.file.container_id for a, _ in offered}
    if len(containers) == 1 and None not in containers:
        files = [{"file_id": a.file.id, "path": path} for a, path in offered]
        data[SAVE_MIME] = {"container_id": containers.pop(), "files": files}
    return data
