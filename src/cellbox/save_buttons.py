""" "Save to the notebook's folder" buttons under an artifact gallery: ipywidgets, so a click runs in the kernel,
which downloads the file from the container into the folder the kernel works in (Jupyter starts it in the
notebook's).

They work while the kernel that made them runs. The gallery above them is static HTML, and it is what a saved
notebook is read by; the buttons' own output carries the `%container pull` that does the same, for frontends
without widgets (nbconvert, GitHub). A file already in the folder is replaced only on a second click.
"""

from __future__ import annotations

import functools
import html
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from IPython.display import display

from . import text
from .api import CellboxError
from .protocol import DATA_DIR
from .redact import configured_secrets, redact
from .results import Artifact

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def show(artifacts: Sequence[Artifact]) -> SaveButtons | None:
    """Display buttons for these files (nothing where ipywidgets isn't installed); returns them."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return None
    buttons = SaveButtons(artifacts)
    display(buttons.bundle(), raw=True)
    return buttons


def relative(artifact: Artifact) -> str:
    """Where a file lands in the folder: its path under /mnt/data, as `%container pull` puts it."""
    path = artifact.path
    if path.startswith(DATA_DIR + "/"):
        return posixpath.relpath(path, DATA_DIR)
    return artifact.name


class SaveButtons:
    """One button per file and a line saying what the last click did. `folder` gives the folder to save into
    (the kernel's working folder, read at each click)."""

    def __init__(self, artifacts: Sequence[Artifact], folder: Callable[[], Path] = Path.cwd) -> None:
        import ipywidgets as widgets

        self.artifacts = list(artifacts)
        self.folder = folder
        self.status = widgets.HTML(value="")
        self.buttons = []
        for artifact in self.artifacts:
            button = widgets.Button(
                description=relative(artifact),
                icon="download",
                tooltip=f"save {relative(artifact)} into the notebook's folder",
                layout=widgets.Layout(width="auto"),
            )
            button.on_click(functools.partial(self._clicked, artifact))
            self.buttons.append(button)
        label = widgets.Label("save to the notebook's folder:")
        row = widgets.HBox([label, *self.buttons], layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([row, self.status])
        self._replacing: set[str] = set()  # files whose next click replaces the one in the folder

    def bundle(self) -> dict[str, Any]:
        """The widget, with a text fallback saying how to get the files without it."""
        pulls = " ".join(relative(a) for a in self.artifacts)
        said = f"save to the notebook's folder: %container pull {pulls}"
        data: dict[str, Any] = dict(self.widget._repr_mimebundle_())
        data["text/plain"] = said
        data["text/html"] = f"<div style='opacity:.7'><code>{html.escape(said.split(': ', 1)[1])}</code></div>"
        return data

    def target(self, artifact: Artifact) -> Path:
        folder = self.folder()
        target = (folder / relative(artifact)).resolve()
        if not target.is_relative_to(folder.resolve()):  # a name that would climb out: kept to its last part
            target = folder / artifact.name
        return target

    def save(self, artifact: Artifact, *, replace: bool = False) -> Path | None:
        """Download the file into the folder; None (nothing written) when one is there and `replace` is not set."""
        target = self.target(artifact)
        if target.exists() and not replace:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        return artifact.download(target)

    def _clicked(self, artifact: Artifact, button: Any) -> None:
        name = relative(artifact)
        replace = name in self._replacing
        self.status.value = f"saving {html.escape(name)} …"
        try:
            saved = self.save(artifact, replace=replace)
        except (CellboxError, OSError) as exc:
            said = redact(f"{type(exc).__name__}: {exc}", configured_secrets())
            self.status.value = f"could not save {html.escape(name)}: {html.escape(said)}"
            return
        if saved is None:
            self._replacing.add(name)
            button.description = f"replace {name}"
            self.status.value = f"{html.escape(name)} is already in this folder: click again to replace it"
            return
        self._replacing.discard(name)
        button.description = name
        self.status.value = (
            f"saved {html.escape(name)} ({text.size(saved.stat().st_size)}) into {html.escape(str(saved.parent))}"
        )
