"""What running cells costs in model tokens, as a notebook user sees it: `%%container` cells whose output is large
keep the model's part small, and `%container status` shows the session's total. A real kernel against each
server profile."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from kernelhelp import Kernel, text, user_env

from cellbox.api import Container
from cellbox.notebook.views import ContainerTable, StatusView
from cellbox.session.results import Usage


def stdout(messages: list[dict[str, Any]]) -> str:
    return text(messages, "stdout")


@pytest.fixture(scope="module")
def kernel(cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel-home")
    env = user_env(cloud_environment, home)
    k = Kernel(env)
    assert k.run("%load_ext cellbox")[0] == "ok"
    yield k
    k.run("%container delete")
    k.stop()


def shown(messages: list[dict[str, Any]]) -> str:
    return next(m for m in messages if m["type"] == "execute_result")["data"]["text/plain"]


TOKENS = re.compile(r"([\d,]+) tokens \(([\d,]+) in, ([\d,]+) out")


def test_status_shows_what_the_sessions_cells_cost(kernel: Kernel) -> None:
    assert kernel.run("%container new tokens")[0] == "ok"
    status, out = kernel.run("%container status")
    assert status == "ok" and "model tokens" in shown(out) and "no cells run yet" in shown(out)
    status, out = kernel.run("%%container\nprint('x' * 100_000)")
    assert status == "ok" and stdout(out) == "x" * 100_000 + "\n"  # the whole print, though the model saw none of it
    status, out = kernel.run("%%container\nprint('y' * 5_000_000)")
    assert status == "ok" and stdout(out).startswith("y" * 2_000_000)
    status, out = kernel.run("%%container\nimport pandas as pd\npd.DataFrame({'v': range(3000)})")
    assert status == "ok" and "<table" in shown_html(out)
    # The session's total is in the status, and it is what the cells' runs reported, summed.
    status, out = kernel.run("%container status")
    found = TOKENS.search(shown(out))
    assert status == "ok" and found is not None, shown(out)
    total, read, written = (int(group.replace(",", "")) for group in found.groups())
    assert total == read + written and 0 < read <= 3 * 1000 * 2  # three cells, each asked at most twice
    status, out = kernel.run("print(get_ipython().find_magic('container').__self__.current.usage.total_tokens)")
    assert status == "ok" and int(stdout(out)) == total


def shown_html(messages: list[dict[str, Any]]) -> str:
    return next(m for m in messages if m["type"] == "execute_result")["data"].get("text/html", "")


def test_the_status_view_has_a_tokens_column_only_when_given_one() -> None:
    box = Container.from_dict({"id": "cntr_abc", "name": "demo", "status": "running", "memory_limit": "1g"})
    plain = StatusView(box)
    assert plain.header == StatusView.header and len(plain.rows[0]) == len(StatusView.header)
    usage = Usage(input_tokens=1200, output_tokens=300, total_tokens=1500, responses=4)
    view = StatusView(box, usage=usage)
    assert view.header[-1] == "model tokens" and view.rows[0][-1] == "1,500 tokens (1,200 in, 300 out) over 4 responses"
    assert "1,500 tokens" in view._repr_html_() and "model tokens" in repr(view)
    assert StatusView(box, usage="no cells run yet").rows[0][-1] == "no cells run yet"
    assert ContainerTable([box]).header == (*StatusView.header, "used by")  # the list keeps its columns
