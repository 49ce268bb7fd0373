"""A container's file names are untrusted input: the rules of `cellbox.boundary.local_paths` with hostile names and
planted links, and every way files come back (`Transfers.pull` over a hostile listing, `Artifact.download`, the save
buttons' output) keeping to them, without a server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from cellbox.api import Client, Container, ContainerFile
from cellbox.boundary import local_paths
from cellbox.boundary.local_paths import Landing, Refused, Skipped, create, name_parts, parts_under
from cellbox.notebook import save_buttons
from cellbox.session.link import ContainerLink
from cellbox.session.results import Artifact
from cellbox.session.transfer import Transfers

# --- names ------------------------------------------------------------------------------------------------------

HOSTILE = [
    ("", "an empty name"),
    ("/etc/passwd", "an absolute path"),
    ("../x", "'..'"),
    ("a/../../b", "'..'"),
    ("a/./b", "'.'"),
    ("..", "'..'"),
    ("a//b", "empty"),
    ("a/", "empty"),
    ("a\\..\\..\\b", "backslash"),
    ("..\\x", "backslash"),
    ("a\0b", "NUL"),
    ("a\nb", "control character"),
    ("\x1b[31mred", "control character"),
    ("x" * 256, "longer than 255 bytes"),
    ("\udc80.txt", "not valid text"),
]


@pytest.mark.parametrize(("name", "said"), HOSTILE)
def test_hostile_names_are_refused_on_every_system(name: str, said: str) -> None:
    for windows in (False, True):
        with pytest.raises(Refused) as refused:
            name_parts(name, windows=windows)
        assert refused.value.kind == "unsafe" and said in refused.value.reason


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("C:evil.txt", "drive or stream"),
        ("c:", "drive or stream"),
        ("report.txt:hidden", "drive or stream"),
        ("CON", "reserves"),
        ("con.txt", "reserves"),
        ("sub/nul", "reserves"),
        ("COM1.log", "reserves"),
        ("LPT9", "reserves"),
        ("COM\u00b9", "reserves"),
        ("a<b", "refuses"),
        ("what?.csv", "refuses"),
        ("trailing.", "dot or space"),
        ("trailing ", "dot or space"),
    ],
)
def test_windows_names_are_refused_there_and_kept_elsewhere(name: str, said: str) -> None:
    with pytest.raises(Refused) as refused:
        name_parts(name, windows=True)
    assert said in refused.value.reason
    assert name_parts(name, windows=False) == tuple(name.split("/"))


@pytest.mark.parametrize("name", ["a.txt", "dir/sub/file.csv", "ünïcode 名前.txt", "name with spaces", "x" * 255])
def test_plain_names_keep_their_parts(name: str) -> None:
    assert name_parts(name) == tuple(name.split("/"))


def test_only_paths_under_the_data_folder_have_a_local_place() -> None:
    assert parts_under("/mnt/data/plots/a.png", "/mnt/data") == ("plots", "a.png")
    for path in ("/mnt/datax/a", "/tmp/a", "mnt/data/a", "/mnt/data/", "/mnt/data/../etc/passwd", "/mnt/data//a"):
        with pytest.raises(Refused):
            parts_under(path, "/mnt/data")


def test_a_dot_anywhere_in_the_path_is_hidden() -> None:
    assert local_paths.is_hidden((".bashrc",)) and local_paths.is_hidden(("a", ".git", "config"))
    assert not local_paths.is_hidden(("a.b", "c.txt"))


# --- writing ----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["descriptors", "paths"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every writing test runs with folders opened by descriptor (Linux, macOS) and by path (the fallback where
    the OS has no `dir_fd`, as on Windows)."""
    if request.param == "paths":
        monkeypatch.setattr(local_paths, "_DIR_FDS", False)
    return str(request.param)


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """The target folder and a folder outside it, holding a file nothing may touch."""
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"host file")
    return target, outside


def write(folder: Path, name: str, data: bytes = b"from the container", **options: bool) -> Path:
    with create(folder, name.split("/"), **options) as out:
        out.write(data)
    return folder / name


def leftovers(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob(".cellbox-*")]


