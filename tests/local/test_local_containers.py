"""Containers: create, list (limit, order, after, name), retrieve, delete, and errors in the OpenAI shape."""

from __future__ import annotations

import time

import openai
import pytest

from cellbox.local.testing import wait_until


def test_create_retrieve_delete(client: openai.OpenAI):
    created = client.containers.create(
        name="crud", memory_limit="4g", expires_after={"anchor": "last_active_at", "minutes": 5}
    )
    assert created.id.startswith("cntr_") and len(created.id) == 5 + 48
    assert created.object == "container"
    assert created.status == "running"
    assert created.memory_limit == "4g"
    assert created.expires_after.minutes == 5 and created.expires_after.anchor == "last_active_at"
    assert abs(created.created_at - time.time()) < 5
    # Like the cloud's ids, the first hex digits are the creation time.
    assert int(created.id[5:13], 16) == created.created_at
    got = client.containers.retrieve(created.id)
    assert (got.id, got.name, got.memory_limit) == (created.id, "crud", "4g")
    deleted = client.containers.delete(created.id)  # the SDK returns None; check the wire too below
    assert deleted is None
    with pytest.raises(openai.NotFoundError) as err:
        client.containers.retrieve(created.id)
    body = err.value.body
    assert set(body) == {"message", "type", "param", "code"}
    assert created.id in body["message"]


def test_defaults(client: openai.OpenAI, container):
    assert container.memory_limit == "1g"
    assert container.expires_after.minutes == 20


def test_delete_marker_and_404_shape(http):
    cid = http.post("/containers", json={"name": "del"}).json()["id"]
    r = http.delete(f"/containers/{cid}")
    assert r.status_code == 200
    assert r.json() == {"id": cid, "object": "container.deleted", "deleted": True}
    r = http.delete(f"/containers/{cid}")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_list_pagination_order_and_name_filter(client: openai.OpenAI, http):
    tag = f"page-{time.time_ns()}"
    ids = [client.containers.create(name=tag).id for _ in range(5)]
    first = http.get("/containers", params={"name": tag, "limit": 2, "order": "asc"}).json()
    assert [c["id"] for c in first["data"]] == ids[:2]
    assert first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == (ids[0], ids[1])
    second = http.get("/containers", params={"name": tag, "limit": 2, "order": "asc", "after": ids[1]}).json()
    assert [c["id"] for c in second["data"]] == ids[2:4]
    desc = http.get("/containers", params={"name": tag, "limit": 100}).json()
    assert [c["id"] for c in desc["data"]] == ids[::-1]
    assert desc["has_more"] is False
    # The SDK's auto-pagination walks every page.
    assert [c.id for c in client.containers.list(name=tag, limit=1, order="asc")] == ids
    # A cursor naming a deleted object still works: ids sort by creation time.
    client.containers.delete(ids[1])
    after_deleted = http.get("/containers", params={"name": tag, "order": "asc", "after": ids[1]}).json()
    assert [c["id"] for c in after_deleted["data"]] == ids[2:]
    for cid in ids[:1] + ids[2:]:
        client.containers.delete(cid)


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "x"}, "limit"), ({"order": "up"}, "order")],
)
def test_list_rejects_bad_params(http, params, param):
    r = http.get("/containers", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": 3}, "name"),
        ({"name": "x", "memory_limit": "2g"}, "memory_limit"),
        ({"name": "x", "expires_after": {"anchor": "created_at", "minutes": 5}}, "expires_after.anchor"),
        ({"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}}, "expires_after.minutes"),
        ({"name": "x", "file_ids": ["file-nope"]}, "file_ids"),
        ({"name": "x", "network_policy": {"type": "allowlist", "allowed_domains": ["a.b"]}}, "network_policy"),
    ],
)
def test_create_rejects_bad_bodies(http, body, param):
    r = http.post("/containers", json=body)
    assert r.status_code in (400, 404)
    error = r.json()["error"]
    assert error["param"] == param
    assert error["message"]


@pytest.mark.parametrize("body", [b"{nope", b'{"name": "\\udc80"}', b"\xff\xfe", b"[1, 2]"])
def test_malformed_json_is_400(http, body):
    r = http.post("/containers", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]


def test_unknown_route_is_404_in_openai_shape(http):
    r = http.get("/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (GET /v1/nothing-here)"


def _past_last_active(created) -> None:
    # last_active_at counts whole seconds: once the clock is past its second, any refresh would show.
    wait_until(lambda: time.time() >= created.last_active_at + 1, what="the clock to pass last_active_at")


def _listed(client: openai.OpenAI, container_id: str):
    return next(c for c in client.containers.list(limit=100) if c.id == container_id)


def test_listing_containers_is_not_an_operation_on_them(client: openai.OpenAI, container):
    _past_last_active(container)
    assert _listed(client, container.id).last_active_at == container.last_active_at


def test_retrieving_a_container_refreshes_last_active_at(client: openai.OpenAI, container):
    # OpenAI's guide: "any container operation, like retrieving the container, or adding or deleting files".
    _past_last_active(container)
    retrieved = client.containers.retrieve(container.id)
    assert retrieved.last_active_at > container.last_active_at
    assert _listed(client, container.id).last_active_at == retrieved.last_active_at


@pytest.mark.parametrize("operation", ["list files", "upload", "retrieve file", "content", "delete file", "run"])
def test_every_operation_on_a_container_refreshes_last_active_at(client: openai.OpenAI, container, run, operation):
    up = client.containers.files.create(container_id=container.id, file=("a.txt", b"a"))
    before = _listed(client, container.id)
    _past_last_active(before)
    files = client.containers.files
    {
        "list files": lambda: files.list(container_id=container.id),
        "upload": lambda: files.create(container_id=container.id, file=("b.txt", b"b")),
        "retrieve file": lambda: files.retrieve(up.id, container_id=container.id),
        "content": lambda: files.content.retrieve(up.id, container_id=container.id).read(),
        "delete file": lambda: files.delete(up.id, container_id=container.id),
        "run": lambda: run(client, container.id, "1"),
    }[operation]()
    assert _listed(client, container.id).last_active_at > before.last_active_at
