"""The sidebar's REST API on a real jupyter_server, against the real local server."""

from __future__ import annotations

import os
import re
import socket
import uuid
from pathlib import Path

import pytest

from cellbox.jupyter.handlers import ROUTES
from cellbox.local.testing import RunningServer


def _name() -> str:
    return f"sidebar-{uuid.uuid4().hex[:8]}"


async def _create(api, **fields) -> dict:
    reply = await api("POST", "containers", body={"name": _name(), **fields})
    assert reply.code == 201, reply.text
    return reply.json


# --- status ---------------------------------------------------------------------------------------------------


async def test_status_names_the_backend_and_never_the_key(api, backend: RunningServer, workspace: Path) -> None:
    reply = await api("GET", "status")
    assert reply.code == 200
    assert reply.json["base_url"] == backend.base_url
    assert reply.json["auth"] == "api_key"
    assert reply.json["api_key"] == "set"
    assert reply.json["backend"] == "custom"
    assert reply.json["workspace"] == str(workspace.resolve())
    assert backend.token not in reply.text


async def test_status_never_shows_credentials_in_the_base_url(api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", "https://someone:hunter2@gateway.example/v1")
    reply = await api("GET", "status")
    assert reply.json["base_url"] == "https://gateway.example/v1"
    assert "hunter2" not in reply.text


async def test_status_without_a_backend_says_so(api) -> None:
    reply = await api("GET", "status")
    assert reply.code == 200
    assert reply.json["backend"] == "none"
    assert reply.json["base_url"] is None


async def test_nothing_configured_is_a_503_that_says_what_to_set(api) -> None:
    reply = await api("GET", "containers")
    assert reply.code == 503
    assert "CELLBOX_BASE_URL" in reply.json["message"]
    assert reply.json["upstream_status"] is None


# --- containers -----------------------------------------------------------------------------------------------


async def test_create_list_and_delete_a_container(api, backend: RunningServer) -> None:
    box = await _create(api, memory_limit="1g", expires_after_minutes=5)
    assert box["id"].startswith("cntr_")
    assert box["memory_limit"] == "1g"
    assert box["status"] == "running"
    assert 0 < box["seconds_left"] <= 300
    assert box["expires_at"] == box["last_active_at"] + 300

    listed = await api("GET", "containers")
    assert listed.code == 200
    mine = [c for c in listed.json["data"] if c["id"] == box["id"]]
    assert len(mine) == 1
    assert mine[0]["name"] == box["name"]
    assert abs(listed.json["now"] - box["last_active_at"]) < 120

    deleted = await api("DELETE", "containers", box["id"])
    assert deleted.code == 200
    assert deleted.json["deleted"] is True
    listed = await api("GET", "containers")
    assert box["id"] not in [c["id"] for c in listed.json["data"] if c["status"] != "deleted"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "needs a name"),
        ({"name": "   "}, "needs a name"),
        ({"name": 3}, "`name` must be a str"),
        ({"name": "ux sidebar/bad name!"}, "has only letters, digits, '-', '_' and '.'; not ' ', '/', '!'"),
        ({"name": "-x"}, "starts with a letter or a digit"),
        ({"name": "x" * 65}, "at most 64 characters"),
        ({"name": "x", "memory_limit": "3g"}, "memory_limit must be one of 1g, 4g, 16g, 64g"),
        ({"name": "x", "expires_after_minutes": "5"}, "`expires_after_minutes` must be a int"),
        ({"name": "x", "expires_after_minutes": True}, "`expires_after_minutes` must be a int"),
        ({"name": "x", "expires_after_minutes": 0}, "positive integer"),
        ("{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_a_bad_create_is_a_400_with_a_reason(api, backend: RunningServer, body, needle: str) -> None:
    reply = await api("POST", "containers", body=body)
    assert reply.code == 400, reply.text
    assert needle in reply.json["message"]


async def test_the_backend_refusing_is_reported_with_its_status(api, backend: RunningServer) -> None:
    reply = await api("DELETE", "containers", "cntr_doesnotexist")
    assert reply.code == 404
    assert reply.json["upstream_status"] == 404
    assert "cntr_doesnotexist" in reply.json["message"] or "not found" in reply.json["message"].lower()

    reply = await api("GET", "containers", "cntr_doesnotexist", "files")
    assert reply.code == 404
    assert reply.json["upstream_status"] == 404


async def test_a_wrong_key_is_a_gateway_error_that_never_shows_the_key(
    api, backend: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_API_KEY", "sk-wrong-secret-value")
    reply = await api("GET", "containers")
    assert reply.code == 502
    assert reply.json["upstream_status"] == 401
    assert "CELLBOX_API_KEY" in reply.json["message"]
    assert "sk-wrong-secret-value" not in reply.text
    assert backend.token not in reply.text


async def test_an_unreachable_backend_is_a_502(api, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    monkeypatch.setenv("CELLBOX_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("CELLBOX_API_KEY", "sk-secret-value")
    reply = await api("GET", "containers")
    assert reply.code == 502
    assert "could not connect" in reply.json["message"]
    assert "sk-secret-value" not in reply.text


# --- files ----------------------------------------------------------------------------------------------------


async def test_upload_list_download_and_delete_a_file(api, backend: RunningServer, workspace: Path) -> None:
    box = await _create(api)
    (workspace / "data").mkdir()
    (workspace / "data" / "sales.csv").write_bytes(b"region,total\nnorth,3\n")

    # From a notebook in `data`: the file is in the notebook's own folder.
    uploaded = await api("POST", "containers", box["id"], "files", body={"path": "data/sales.csv", "folder": "data"})
    assert uploaded.code == 201, uploaded.text
    assert uploaded.json["name"] == "sales.csv"
    assert uploaded.json["path"] == uploaded.json["wanted"] == "/mnt/data/sales.csv"
    assert uploaded.json["bytes"] == 21
    assert uploaded.json["source"] == "user"

    listed = await api("GET", "containers", box["id"], "files")
    assert [(f["name"], f["bytes"]) for f in listed.json["data"]] == [("sales.csv", 21)]
    file_id = listed.json["data"][0]["id"]

    (workspace / "results").mkdir()
    saved = await api("POST", "containers", box["id"], "files", file_id, "download", body={"directory": "results"})
    assert saved.code == 200, saved.text
    assert saved.json == {"path": "results/sales.csv", "bytes": 21}
    assert (workspace / "results" / "sales.csv").read_bytes() == b"region,total\nnorth,3\n"

    again = await api("POST", "containers", box["id"], "files", file_id, "download", body={"directory": "results"})
    assert again.code == 409
    assert "already exists" in again.json["message"]
    (workspace / "results" / "sales.csv").write_bytes(b"old")
    replaced = await api(
        "POST", "containers", box["id"], "files", file_id, "download", body={"directory": "results", "overwrite": True}
    )
    assert replaced.code == 200
    assert (workspace / "results" / "sales.csv").read_bytes() == b"region,total\nnorth,3\n"

    deep = {"directory": "plots/2026/nov", "make_folders": True}
    made = await api("POST", "containers", box["id"], "files", file_id, "download", body=deep)
    assert made.code == 200 and made.json["path"] == "plots/2026/nov/sales.csv"  # the missing folders were made

    renamed = await api("POST", "containers", box["id"], "files", file_id, "download", body={"name": "copy.csv"})
    assert renamed.json["path"] == "copy.csv"
    assert (workspace / "copy.csv").exists()

    deleted = await api("DELETE", "containers", box["id"], "files", file_id)
    assert deleted.code == 200
    listed = await api("GET", "containers", box["id"], "files")
    assert listed.json["data"] == []
    await api("DELETE", "containers", box["id"])


@pytest.mark.parametrize(
    ("folder", "path", "lands"),
    [
        ("", "data/raw.csv", "/mnt/data/data/raw.csv"),  # as `%container push data/raw.csv` from the root
        ("project", "project/data/raw.csv", "/mnt/data/data/raw.csv"),  # from project/analysis.ipynb
        ("project/data", "project/data/raw.csv", "/mnt/data/raw.csv"),
        ("elsewhere", "project/data/raw.csv", "/mnt/data/raw.csv"),  # outside the notebook's folder: by its name
    ],
)
async def test_an_upload_lands_where_a_push_from_the_notebook_would(
    api, backend: RunningServer, workspace: Path, folder: str, path: str, lands: str
) -> None:
    for made in ("data", "project/data", "elsewhere"):
        (workspace / made).mkdir(parents=True, exist_ok=True)
    (workspace / "data" / "raw.csv").write_text("x\n1\n")
    (workspace / "project" / "data" / "raw.csv").write_text("x\n2\n")
    box = await _create(api)
    reply = await api("POST", "containers", box["id"], "files", body={"path": path, "folder": folder})
    assert reply.code == 201, reply.text
    assert reply.json["path"] == reply.json["wanted"] == lands
    listed = await api("GET", "containers", box["id"], "files")
    assert [f["path"] for f in listed.json["data"]] == [lands]
    outside = await api("POST", "containers", box["id"], "files", body={"path": path, "folder": "../"})
    assert outside.code == 403 and "outside the workspace" in outside.json["message"]
    await api("DELETE", "containers", box["id"])


@pytest.mark.parametrize("path", ["../outside.txt", "data/../../outside.txt", "link/outside.txt"])
async def test_upload_refuses_files_outside_the_workspace(
    api, backend: RunningServer, workspace: Path, tmp_path_factory: pytest.TempPathFactory, path: str
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "outside.txt").write_text("private")
    (workspace.parent / "outside.txt").write_text("private")
    (workspace / "link").symlink_to(outside)
    box = await _create(api)
    reply = await api("POST", "containers", box["id"], "files", body={"path": path})
    assert reply.code == 403, reply.text
    assert "outside the workspace" in reply.json["message"]
    assert (await api("GET", "containers", box["id"], "files")).json["data"] == []
    await api("DELETE", "containers", box["id"])


async def test_upload_reads_absolute_paths_as_workspace_paths(api, backend: RunningServer, workspace: Path) -> None:
    box = await _create(api)
    reply = await api("POST", "containers", box["id"], "files", body={"path": "/etc/hostname"})
    assert reply.code == 404
    assert "no file" in reply.json["message"]
    (workspace / "notes.txt").write_text("hello")
    reply = await api("POST", "containers", box["id"], "files", body={"path": "/notes.txt"})
    assert reply.code == 201
    folder = await api("POST", "containers", box["id"], "files", body={"path": "/"})
    assert folder.code == 400
    assert "is a folder" in folder.json["message"]
    await api("DELETE", "containers", box["id"])


async def test_hidden_files_stay_put_as_in_the_contents_api(api, backend: RunningServer, workspace: Path) -> None:
    (workspace / ".env").write_text("TOKEN=x")
    (workspace / ".hidden").mkdir()
    (workspace / ".hidden" / "a.txt").write_text("x")
    box = await _create(api)
    for path in (".env", ".hidden/a.txt"):
        reply = await api("POST", "containers", box["id"], "files", body={"path": path})
        assert reply.code == 403, reply.text
        assert "hidden" in reply.json["message"]
    (workspace / "ok.txt").write_text("x")
    uploaded = (await api("POST", "containers", box["id"], "files", body={"path": "ok.txt"})).json
    download = ("containers", box["id"], "files", uploaded["id"], "download")
    reply = await api("POST", *download, body={"directory": ".hidden"})
    assert reply.code == 403
    reply = await api("POST", *download, body={"name": ".bashrc"})
    assert reply.code == 403
    assert not (workspace / ".bashrc").exists()
    await api("DELETE", "containers", box["id"])


async def test_code_that_would_shadow_a_module_is_not_downloaded(api, backend: RunningServer, workspace: Path) -> None:
    """As a pull without --modules: the error gives the line that saves it from a notebook."""
    box = await _create(api)
    ids = {}
    for name in ("pandas.py", "helpers.py"):
        (workspace / name).write_text("print('the container ran this')")
        ids[name] = (await api("POST", "containers", box["id"], "files", body={"path": name})).json["id"]
        (workspace / name).unlink()

    def download(remote: str, **body: object):
        return api("POST", "containers", box["id"], "files", ids[remote], "download", body=body)

    refused = [
        await download("pandas.py"),
        await download("pandas.py", overwrite=True),
        await download("helpers.py", name="sitecustomize.py"),
        # a new folder named like a module, holding Python files (as a save button asks for pandas/__init__.py)
        await download("helpers.py", directory="pandas", name="__init__.py", make_folders=True),
    ]
    for reply in refused:
        assert reply.code == 400, reply.text
        assert "would shadow the Python module" in reply.json["message"]
        assert "`%container pull --modules " in reply.json["message"]
    assert os.listdir(workspace) == []  # nothing written, no folder made
    saved = await download("helpers.py")
    assert saved.code == 200 and saved.json["path"] == "helpers.py"
    await api("DELETE", "containers", box["id"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"directory": ".."}, 403),
        ({"directory": "link"}, 403),
        ({"name": "../escape.txt"}, 400),
        ({"directory": "missing"}, 404),
        ({"directory": 7}, 400),
        ({"directory": "link/made", "make_folders": True}, 403),
        ({"directory": "../made", "make_folders": True}, 403),
        ({"directory": "made", "make_folders": "yes"}, 400),
    ],
)
async def test_download_never_writes_outside_the_workspace(
    api, backend: RunningServer, workspace: Path, tmp_path_factory: pytest.TempPathFactory, body: dict, code: int
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (workspace / "link").symlink_to(outside)
    box = await _create(api)
    (workspace / "escape.txt").write_text("x")
    uploaded = await api("POST", "containers", box["id"], "files", body={"path": "escape.txt"})
    (workspace / "escape.txt").unlink()
    reply = await api("POST", "containers", box["id"], "files", uploaded.json["id"], "download", body=body)
    assert reply.code == code, reply.text
    assert os.listdir(outside) == []
    assert not (workspace.parent / "escape.txt").exists() and not (workspace.parent / "made").exists()
    await api("DELETE", "containers", box["id"])


# --- authentication -------------------------------------------------------------------------------------------

_CALLS = [
    (method.upper(), pattern.replace("(?P<container_id>[^/]+)", "cntr_x").replace("(?P<file_id>[^/]+)", "cfile_x"))
    for pattern, handler in ROUTES
    for method in ("get", "post", "delete")
    if method in vars(handler)
]


def test_every_route_is_covered_and_authenticated() -> None:
    assert len(_CALLS) == 9
    for _, handler in ROUTES:
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(handler):
                assert getattr(vars(handler)[method], "__wrapped__", None) is not None, (handler, method)


@pytest.mark.parametrize(("method", "path"), _CALLS)
async def test_unauthenticated_calls_are_refused(
    api, backend: RunningServer, workspace: Path, method: str, path: str
) -> None:
    (workspace / "f.txt").write_text("x")
    before = (await api("GET", "containers")).json["data"]
    body = {"name": "intruder", "path": "f.txt"} if method == "POST" else None
    reply = await api(method, *path.split("/"), body=body, headers={"Authorization": "token not-the-token"})
    assert reply.code == 403
    assert backend.token not in reply.text
    assert (await api("GET", "containers")).json["data"] == before


# --- names, replacing, gone containers -------------------------------------------------------------------------


async def test_a_second_running_container_of_a_name_is_refused(api, backend: RunningServer) -> None:
    box = await _create(api)
    again = await api("POST", "containers", body={"name": box["name"]})
    assert again.code == 409
    assert again.json["message"] == (
        f'A container named "{box["name"]}" is already running: pick another name, or delete that one first '
        f"({box['id']})."
    )
    listed = await api("GET", "containers")
    assert [c["id"] for c in listed.json["data"] if c["name"] == box["name"]] == [box["id"]]
    assert isinstance(listed.json["in_use"], dict)


async def test_upload_asks_before_replacing(api, backend: RunningServer, workspace: Path) -> None:
    box = await _create(api)
    (workspace / "notes.txt").write_bytes(b"first")
    assert (await api("POST", "containers", box["id"], "files", body={"path": "notes.txt"})).code == 201
    (workspace / "notes.txt").write_bytes(b"second!")
    again = await api("POST", "containers", box["id"], "files", body={"path": "notes.txt"})
    assert again.code == 409 and again.json["message"] == "/mnt/data/notes.txt already exists in the container"
    replaced = await api("POST", "containers", box["id"], "files", body={"path": "notes.txt", "overwrite": True})
    assert replaced.code == 201, replaced.text
    listed = await api("GET", "containers", box["id"], "files")
    assert [(f["path"], f["bytes"]) for f in listed.json["data"]] == [("/mnt/data/notes.txt", 7)]


async def test_a_deleted_containers_files_are_one_human_line(api, backend: RunningServer) -> None:
    box = await _create(api)
    assert (await api("DELETE", "containers", box["id"])).code == 200
    reply = await api("GET", "containers", box["id"], "files")
    assert reply.code == 404  # the local server forgets a deleted container: as good as never made
    assert reply.json["message"] == "This container no longer exists (deleted); its files are gone."
    assert "request id" not in reply.text.lower()


@pytest.mark.cloud_profiles("openai")
async def test_an_upload_a_service_renamed_says_where_it_is(api, use_cloud_server: str, workspace: Path) -> None:
    """OpenAI stores an upload under a name of its own (`<32 hex>-raw.csv`, folders dropped): the sidebar runs no
    cell to move it into place, so its answer says both where it was asked to be and where it is."""
    (workspace / "data").mkdir()
    (workspace / "data" / "raw.csv").write_text("x\n1\n")
    created = await api("POST", "containers", body={"name": "renamed-upload"})
    assert created.code == 201, created.text
    box = created.json
    try:
        reply = await api("POST", "containers", box["id"], "files", body={"path": "data/raw.csv"})
        assert reply.code == 201, reply.text
        assert reply.json["wanted"] == "/mnt/data/data/raw.csv"
        assert re.fullmatch(r"/mnt/data/[0-9a-f]{32}-raw\.csv", reply.json["path"]), reply.json["path"]
    finally:
        await api("DELETE", "containers", box["id"])
