"""Attack: ids that are path segments. `DELETE /v1/containers/%2E` once removed every container's folder.

Every route that takes an id answers 404 for anything that is not an id this server issued, before touching the
disk; the other containers' files, and creating new containers, are unaffected."""

from __future__ import annotations

import httpx
import pytest

from cellbox.local.store import ids

HOSTILE = [
    "%2E",
    "%2E%2E",
    "..%2F..",
    "%2E%2E%2Fcontainers",
    "cntr_",
    "cntr_%2F..",
    "containers",
    "tmp",
    "..%2Ffiles",
    "cntr_" + "0" * 47 + "g",
]


@pytest.fixture
def bystander(client):
    created = client.containers.create(name="bystander")
    up = client.containers.files.create(container_id=created.id, file=("keep.txt", b"precious"))
    yield created, up
    client.containers.delete(created.id)


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_container_ids_are_404_and_touch_nothing(http: httpx.Client, server, bystander, bad):
    created, up = bystander
    for method, path in [
        ("DELETE", f"/containers/{bad}"),
        ("GET", f"/containers/{bad}"),
        ("GET", f"/containers/{bad}/files"),
        ("POST", f"/containers/{bad}/files"),
        ("GET", f"/containers/{bad}/files/{up.id}"),
        ("DELETE", f"/containers/{bad}/files/{up.id}"),
        ("GET", f"/containers/{bad}/files/{up.id}/content"),
        ("DELETE", f"/containers/{created.id}/files/{bad}"),
        ("GET", f"/containers/{created.id}/files/{bad}/content"),
        ("DELETE", f"/files/{bad}"),
        ("GET", f"/files/{bad}/content"),
    ]:
        files = {"file": ("x.txt", b"x")} if method == "POST" else None
        r = http.request(method, path, files=files)
        # A decoded %2F can make the path match another route, whose method table answers 405: also harmless.
        assert r.status_code in (404, 405), (method, path, r.status_code, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
    # Nothing was lost: the bystander's file is on disk and readable, and new containers can be made.
    assert (server.data_dir / "containers" / created.id / "keep.txt").read_bytes() == b"precious"
    assert http.get(f"/containers/{created.id}/files/{up.id}/content").content == b"precious"
    fresh = http.post("/containers", json={"name": "after-attack"}).json()
    assert ids.is_container_id(fresh["id"])
    assert http.delete(f"/containers/{fresh['id']}").status_code == 200


def test_a_file_id_is_not_a_container_file_id(http: httpx.Client, bystander):
    created, up = bystander
    # Well-formed ids of another kind are still strangers here.
    assert http.get(f"/containers/{up.id}").status_code == 404
    assert http.get(f"/containers/{created.id}/files/{created.id}").status_code == 404


def test_issued_ids_have_the_checked_shapes():
    assert ids.is_container_id(ids.new_container_id())
    assert ids.is_container_file_id(ids.new_container_file_id())
    assert ids.is_file_id(ids.new_file_id())
    for bad in [".", "..", "", "cntr_../x", ids.new_container_id() + "/", ids.new_container_id().upper()]:
        assert not ids.is_container_id(bad)


def test_the_store_refuses_to_name_a_folder_with_a_stranger(server):
    from cellbox.local.store import Store, UnknownId

    store = Store(server.data_dir.parent / "store-probe")
    try:
        for bad in [".", "..", "", "x/y"]:
            with pytest.raises(UnknownId):
                store.container_dir(bad)
            with pytest.raises(UnknownId):
                store.delete_container(bad)
            with pytest.raises(UnknownId):
                store.file_path(bad)
        assert store.containers_dir.is_dir()
    finally:
        store.close()
