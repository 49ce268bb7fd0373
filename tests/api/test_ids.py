"""An id goes into a URL path only as a plain token; anything else is refused before a byte is sent.

`containers.delete(".")` must never become `DELETE /v1/containers/%2E`: a server that reads ids as path
segments would take it for the collection itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer
from mockapi import MockAPI
from runboth import Both

from cellbox.api import NotFoundError, ValidationError
from cellbox.api.lookup import NoSuchContainer, find_container
from cellbox.api.operations import is_plain_id
from cellbox.cli import main as cellbox_main

BAD_IDS = [
    ".",
    "..",
    "../containers",
    "./x",
    "a/b",
    "/cntr_1",
    "%2E",
    "%2e%2e",
    "cntr%2F1",
    "x?y=1",
    "cntr#1",
    "a b",
    " cntr_1",
    "cntr_1 ",
    "cntr_1\n",
    "\t",
    "cntr\x00",
    "cntr\x7f",
    "",
    "_cntr",
    "-cntr",
    ".cntr",
    ":cntr",
    "cntr_é",
    "\uff43\uff4e\uff54\uff52",  # fullwidth letters: not ASCII
    "cntr\u200b1",
    "a" * 257,
    None,
    42,
    b"cntr_1",
]
GOOD_IDS = [
    "cntr_1",
    "cfile_abc-DEF",
    "file-0123",
    "ocid1.generativeaicontainer.oc1.iad.amaaaaaa7ratcziaxyz",
    "urn:cellbox:1",
    "a..b",
    "A",
    "9",
    "a" * 256,
]

# Every call that puts an id in the URL path, with the id in each position it can take.
Call = Callable[[Any, Any], Any]
PATH_CALLS: dict[str, tuple[str, Call]] = {
    "containers.retrieve": ("container_id", lambda c, i: c.containers.retrieve(i)),
    "containers.delete": ("container_id", lambda c, i: c.containers.delete(i)),
    "containers.files.create": ("container_id", lambda c, i: c.containers.files.create(i, b"x", filename="x")),
    "containers.files.create(file_id)": ("container_id", lambda c, i: c.containers.files.create(i, file_id="f-1")),
    "containers.files.list_page": ("container_id", lambda c, i: c.containers.files.list_page(i)),
    "containers.files.list": ("container_id", lambda c, i: c.containers.files.list(i)),
    "containers.files.retrieve[cid]": ("container_id", lambda c, i: c.containers.files.retrieve(i, "cfile_1")),
    "containers.files.retrieve[fid]": ("file_id", lambda c, i: c.containers.files.retrieve("cntr_1", i)),
    "containers.files.delete[cid]": ("container_id", lambda c, i: c.containers.files.delete(i, "cfile_1")),
    "containers.files.delete[fid]": ("file_id", lambda c, i: c.containers.files.delete("cntr_1", i)),
    "containers.files.content[cid]": ("container_id", lambda c, i: c.containers.files.content(i, "cfile_1")),
    "containers.files.content[fid]": ("file_id", lambda c, i: c.containers.files.content("cntr_1", i)),
    "containers.files.stream[cid]": ("container_id", lambda c, i: c.containers.files.stream(i, "cfile_1")),
    "containers.files.stream[fid]": ("file_id", lambda c, i: c.containers.files.stream("cntr_1", i)),
    "files.retrieve": ("file_id", lambda c, i: c.files.retrieve(i)),
    "files.delete": ("file_id", lambda c, i: c.files.delete(i)),
    "files.content": ("file_id", lambda c, i: c.files.content(i)),
}


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
@pytest.mark.parametrize("name", list(PATH_CALLS))
def test_an_id_that_is_not_a_plain_token_is_refused_before_sending(mocked: Both, name: str, bad: Any) -> None:
    argument, call = PATH_CALLS[name]
    with pytest.raises(ValidationError) as info:
        mocked(lambda c: call(c, bad))
    message = str(info.value)
    assert message.startswith(f"{argument} must be an id") and "\n" not in message
    assert (repr(bad) if len(repr(bad)) < 60 else repr(bad)[:40]) in message
    assert "Nothing was sent" in message
    assert mocked.server.log == []


@pytest.mark.parametrize("name", ["containers.files.download[cid]", "containers.files.download[fid]"])
@pytest.mark.parametrize("bad", [".", "..", "a/b", "%2E", ""], ids=repr)
def test_a_download_with_a_bad_id_sends_nothing_and_writes_nothing(
    mocked: Both, tmp_path: Path, name: str, bad: str
) -> None:
    target = tmp_path / "out.bin"
    ids = (bad, "cfile_1") if name.endswith("[cid]") else ("cntr_1", bad)
    with pytest.raises(ValidationError, match="must be an id"):
        mocked(lambda c: c.containers.files.download(*ids, target))
    assert mocked.server.log == [] and list(tmp_path.iterdir()) == []


def test_a_long_id_is_shown_shortened() -> None:
    api = MockAPI()
    with api.client() as client, pytest.raises(ValidationError) as info:
        client.containers.delete("x" * 5000)
    assert "5000 chars" in str(info.value) and len(str(info.value)) < 400 and api.log == []


@pytest.mark.parametrize("good", GOOD_IDS)
@pytest.mark.parametrize("name", list(PATH_CALLS))
def test_a_plain_id_goes_into_the_path_as_it_is(mocked: Both, name: str, good: str) -> None:
    _, call = PATH_CALLS[name]
    with contextlib.suppress(NotFoundError):  # the mock knows no such container: the request is what counts
        mocked(lambda c: call(c, good))
    [sent] = mocked.server.log
    segments = sent.raw_path.split("/")
    assert good in segments  # verbatim, one segment: no escaping was needed, none was done
    assert sent.raw_path == sent.path


def test_plain_ids_by_rule() -> None:
    assert all(is_plain_id(good) for good in GOOD_IDS)
    assert not any(is_plain_id(bad) for bad in BAD_IDS)


# --- callers: a name that can't be an id is looked up by name, never sent as a path -------------------------------


def test_lookup_by_a_name_that_is_not_an_id_searches_names_only() -> None:
    api = MockAPI()
    wanted = api.add_container("my box/2")
    with api.client() as client:
        assert find_container(client, "my box/2").id == wanted["id"]
        with pytest.raises(NoSuchContainer, match=r"no container with id or name '\.\.'"):
            find_container(client, "..")
        with pytest.raises(ValidationError, match="container id or name"):
            find_container(client, "")
    assert [(s.method, s.path) for s in api.log] == [("GET", "/v1/containers")] * 2
    assert [s.query for s in api.log] == ["order=desc&name=my+box%2F2", "order=desc&name=.."]


def test_lookup_by_id_still_retrieves_it() -> None:
    api = MockAPI()
    box = api.add_container("named")
    with api.client() as client:
        assert find_container(client, box["id"]).name == "named"
    assert [(s.method, s.path) for s in api.log] == [("GET", f"/v1/containers/{box['id']}")]


@pytest.mark.parametrize("bad", [".", "..", "%2E", "a/b"])
def test_cellbox_rm_of_a_bad_id_is_one_line_and_deletes_nothing(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    kept = server.add_container("kept")
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_API_KEY", server.token)
    assert cellbox_main(["rm", bad]) == 1
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line == f"cellbox rm: {bad}: no container with id or name {bad!r}; `cellbox ls` lists them."
    assert server.count("DELETE") == 0 and server.containers[kept["id"]]["status"] == "running"
    assert all(r.path == "/v1/containers" for r in server.requests())  # only the search by name


def test_cellbox_files_of_a_bad_id_is_one_line(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CELLBOX_BASE_URL", server.base_url)
    monkeypatch.setenv("CELLBOX_API_KEY", server.token)
    assert cellbox_main(["files", "../x"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("cellbox: no container with id or name '../x'")
    assert all(r.path == "/v1/containers" for r in server.requests())
