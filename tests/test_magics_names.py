"""What a name in `%container` / `%%container` means, in a real Jupyter kernel against the real local server: a name
finds a running container and never makes one, an undefined `{var}` is refused, and a notebook finds its container
again after its kernel restarts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kernelhelp import Kernel, text

from cellbox.api import Client


def _env(cloud_environment: dict[str, str], home: os.PathLike[str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLBOX_", "OCI_", "JPY_"))}
    env.update(**cloud_environment, CELLBOX_STATE_DIR=str(home), XDG_CONFIG_HOME=str(home), **extra)
    return env


@pytest.fixture(scope="module")
def kernel(cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel(_env(cloud_environment, tmp_path_factory.mktemp("names-home")))
    status, _ = k.run("%load_ext cellbox")
    assert status == "ok"
    yield k
    k.run("%container delete")
    k.stop()


def _client(env: dict[str, str]) -> Client:
    return Client(base_url=env["CELLBOX_BASE_URL"], api_key=env["CELLBOX_API_KEY"], project=env.get("CELLBOX_PROJECT"))


def _named(env: dict[str, str], name: str) -> list[str]:
    with _client(env) as client:
        return [box.id for box in client.containers.list() if box.name == name and box.status == "running"]


def _current(kernel: Kernel) -> str:
    code = "print(get_ipython().find_magic('container').__self__.current.id)"
    return text(kernel.run(code)[1], "stdout").strip()


def _error(out: list[dict]) -> dict:
    return next(m for m in out if m["type"] == "error")


def test_a_typo_makes_nothing_and_names_the_similar_container(
    kernel: Kernel, cloud_environment: dict[str, str]
) -> None:
    assert kernel.run("%container new names-analysis")[0] == "ok"
    current = _current(kernel)
    for typed in ("%container use names-analysys", "%%container names-analysys\nx = 1"):
        status, out = kernel.run(typed)
        assert status == "error"
        error = _error(out)
        assert error["ename"] == "NoSuchContainer" and len(error["traceback"]) == 1  # one line, no cellbox frames
        assert "no running container is named 'names-analysys' (did you mean names-analysis?)" in error["evalue"]
        assert "`%container new names-analysys` makes a new one" in error["evalue"]
    assert _named(cloud_environment, "names-analysys") == []  # no orphan
    assert _current(kernel) == current  # and the notebook's container is still its own
    status, out = kernel.run("%container new names-analysys")  # asked for: made
    assert status == "ok" and len(_named(cloud_environment, "names-analysys")) == 1
    kernel.run("%container delete\n%container use names-analysis")


def test_an_undefined_variable_in_the_line_is_refused_naming_it(
    kernel: Kernel, cloud_environment: dict[str, str]
) -> None:
    for line in ("%%container {box_name}\nx = 1", "%container use {box_name}", "%container new {box_name}"):
        status, out = kernel.run(line)
        assert status == "error", line
        said = text(out, "stderr")
        assert "{box_name} in %container's line: no variable box_name in the notebook" in said, said
        assert said.count("\n") == 1 and "Traceback" not in said
    assert _named(cloud_environment, "{box_name}") == []
    status, out = kernel.run("%%container {boxes[0]}\nx = 1")
    assert status == "error" and "{boxes[0]} in %container's line: boxes[0] could not be evaluated" in text(
        out, "stderr"
    )
    status, out = kernel.run("box_name = 'names-analysis'")
    status, out = kernel.run("%%container {box_name}\nprint('ran in', 'names-analysis')")  # defined: expanded
    assert status == "ok" and "ran in names-analysis" in text(out, "stdout"), out


@pytest.mark.parametrize("identity", ["notebook path", "kernel id"])
def test_a_restarted_kernel_reattaches_to_its_notebooks_container_and_says_so(
    cloud_environment: dict[str, str], tmp_path, identity: str
) -> None:
    # jupyter_server gives the kernel its notebook's path (JupyterLab, Notebook 7); without it, the kernel's id,
    # which a restart keeps, is the notebook's identity.
    extra = {"JPY_SESSION_NAME": str(tmp_path / "analysis.ipynb")} if identity == "notebook path" else {}
    env = _env(cloud_environment, tmp_path / "home", **extra)
    k = Kernel(env)
    try:
        assert k.run("%load_ext cellbox")[0] == "ok"
        status, out = k.run("%%container\nkept = 41")
        assert status == "ok" and "cellbox: created container " in text(out, "stdout"), out
        made = _current(k)
        k.manager.restart_kernel()  # as Jupyter restarts it: shut down, started again
        k.client.wait_for_ready(timeout=60)
        assert k.run("%load_ext cellbox")[0] == "ok"
        status, out = k.run("%%container\nkept + 1")
        assert status == "ok", out
        said = text(out, "stdout")
        assert f"({made}), the container this notebook used last (`%container new` makes another)" in said
        assert said.startswith("cellbox: reattached to cellbox-") and said.count("\n") == 1
        assert out[-1]["data"]["text/plain"] == "42"  # the container's state, from before the restart
        assert _current(k) == made
    finally:
        k.run("%container delete")
        k.stop()
    with _client(env) as client:  # nothing was left behind
        assert not [box for box in client.containers.list() if box.id == made and box.status == "running"]


def test_a_notebook_reopened_in_a_new_kernel_reattaches_and_an_expired_container_is_said(
    cloud_environment: dict[str, str], tmp_path
) -> None:
    env = _env(cloud_environment, tmp_path / "home", JPY_SESSION_NAME=str(tmp_path / "report.ipynb"))
    first = Kernel(env)
    try:
        assert first.run("%load_ext cellbox")[0] == "ok"
        assert first.run("%%container\nkept = 1")[0] == "ok"
        made = _current(first)
    finally:
        first.stop()
    second = Kernel(env)  # the notebook closed and opened again: a new kernel, the same notebook
    try:
        assert second.run("%load_ext cellbox")[0] == "ok"
        status, out = second.run("%%container\nkept")
        assert status == "ok" and f"({made}), the container this notebook used last" in text(out, "stdout")
        with _client(env) as client:
            client.containers.delete(made)  # gone meanwhile (expired, or deleted in the sidebar)
    finally:
        second.stop()
    third = Kernel(env)
    try:
        assert third.run("%load_ext cellbox")[0] == "ok"
        status, out = third.run("%%container\nprint('fresh')")
        assert status == "ok", out
        said = text(out, "stderr")
        assert f"({made}), which this notebook used last, is gone (expired or deleted): its variables and " in said
        assert "files are gone; this cell runs in container cellbox-" in said and text(out, "stdout") == "fresh\n"
    finally:
        third.run("%container delete")
        third.stop()