def test_a_new_file_and_its_folders_are_made(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    assert write(target, "a/b/c.txt").read_bytes() == b"from the container"
    assert leftovers(target) == []


def test_an_existing_file_stays_byte_identical_unless_forced(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    notebook = target / "notebook.ipynb"
    notebook.write_bytes(b'{"cells": []}')
    with pytest.raises(Refused) as refused:
        write(target, "notebook.ipynb")
    assert refused.value.kind == "existing" and notebook.read_bytes() == b'{"cells": []}'
    assert write(target, "notebook.ipynb", force=True).read_bytes() == b"from the container"
    assert leftovers(target) == []


def test_hidden_names_need_asking(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    for name in (".bashrc", ".ipython/profile_default/startup/00-x.py"):
        with pytest.raises(Refused) as refused:
            write(target, name)
        assert refused.value.kind == "hidden"
    assert list(target.iterdir()) == []  # not even the folders
    assert write(target, ".ipython/profile_default/startup/00-x.py", hidden=True).exists()


def test_a_folder_is_never_replaced(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    (target / "plots").mkdir()
    (target / "plots" / "keep.png").write_bytes(b"png")
    with pytest.raises(Refused, match="a folder of that name"):
        write(target, "plots", force=True)
    assert (target / "plots" / "keep.png").read_bytes() == b"png"
    (target / "file").write_bytes(b"f")
    with pytest.raises(Refused, match="is a file here, not a folder"):
        write(target, "file/x", force=True)


def test_a_link_on_the_way_out_of_the_folder_is_refused(mode: str, places: tuple[Path, Path]) -> None:
    target, outside = places
    (target / "out").symlink_to(outside)
    (target / "deep").mkdir()
    (target / "deep" / "up").symlink_to("../..")
    for name in ("out/secret", "out/new.txt", "deep/up/outside/new.txt"):
        with pytest.raises(Refused, match="link leading out of the folder") as refused:
            write(target, name, force=True, hidden=True)
        assert refused.value.kind == "unsafe"
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_bytes() == b"host file"


def test_a_link_to_a_folder_inside_is_followed(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    (target / "real").mkdir()
    (target / "alias").symlink_to("real")
    write(target, "alias/made.txt")
    assert (target / "real" / "made.txt").read_bytes() == b"from the container"


def test_a_link_in_the_files_place_is_an_existing_file_and_forced_is_replaced_not_followed(
    mode: str, places: tuple[Path, Path]
) -> None:
    target, outside = places
    (target / "report.txt").symlink_to(outside / "secret")
    (target / "dangling").symlink_to(outside / "not-yet")
    for name in ("report.txt", "dangling"):
        with pytest.raises(Refused) as refused:
            write(target, name)
        assert refused.value.kind == "existing"
        write(target, name, force=True)
        assert not (target / name).is_symlink() and (target / name).read_bytes() == b"from the container"
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_bytes() == b"host file"


def test_a_link_planted_while_the_file_downloads_is_not_followed(mode: str, places: tuple[Path, Path]) -> None:
    target, outside = places
    with pytest.raises(Refused) as refused, create(target, ("late.txt",)) as out:
        out.write(b"from the container")
        (target / "late.txt").symlink_to(outside / "secret")  # between the check and the write
    assert refused.value.kind == "existing"
    with create(target, ("late.txt",), force=True) as out:
        out.write(b"from the container")
    assert not (target / "late.txt").is_symlink()
    assert (outside / "secret").read_bytes() == b"host file" and leftovers(target) == []


def test_a_folder_swapped_for_a_link_while_the_file_downloads_is_not_followed(places: tuple[Path, Path]) -> None:
    target, outside = places
    (target / "sub").mkdir()
    with create(target, ("sub", "file.txt")) as out:
        out.write(b"from the container")
        (target / "sub").rename(target / "moved")
        (target / "sub").symlink_to(outside)
    # The folder was opened once, checked: the file is in it, wherever it went, and nothing is outside.
    assert (target / "moved" / "file.txt").read_bytes() == b"from the container"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_a_failed_download_leaves_nothing(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    with pytest.raises(ConnectionError), create(target, ("half.bin",)) as out:
        out.write(b"half")
        raise ConnectionError("dropped")
    assert list(target.iterdir()) == []


def test_without_hard_links_the_file_is_still_made_exclusively(
    mode: str, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, outside = places

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # what a filesystem without hard links answers

    monkeypatch.setattr(local_paths.os, "link", no_links)
    assert write(target, "a.txt").read_bytes() == b"from the container"
    with pytest.raises(Refused) as refused, create(target, ("b.txt",)) as out:
        out.write(b"x")
        (target / "b.txt").symlink_to(outside / "secret")
    assert refused.value.kind == "existing" and (outside / "secret").read_bytes() == b"host file"
    assert leftovers(target) == []


# --- one pull: what it says -------------------------------------------------------------------------------------


def test_a_pull_says_what_it_skipped_in_one_line(places: tuple[Path, Path]) -> None:
    target, _ = places
    (target / "notebook.ipynb").write_bytes(b"mine")
    landing = Landing(target)
    names = [".bashrc", ".ipython/profile_default/startup/00-x.py", ".ipython/x", "notebook.ipynb", "../up", "ok"]
    todo = [parts for name in names if (parts := landing.check(name)) is not None]
    assert todo == [("ok",)]
    assert landing.save(("ok",), lambda out: out.write(b"ok")) == target / "ok"
    assert landing.skipped.note == (
        "skipped 3 hidden files (.bashrc, .ipython/…; --hidden / hidden=True brings them), "
        "1 existing file (notebook.ipynb; --force / force=True replaces it) "
        "and 1 file with an unsafe path (../up: a '.' or '..' in its path)"
    )
    assert (target / "notebook.ipynb").read_bytes() == b"mine"


def test_a_skip_line_names_a_few_and_escapes_what_it_prints() -> None:
    skipped = Skipped(existing=[f"f{i}.csv" for i in range(5)], unsafe=[("\x1b[2Jx\n", "a control character")])
    assert skipped.note == (
        "skipped 5 existing files (f0.csv, f1.csv, f2.csv, …; --force / force=True replaces them) "
        "and 1 file with an unsafe path (\\x1b[2Jx\\n: a control character)"
    )
    assert Skipped().note is None and not Skipped()
    assert (Skipped(hidden=[".a"]) + Skipped(hidden=[".b"])).note == (
        "skipped 2 hidden files (.a, .b; --hidden / hidden=True brings them)"
    )


# --- Transfers.pull over a hostile listing ----------------------------------------------------------------------

CID = "cntr_hostile"


class HostileService:
    """A Containers API whose listing names whatever a hostile container (or service) could: the file records and
    their bytes, nothing else."""

    def __init__(self, paths: list[str]) -> None:
        self.files = {f"cfile_{i}": path for i, path in enumerate(paths)}
        self.downloaded: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.removeprefix("/v1/").split("/")
        if parts == ["containers", CID, "files"]:
            data = [
                {"id": fid, "object": "container.file", "container_id": CID, "path": path, "bytes": 4}
                for fid, path in self.files.items()
            ]
            return httpx.Response(200, json={"object": "list", "data": data, "has_more": False})
        if len(parts) == 5 and parts[4] == "content":
            self.downloaded.append(self.files[parts[3]])
            return httpx.Response(200, content=f"from {self.files[parts[3]]}".encode())
        return httpx.Response(404, json={"error": {"message": "no route"}})


@pytest.fixture
def hostile(places: tuple[Path, Path]) -> Iterator[tuple[HostileService, Transfers]]:
    target, outside = places
    service = HostileService(
        [
            "/mnt/data/ok.txt",
            "/mnt/data/sub/ok.csv",
            "/mnt/data/.bashrc",
            "/mnt/data/.ipython/profile_default/startup/00-x.py",
            "/mnt/data/notebook.ipynb",
            "/mnt/data/../../etc/cron.d/x",
            f"/mnt/data/{'../' * 8}{outside.relative_to('/')}/planted",
            f"{outside}/absolute",
            "/mnt/data/a\\..\\..\\b",
            "/mnt/data/sub//x",
            "/mnt/data/out/x",
        ]
    )
    (target / "notebook.ipynb").write_bytes(b"the user's notebook")
    (target / "out").symlink_to(outside)
    http = httpx.Client(transport=httpx.MockTransport(service.handle))
    with Client(base_url="http://api.test/v1", api_key="sk-test", http_client=http) as client:
        container = Container.from_dict({"id": CID, "object": "container", "name": "hostile", "status": "running"})
        transfers = Transfers(ContainerLink(client, container))
        yield service, transfers
        transfers.close()


def test_a_pull_of_everything_writes_only_plain_new_files_under_the_target(
    hostile: tuple[HostileService, Transfers], places: tuple[Path, Path]
) -> None:
    service, transfers = hostile
    target, outside = places
    pulled = transfers.pull("*", f"{outside}/*", to=target)
    assert sorted(p.relative_to(target).as_posix() for p in pulled) == ["ok.txt", "sub/ok.csv"]
    assert sorted(service.downloaded) == ["/mnt/data/ok.txt", "/mnt/data/sub/ok.csv"]  # the rest never fetched
    assert (target / "notebook.ipynb").read_bytes() == b"the user's notebook"
    assert sorted(os.listdir(outside)) == ["secret"] and not Path("/etc/cron.d/x").exists()
    note = pulled.note or ""
    assert note.startswith("skipped 2 hidden files (.bashrc, .ipython/…; --hidden / hidden=True brings them), ")
    assert "1 existing file (notebook.ipynb; --force / force=True replaces it)" in note
    assert "and 6 files with unsafe paths (" in note and "\n" not in note

    again = transfers.pull("*", f"{outside}/*", to=target, hidden=True, force=True)
    assert sorted(p.relative_to(target).as_posix() for p in again) == [
        ".bashrc",
        ".ipython/profile_default/startup/00-x.py",
        "notebook.ipynb",
        "ok.txt",
        "sub/ok.csv",
    ]
    assert (target / "notebook.ipynb").read_bytes() == b"from /mnt/data/notebook.ipynb"
    assert again.skipped.hidden == [] and again.skipped.existing == [] and len(again.skipped.unsafe) == 6
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_bytes() == b"host file"
    assert leftovers(target) == []


# --- Artifact.download and the save buttons ---------------------------------------------------------------------


def artifact(path: str, data: bytes = b"artifact bytes", container_id: str | None = CID) -> Artifact:
    record = ContainerFile.from_dict({"id": "cfile_1", "container_id": container_id, "path": path, "bytes": len(data)})

    def stream(_: ContainerFile, out: BinaryIO) -> None:
        out.write(data)

    return Artifact(record, lambda f: data, stream)


@pytest.mark.parametrize("cached", [False, True])
def test_an_artifact_downloads_into_a_folder_by_the_same_rules(places: tuple[Path, Path], cached: bool) -> None:
    target, outside = places
    made = artifact("/mnt/data/report.txt")
    hidden = artifact("/mnt/data/.bashrc")
    if cached:
        made.read(), hidden.read()
    assert made.download(target) == target / "report.txt" and (target / "report.txt").read_bytes() == b"artifact bytes"
    (target / "report.txt").write_bytes(b"edited")
    with pytest.raises(Refused, match="exists; force=True replaces it"):
        made.download(target)
    assert (target / "report.txt").read_bytes() == b"edited"
    made.download(target, force=True)
    assert (target / "report.txt").read_bytes() == b"artifact bytes"
    with pytest.raises(Refused, match="hidden; hidden=True saves it"):
        hidden.download(target)
    assert not (target / ".bashrc").exists()
    assert hidden.download(target, hidden=True) == target / ".bashrc"
    # A name the caller gives is theirs, hidden or not; an existing file is still kept unless forced.
    assert made.download(target / ".config-copy") == target / ".config-copy"
    (target / "link").symlink_to(outside / "secret")
    with pytest.raises(Refused):
        made.download(target / "link")
    assert (outside / "secret").read_bytes() == b"host file"


def test_save_buttons_offer_only_what_a_pull_writes_as_it_is() -> None:
    files = [
        artifact("/mnt/data/plots/a b.png"),
        artifact("/mnt/data/.bashrc"),
        artifact("/mnt/data/.ipython/profile_default/startup/00-x.py"),
        artifact("/mnt/data/a\\b"),
        artifact("/mnt/data/ok;rm -rf ~.txt"),
    ]
    data = save_buttons.bundle(files)
    offered = data[save_buttons.SAVE_MIME]["files"]
    assert [f["path"] for f in offered] == ["plots/a b.png", "ok;rm -rf ~.txt"]
    assert data["text/plain"] == (
        "save to the notebook's folder: %container pull 'plots/a b.png' 'ok;rm -rf ~.txt'"
        " · hidden, not offered: %container pull --hidden .bashrc .ipython/profile_default/startup/00-x.py"
        " · 1 file(s) with unsafe names, not offered"
    )
    only_hidden = save_buttons.bundle([artifact("/mnt/data/.env")])
    assert save_buttons.SAVE_MIME not in only_hidden
    assert only_hidden["text/plain"] == "hidden, not offered: %container pull --hidden .env"
    assert json.dumps(only_hidden)  # still a plain output


# --- code that would shadow a Python module ---------------------------------------------------------------------

NOT_A_MODULE = "zq_cellbox_no_such_module_4e1f"  # surely importable nowhere


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("cellbox.py", "the Python module 'cellbox'"),  # run at the next `%load_ext cellbox`
        ("pandas.py", "the Python module 'pandas'"),
        ("os.py", "the Python module 'os'"),
        ("sitecustomize.py", "the Python module 'sitecustomize'"),  # imported by Python itself, installed or not
        ("usercustomize.py", "the Python module 'usercustomize'"),
        ("pandas/__init__.py", "the Python module 'pandas'"),
        ("pandas/io/evil.py", "the Python module 'pandas'"),
        ("json.pyc", "the Python module 'json'"),
        ("json.pyd", "the Python module 'json'"),
        ("numpy.so", "the Python module 'numpy'"),
        ("numpy.cpython-311-x86_64-linux-gnu.so", "the Python module 'numpy'"),
        ("sys.PY", "the Python module 'sys'"),
        ("x.pth", ".pth"),
        ("deep/in/a/folder/x.pth", ".pth"),
        ("__pycache__/helpers.cpython-311.pyc", "bytecode"),
    ],
)
def test_names_that_would_shadow_a_module(name: str, said: str) -> None:
    why = local_paths.shadows(name.split("/"))
    assert why is not None and said in why


@pytest.mark.parametrize(
    "name",
    [
        "helpers.py",
        f"{NOT_A_MODULE}.py",
        f"{NOT_A_MODULE}/__init__.py",
        "pandas/data.csv",  # a folder named like a module, holding no code
        "pandas.csv",
        "pandas.py.txt",
        "sub/pandas.py",  # not at the top of the folder, `sub` being no module
        "pandas.libs/x.so",  # no module name: nothing is imported to look it up
        "report.txt",
    ],
)
def test_names_that_shadow_nothing(name: str) -> None:
    assert local_paths.shadows(name.split("/")) is None


def test_a_module_found_in_the_target_itself_is_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder on sys.path (the notebook's) already holding `helpers.py`: replacing it (forced) shadows nothing
    else; the same name pulled into another folder would shadow it."""
    (tmp_path / f"{NOT_A_MODULE}.py").write_text("")
    (tmp_path / f"{NOT_A_MODULE}_pkg").mkdir()
    (tmp_path / f"{NOT_A_MODULE}_pkg" / "__init__.py").write_text("")
    (tmp_path / "venv").mkdir()  # an environment inside the folder: its modules are not the folder's own
    (tmp_path / "venv" / f"{NOT_A_MODULE}_lib.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "venv"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert local_paths.shadows((f"{NOT_A_MODULE}.py",), tmp_path) is None
    assert local_paths.shadows((f"{NOT_A_MODULE}_pkg", "more.py"), tmp_path) is None
    assert local_paths.shadows((f"{NOT_A_MODULE}.py",), tmp_path / "elsewhere") is not None
    assert local_paths.shadows((f"{NOT_A_MODULE}_lib.py",), tmp_path) is not None
    assert local_paths.shadows(("os.py",), tmp_path) is not None  # the standard library always counts


def test_on_a_caseless_file_system_case_does_not_hide_a_module(monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_paths.shadows(("Pandas.py",)) is None or local_paths._CASELESS
    monkeypatch.setattr(local_paths, "_CASELESS", True)
    assert local_paths.shadows(("Pandas.py",)) is not None and local_paths.shadows(("OS.py",)) is not None


def test_code_that_would_shadow_a_module_is_written_only_when_asked(mode: str, places: tuple[Path, Path]) -> None:
    target, _ = places
    for name in ("pandas.py", "pandas/__init__.py", "x.pth"):
        with pytest.raises(Refused) as refused:
            write(target, name)
        assert refused.value.kind == "module"
        assert not (target / name).exists()
    assert not (target / "pandas").exists()  # nothing made on the way either
    assert write(target, "helpers.py").read_bytes() == b"from the container"
    assert write(target, "pandas.py", modules=True).read_bytes() == b"from the container"
    with pytest.raises(Refused) as refused:
        write(target, "pandas.py", modules=True)
    assert refused.value.kind == "existing"  # --modules does not replace; --force does
    assert leftovers(target) == []


def test_a_pull_says_what_would_shadow_a_module_in_one_line(places: tuple[Path, Path]) -> None:
    target, _ = places
    landing = Landing(target)
    assert landing.check("pandas.py") is None and landing.check("helpers.py") == ("helpers.py",)
    assert landing.skipped.note == (
        "skipped 1 file that would shadow a Python module (pandas.py; --modules / modules=True brings it)"
    )
    landing = Landing(target)
    names = ["cellbox.py", "pandas/__init__.py", "pandas/core.py", "x.pth", ".hidden.pth", "helpers.py", "a.csv"]
    todo = [parts for name in names if (parts := landing.check(name)) is not None]
    assert todo == [("helpers.py",), ("a.csv",)]
    assert landing.skipped.note == (
        "skipped 1 hidden file (.hidden.pth; --hidden / hidden=True brings it) "
        "and 4 files that would shadow Python modules (cellbox.py, pandas/…, x.pth; "
        "--modules / modules=True brings them)"
    )
    asked = Landing(target, modules=True)
    assert [asked.check(name) for name in ("cellbox.py", "x.pth")] == [("cellbox.py",), ("x.pth",)]
    assert not asked.skipped
    assert asked.save(("cellbox.py",), lambda out: out.write(b"x")) == target / "cellbox.py"
    assert (Skipped(modules=["a.py"]) + Skipped(modules=["b.py"])).modules == ["a.py", "b.py"]


@pytest.fixture
def planted(places: tuple[Path, Path]) -> Iterator[tuple[HostileService, Transfers]]:
    """A listing of what a container writes to be imported on the host, and one plain script."""
    paths = ["cellbox.py", "pandas.py", "pandas/__init__.py", "evil.pth", "sitecustomize.py", "helpers.py"]
    service = HostileService([f"/mnt/data/{path}" for path in paths])
    http = httpx.Client(transport=httpx.MockTransport(service.handle))
    with Client(base_url="http://api.test/v1", api_key="sk-test", http_client=http) as client:
        container = Container.from_dict({"id": CID, "object": "container", "name": "hostile", "status": "running"})
        transfers = Transfers(ContainerLink(client, container))
        yield service, transfers
        transfers.close()


def test_a_pull_brings_code_that_shadows_a_module_only_when_asked_even_named_exactly(
    planted: tuple[HostileService, Transfers], places: tuple[Path, Path]
) -> None:
    service, transfers = planted
    target, _ = places
    pulled = transfers.pull("*", to=target)
    assert pulled == [target / "helpers.py"] and service.downloaded == ["/mnt/data/helpers.py"]
    assert pulled.note == (
        "skipped 5 files that would shadow Python modules (cellbox.py, evil.pth, pandas.py, …; "
        "--modules / modules=True brings them)"
    )
    exact = transfers.pull("pandas.py", to=target)  # named exactly: still asked for, in one step
    assert exact == [] and exact.note == (
        "skipped 1 file that would shadow a Python module (pandas.py; --modules / modules=True brings it)"
    )
    assert sorted(os.listdir(target)) == ["helpers.py"]
    asked = transfers.pull("*", to=target, modules=True)
    assert sorted(p.relative_to(target).as_posix() for p in asked) == [
        "cellbox.py",
        "evil.pth",
        "pandas.py",
        "pandas/__init__.py",
        "sitecustomize.py",
    ]
    assert asked.note == "skipped 1 existing file (helpers.py; --force / force=True replaces it)"


def test_an_artifact_that_would_shadow_a_module_downloads_only_when_asked(places: tuple[Path, Path]) -> None:
    target, _ = places
    code = artifact("/mnt/data/pandas.py")
    with pytest.raises(Refused, match="would shadow the Python module 'pandas'; modules=True saves it"):
        code.download(target)
    with pytest.raises(Refused, match="modules=True saves it"):  # a local name the caller gives: still asked
        artifact("/mnt/data/notes.txt").download(target / "sitecustomize.py")
    assert os.listdir(target) == []
    assert code.download(target, modules=True) == target / "pandas.py"
    assert artifact("/mnt/data/helpers.py").download(target) == target / "helpers.py"


def test_save_buttons_offer_no_code_that_would_shadow_a_module() -> None:
    files = [
        artifact("/mnt/data/helpers.py"),
        artifact("/mnt/data/pandas.py"),
        artifact("/mnt/data/pandas/__init__.py"),
        artifact("/mnt/data/evil.pth"),
    ]
    data = save_buttons.bundle(files)
    assert [f["path"] for f in data[save_buttons.SAVE_MIME]["files"]] == ["helpers.py"]
    assert data["text/plain"] == (
        "save to the notebook's folder: %container pull helpers.py"
        " · would shadow a Python module, not offered: %container pull --modules pandas.py pandas/__init__.py evil.pth"
    )
    assert "%container pull --modules pandas.py" in data["text/html"]
