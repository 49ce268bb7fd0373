"""The notebook's containers, without a kernel: which is current, what a name resolves to, what is made anew and
said, against a real local server."""

from __future__ import annotations

import pytest

from cellbox import NoSuchContainer
from cellbox.local.testing import RunningServer
from cellbox.notebook.registry import Containers, Said
from cellbox.session.sandbox import Sandbox


@pytest.fixture
def containers(use_local_server: RunningServer) -> Containers:
    return Containers()


def test_a_name_resolves_to_one_container_and_nothing_named_makes_one_and_says_so(containers: Containers) -> None:
    said: list[Said] = []
    made = containers.resolve(None, said.append)
    try:
        assert containers.current is made and [s.text for s in said] == [f"created container {made.name} ({made.id})"]
        again = containers.resolve(None, said.append)
        assert again is made and len(said) == 1  # the current one: nothing new, nothing said
        assert containers.resolve(made.id, said.append) is made and containers.known(made.name or "") is made
    finally:
        made.delete()


def test_a_deleted_current_container_is_replaced_by_one_of_its_name(containers: Containers) -> None:
    said: list[Said] = []
    first = containers.resolve("registry-deleted", said.append)
    containers.delete(first)
    assert containers.current is None and containers.known("registry-deleted") is None
    second = containers.resolve(None, said.append)
    try:
        assert second.name == "registry-deleted" and second.id != first.id
        assert "was deleted, so this cell runs in a new container registry-deleted" in said[-1].text
        assert not said[-1].warning
    finally:
        second.delete()


def test_a_container_found_gone_is_made_anew_with_its_pushes_and_warned(containers: Containers) -> None:
    said: list[Said] = []
    sandbox = containers.resolve("registry-gone", said.append)
    sandbox.push({"a": 1}, name="settings")
    old = sandbox.id
    sandbox.client.containers.delete(old)  # gone behind the notebook's back
    containers.gone()
    again = containers.resolve(None, said.append)
    try:
        assert again is sandbox and again.id != old and containers.current is again
        assert said[-1].warning and "was gone" in said[-1].text and "pushed again: settings" in said[-1].text
    finally:
        again.delete()


def test_start_clean_deletes_the_named_or_current_container(containers: Containers) -> None:
    said: list[Said] = []
    sandbox = containers.resolve("registry-fresh", said.append)
    containers.start_clean(None, said.append)
    assert containers.current is None and said[-1].text == f"deleted container registry-fresh ({sandbox.id})"
    with pytest.raises(NoSuchContainer):  # deleted, not only forgotten here
        Sandbox.attach(sandbox.id)
    before = len(said)
    containers.start_clean("registry-no-such", said.append)  # nothing of that name: already clean, nothing said
    assert len(said) == before


def test_no_current_container_is_a_lookup_error(containers: Containers) -> None:
    with pytest.raises(LookupError, match="no current container"):
        containers.require_current()
