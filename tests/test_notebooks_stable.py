"""The shipped notebooks open unmodified: they carry the kernelspec the package installs and a language_info, and
saving one as JupyterLab does (nbformat read, then write) gives back the same bytes. What JupyterLab itself does on
opening them is tests/jupyter/test_browser_notebooks.py's."""

from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_is_byte_stable_and_names_the_installed_kernel(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert notebook.metadata.kernelspec == {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": "python3",
    }
    # Without one, JupyterLab adds a placeholder language_info as it loads the notebook, marking it modified
    # before any kernel starts. (The kernel's own one, whatever its Python version, is no edit: see
    # jupyter_extension/src/cleanopen.ts.)
    assert notebook.metadata.get("language_info", {}).get("name") == "python"
    saved = io.StringIO()
    nbformat.write(notebook, saved)
    assert saved.getvalue() == text
