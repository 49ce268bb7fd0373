"""Containers: create, list (all pages and one page), retrieve, delete, against the fake server, sync and async."""

from __future__ import annotations

import json

import pytest
from runboth import Both

from cellbox.api import Container, Deleted, NotFoundError, Page, ValidationError


def test_create_sends_every_parameter(both: Both) -> None:
    box = both(
        lambda c: c.containers.create(
            "analysis",
            memory_limit="4G",
            expires_after=30,
            file_ids=[],
            network_policy={"type": "allowlist", "allowed_domains": ["pypi.org"]},
        )
    )
    assert isinstance(box, Container)
    assert box.id.startswith("cntr_") and box.name == "analysis" and box.status == "running"
    assert box.memory_limit == "4g"
    assert box.expires_after is not None and box.expires_after.minutes == 30
    assert box.expires_at == box.last_active_at + 30 * 60
    assert both.server.bodies == [
        {
            "name": "analysis",
            "memory_limit": "4g",
            "expires_after": {"anchor": "last_active_at", "minutes": 30},
            "file_ids": [],
            "network_policy": {"type": "allowlist", "allowed_domains": ["pypi.org"]},
        }
    ]
    [sent] = both.server.requests("POST", "/v1/containers")
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["user-agent"].startswith("cellbox/")


def test_create_with_only_a_name_sends_only_the_name(both: Both) -> None:
    both(lambda c: c.containers.create("plain"))
    assert both.server.bodies == [{"name": "plain"}]


def test_create_with_file_ids_copies_the_files(both: Both) -> None:
    uploaded = both(lambda c: c.files.create(b"a,b\n1,2\n", filename="data.csv"))
    box = both(lambda c: c.containers.create("with-files", file_ids=[uploaded.id]))
    [copied] = both(lambda c: c.containers.files.list(box.id))
    assert copied.path == "/mnt/data/data.csv" and copied.bytes == 8


def test_retrieve_and_delete(both: Both) -> None:
    box = both(lambda c: c.containers.create("short-lived"))
    again = both(lambda c: c.containers.retrieve(box.id))
    assert again == box
    gone = both(lambda c: c.containers.delete(box.id))
    assert isinstance(gone, Deleted) and gone.id == box.id and gone.deleted and gone.object == "container.deleted"
    with pytest.raises(NotFoundError) as info:
        both(lambda c: c.containers.retrieve(box.id))
    assert info.value.status_code == 404 and box.id in str(info.value)


def test_list_follows_after_across_pages(both: Both) -> None:
    made = [both.server.add_container(f"box-{i:02d}")["id"] for i in range(45)]
    listed = both(lambda c: c.containers.list(limit=10))
    assert [b.id for b in listed] == made[::-1]  # newest first, the API's default order
    pages = both.server.requests("GET", "/v1/containers")
    assert len(pages) == 5
    assert "after" not in pages[0].query and all("limit=10" in p.query for p in pages)
    assert all(f"after={listed[10 * k - 1].id}" in pages[k].query for k in range(1, 5))


def test_list_ascending_and_by_name(both: Both) -> None:
    for i in range(7):
        both.server.add_container("same" if i % 2 else "other")
    ascending = both(lambda c: c.containers.list(limit=3, order="asc"))
    assert [b.created_at for b in ascending] == sorted(b.created_at for b in ascending)
    named = both(lambda c: c.containers.list(name="same", limit=2))
    assert len(named) == 3 and {b.name for b in named} == {"same"}
    assert all("name=same" in r.query for r in both.server.requests("GET", "/v1/containers")[-2:])


def test_list_of_nothing_is_empty(both: Both) -> None:
    assert both(lambda c: c.containers.list()) == []
    assert both.server.count("GET", "/v1/containers") == 1


def test_list_page_gives_one_page(both: Both) -> None:
    made = [both.server.add_container(f"p{i}")["id"] for i in range(12)]
    page = both(lambda c: c.containers.list_page(limit=5, order="asc"))
    assert isinstance(page, Page) and len(page) == 5
    assert page.has_more and page.first_id == made[0] and page.last_id == made[4]
    assert [b.id for b in page] == made[:5] and page.next_after == made[4]
    last = both(lambda c: c.containers.list_page(limit=5, order="asc", after=made[9]))
    assert [b.id for b in last] == made[10:] and not last.has_more and last.next_after is None
    assert both.server.count("GET", "/v1/containers") == 2


def test_unknown_fields_are_kept(both: Both) -> None:
    box = both(lambda c: c.containers.create("future"))
    assert box.extra["future_field"] == {"kept": True}
    assert box.future_field == {"kept": True}
    sent = box.to_dict()
    assert sent["future_field"] == {"kept": True}
    assert sent["expires_after"] == {"anchor": "last_active_at", "minutes": 20}
    assert json.loads(json.dumps(sent)) == both.server.containers[box.id]
    with pytest.raises(AttributeError, match="no field 'nonexistent'"):
        _ = box.nonexistent
    assert "future_field" not in repr(box)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.containers.create("x", memory_limit="2g"), "memory_limit must be one of 1g, 4g, 16g, 64g"),
        (lambda c: c.containers.create("x", memory_limit=4), "memory_limit"),
        (lambda c: c.containers.create(""), "non-empty name"),
        (lambda c: c.containers.create("   "), "non-empty name"),
        (lambda c: c.containers.create("x", expires_after=0), "expires_after minutes"),
        (lambda c: c.containers.create("x", expires_after={"minutes": 5, "anchor": "created_at"}), "anchor"),
        (lambda c: c.containers.create("x", file_ids="file-1"), "list of file ids"),
        (lambda c: c.containers.create("x", network_policy={"type": "open"}), "network_policy"),
        (lambda c: c.containers.list_page(limit=0), "limit must be an integer from 1 to 100"),
        (lambda c: c.containers.list_page(limit=101), "limit must be an integer from 1 to 100"),
        (lambda c: c.containers.list_page(limit=True), "limit"),
        (lambda c: c.containers.list_page(order="newest"), "order must be 'asc' or 'desc'"),
        (lambda c: c.containers.list(limit=0), "limit"),
        (lambda c: c.containers.retrieve(""), "container_id must be an id"),
        (lambda c: c.containers.delete(None), "container_id"),
    ],
)
def test_bad_arguments_fail_before_sending(both: Both, call, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        both(call)
    assert isinstance(info.value, ValueError)
    assert both.server.count() == 0


def test_unknown_container_is_not_found(both: Both) -> None:
    with pytest.raises(NotFoundError) as info:
        both(lambda c: c.containers.retrieve("cntr_missing"))
    error = info.value
    assert error.status_code == 404 and error.code == "not_found" and error.type == "invalid_request_error"
    assert error.request_id and error.request_id in str(error)
    assert "GET /v1/containers/cntr_missing" in str(error) and "cellbox ls" in str(error)
    assert both.server.count() == 1  # a 404 is an answer, not retried
