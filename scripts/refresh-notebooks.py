"""Re-run the example notebooks against a fresh local server and save their outputs, which `make test` compares
with nbval. Run after changing what cells show: `.venv/bin/python scripts/refresh-notebooks.py [NOTEBOOK ...]`.

The server and environment match notebooks/conftest.py (a "minute" of expiry lasts two seconds)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from cellbox.local.testing import running_server

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
from conftest import SECONDS_PER_MINUTE, use_server  # noqa: E402


def refresh(path: Path) -> int:
    """Run one notebook and save it; returns how many cells raised, or didn't, against their tags."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)  # state of widgets from an earlier run names models long gone
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        store_widget_state=False,  # the outputs' static HTML is what GitHub and nbconvert show of the widgets
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    surprises = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        # IPython shows a magic's UsageError as a line on stderr, not as an error output; the cell failed all the same.
        failed = any(
            o.output_type == "error" or (o.output_type == "stream" and o.text.startswith("UsageError:"))
            for o in cell.outputs
        )
        if failed != ("raises-exception" in cell.metadata.get("tags", [])):
            surprises += 1
            state = "raised" if failed else "did not raise"
            print(f"{path.name}: this cell {state}, unlike its tags say:\n{cell.source}\n", file=sys.stderr)
    nbformat.write(notebook, path)
    print(f"refreshed {path.name}")
    return surprises


def main(paths: list[str]) -> int:
    chosen = [Path(p) for p in paths] or sorted(NOTEBOOKS.glob("*.ipynb"))
    surprises = 0
    with (
        tempfile.TemporaryDirectory(prefix="cellbox-notebooks-") as work,
        running_server(Path(work) / "data", seconds_per_minute=SECONDS_PER_MINUTE) as server,
    ):
        use_server(server, Path(work))
        for path in chosen:
            surprises += refresh(path)
    for produced in ("downloads", "outputs"):  # what the notebooks pull into their folder
        shutil.rmtree(NOTEBOOKS / produced, ignore_errors=True)
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
