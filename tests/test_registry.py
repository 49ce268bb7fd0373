"""The notebook's containers, without a kernel: which is current, what a name resolves to, what is made anew and
said, against a real local server."""

from __future__ import annotations

import pytest

from cellbox import NoSuchContainer
from cellbox.common import inuse
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
    first = containers.remember(Sandbox.create("registry-deleted"))  # `%container new registry-deleted`
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
    sandbox = containers.remember(Sandbox.create("registry-gone"))  # `%container new registry-gone`
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
    sandbox = containers.remember(Sandbox.create("registry-fresh"))  # `%container new registry-fresh`
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


def _live(names: str) -> list[str]:
    with Sandbox.default_client() as client:
        return [box.id for box in client.containers.list() if box.name == names and box.status == "running"]


def test_a_name_no_running_container_has_is_an_error_naming_similar_ones_and_makes_nothing(
    containers: Containers,
) -> None:
    said: list[Said] = []
    real = Sandbox.create("registry-analysis")
    forged = Sandbox.create("registry-analysis\x1b[2K")  # anyone's name, terminal codes
    try:
        for attempt in (lambda: containers.use("registry-analysys", said.append),
                        lambda: containers.resolve("registry-analysys", said.append)):  # fmt: skip
            with pytest.raises(NoSuchContainer) as missing:
                attempt()
            message = str(missing.value)
            assert "no running container is named 'registry-analysys'" in message
            assert "did you mean registry-analysis?" in message and "\x1b" not in message
            assert "`%container new registry-analysys` makes a new one" in message
        assert _live("registry-analysys") == [] and containers.current is None and said == []
        assert containers.use("registry-analysis", said.append).id == real.id  # a running one is found
    finally:
        for sandbox in (real, forged):
            sandbox.delete()
            sandbox.close()
        for sandbox in {id(s): s for s in containers._known.values()}.values():
            sandbox.close()


def test_a_notebook_reattaches_to_its_last_container_after_its_kernel_restarts(use_local_server: RunningServer) -> None:
    notebook = "notebook:/work/analysis.ipynb"
    said: list[Said] = []
    first = Containers(notebook=notebook).resolve(None, said.append)  # the kernel before the restart
    again = first
    try:
        assert said[-1].text == f"created container {first.name} ({first.id})"
        first.run("kept = 41")
        restarted = Containers(notebook=notebook)  # the same notebook's next kernel
        again = restarted.resolve(None, said.append)
        assert again.id == first.id and restarted.current is again
        assert said[-1] == Said(
            f"reattached to {first.name} ({first.id}), the container this notebook used last "
            "(`%container new` makes another)"
        )
        assert again.run("kept + 1").value == 42  # its state is there
        other = Containers(notebook="notebook:/work/other.ipynb").resolve(None, said.append)  # not another's
        try:
            assert other.id != first.id and said[-1].text.startswith("created container")
        finally:
            other.delete()
            other.close()
    finally:
        first.client.containers.delete(first.id)  # gone behind the notebook's back (expired, the sidebar)
        first.close()
        again.close()
    after = Containers(notebook=notebook)
    made = after.resolve(None, said.append)
    try:
        assert made.id != first.id and made.name == first.name
        assert said[-1].warning and said[-1].text == (
            f"container {first.name} ({first.id}), which this notebook used last, is gone (expired or deleted): its "
            f"variables and files are gone; this cell runs in container {made.name} ({made.id})"
        )
    finally:
        after.delete(made)  # deleted by the notebook: nothing to reattach to, nothing said of it
        made.close()
    fresh = Containers(notebook=notebook)
    made = fresh.resolve(None, said.append)
    try:
        assert said[-1].text == f"created container {made.name} ({made.id})"
    finally:
        made.delete()
        made.close()


def test_a_named_cell_or_use_chooses_the_container_and_nothing_is_reattached(use_local_server: RunningServer) -> None:
    notebook = "notebook:/work/chosen.ipynb"
    said: list[Said] = []
    last = Containers(notebook=notebook).resolve(None, said.append)
    chosen = Sandbox.create("registry-chosen")
    try:
        restarted = Containers(notebook=notebook)
        named = restarted.resolve("registry-chosen", said.append)
        assert named.id == chosen.id
        assert restarted.resolve(None, said.append) is named  # the chosen one stays current
        assert not any("reattached" in s.text for s in said)
        later = Containers(notebook=notebook).resolve(None, said.append)
        assert later.id == chosen.id  # now the notebook's last
        named.close()
        later.close()
    finally:
        last.delete()
        chosen.delete()
        last.close()
        chosen.close()


def test_auto_containers_are_not_reattached_to(
    use_local_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An auto container is reached through the chain of responses the kernel held: a restarted one can't continue it.
    monkeypatch.setenv("CELLBOX_CONTAINER_BINDING", "auto")
    notebook = "notebook:/work/auto.ipynb"
    said: list[Said] = []
    first = Containers(notebook=notebook).resolve(None, said.append)
    try:
        assert inuse.last_used(notebook) is None
        inuse.record_last_used(notebook, first.id, first.name, first.client.base_url)  # as an id-bound kernel left it
        second = Containers(notebook=notebook).resolve(None, said.append)
        try:
            assert second.id != first.id and said[-1].text.startswith("created container")
        finally:
            second.delete()
            second.close()
    finally:
        first.delete()
        first.close()
