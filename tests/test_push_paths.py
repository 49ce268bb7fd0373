"""Where pushed files land: their path under the current folder, or their name when they are elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cellbox.api import CellboxError
from cellbox.session.transfer import file_jobs, landing


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "project"
    (work / "data" / "sub").mkdir(parents=True)
    (work / "data" / "raw.csv").write_text("x\n1\n")
    (work / "data" / "sub" / "deep.csv").write_text("y\n2\n")
    (work / "top.csv").write_text("t\n")
    (tmp_path / "outside.csv").write_text("o\n")
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(
    ("path", "lands"),
    [
        ("data/raw.csv", "data/raw.csv"),
        ("./data/raw.csv", "data/raw.csv"),
        ("data/../top.csv", "top.csv"),
        ("data/sub", "data/sub"),
        (".", ""),
        ("../outside.csv", "outside.csv"),  # climbs out: by its name
        ("/etc/hosts", "hosts"),  # elsewhere: by its name
    ],
)
def test_a_path_in_the_current_folder_keeps_its_folders(project: Path, path: str, lands: str) -> None:
    assert landing(path) == lands


def test_an_absolute_path_inside_the_current_folder_is_relative_to_it(project: Path) -> None:
    assert landing(project / "data" / "raw.csv") == "data/raw.csv"
    assert landing(project / "data" / "raw.csv", base=project / "data") == "raw.csv"


def test_files_folders_and_globs_land_alike(project: Path) -> None:
    def remotes(pattern: str, to: str | None = None) -> list[str]:
        return [job[1] for job in file_jobs(pattern, to)]

    assert remotes("data/raw.csv") == ["data/raw.csv"]
    assert remotes("data/*.csv") == ["data/raw.csv"]
    assert remotes("data") == ["data/raw.csv", "data/sub/deep.csv"]
    assert remotes("data/sub") == ["data/sub/deep.csv"]
    assert remotes("../outside.csv") == ["outside.csv"]
    assert remotes(str(project.parent / "outside.csv"), to="in") == ["in/outside.csv"]
    assert remotes("data/raw.csv", to="in") == ["in/data/raw.csv"]


def test_nothing_lands_in_cellboxs_own_folder(project: Path) -> None:
    (project / ".cellbox").mkdir()
    (project / ".cellbox" / "runtime.py").write_text("planted = True")
    with pytest.raises(CellboxError, match=r"would land in /mnt/data/\.cellbox, which is cellbox's own"):
        file_jobs(".cellbox/runtime.py", None)
    with pytest.raises(CellboxError, match="cellbox's own"):
        file_jobs(".", None)  # a folder holding it
    assert [job[1] for job in file_jobs(".cellbox/runtime.py", "mine")] == ["mine/.cellbox/runtime.py"]
    assert os.getcwd() == str(project)
