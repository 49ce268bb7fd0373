"""Which container a notebook used last: its identity as Jupyter gives it, and the file that outlives its kernel."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from cellbox.common import inuse, paths


def test_the_notebook_is_known_by_its_path_as_jupyter_or_vs_code_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/analysis.ipynb")  # jupyter_server: JupyterLab, Notebook 7
    assert inuse.notebook_identity() == "notebook:/home/me/analysis.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", "work/analysis.ipynb")  # relative to the server's root
    assert inuse.notebook_identity() == "notebook:" + os.path.abspath("work/analysis.ipynb")
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert inuse.notebook_identity({"__vsc_ipynb_file__": "/code/nb.ipynb"}) == "notebook:/code/nb.ipynb"  # VS Code
    # Neither, and no Jupyter kernel (papermill's kernels have a kernel id; plain IPython has nothing).
    assert inuse.notebook_identity({}) is None


def test_the_last_container_is_kept_per_notebook_and_forgotten_only_for_that_container() -> None:
    inuse.record_last_used("notebook:/a.ipynb", "cntr_a", "alpha", "http://127.0.0.1:1/v1")
    inuse.record_last_used("notebook:/b.ipynb", "cntr_b", None, None)
    assert inuse.last_used("notebook:/a.ipynb") == inuse.LastUsed("cntr_a", "alpha", "http://127.0.0.1:1/v1")
    inuse.forget_last_used("notebook:/a.ipynb", "cntr_other")  # another container deleted: the entry stays
    assert inuse.last_used("notebook:/a.ipynb") is not None
    inuse.forget_last_used("notebook:/a.ipynb", "cntr_a")
    assert inuse.last_used("notebook:/a.ipynb") is None
    assert inuse.last_used("notebook:/b.ipynb") == inuse.LastUsed("cntr_b", None, None)


def test_a_damaged_or_forged_file_is_read_as_nothing_remembered() -> None:
    file = paths.state_dir() / "notebooks.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    for content in ("{not json", "[]", json.dumps({"notebook:/a.ipynb": "x"}),
                    json.dumps({"notebook:/a.ipynb": {"container_id": 7}})):  # fmt: skip
        file.write_text(content)
        assert inuse.last_used("notebook:/a.ipynb") is None
    inuse.record_last_used("notebook:/a.ipynb", "cntr_a", "alpha", None)  # and written over
    assert inuse.last_used("notebook:/a.ipynb") == inuse.LastUsed("cntr_a", "alpha", None)


def test_only_the_most_recent_notebooks_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inuse, "NOTEBOOKS_KEPT", 3)
    for n in range(5):
        inuse.record_last_used(f"notebook:/{n}.ipynb", f"cntr_{n}", None, None)
    kept = json.loads((paths.state_dir() / "notebooks.json").read_text())
    assert sorted(kept) == ["notebook:/2.ipynb", "notebook:/3.ipynb", "notebook:/4.ipynb"]


def _record_many(state: str, first: int) -> None:
    os.environ["CELLBOX_STATE_DIR"] = state
    for n in range(first, first + 20):
        inuse.record_last_used(f"notebook:/{n}.ipynb", f"cntr_{n}", None, None)


def test_kernels_writing_at_once_lose_no_notebook() -> None:
    state = str(paths.state_dir())
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_record_many, args=(state, first)) for first in (0, 20, 40)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    kept = json.loads(Path(state, "notebooks.json").read_text())
    assert len(kept) == 60 and not list(Path(state).glob(".notebooks.json.*.tmp"))
