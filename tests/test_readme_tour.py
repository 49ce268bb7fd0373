"""The README's tour runs as pasted: each of its Python blocks, in order, in a real kernel against the local server,
from a folder of its own (as a user's notebook folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kernelhelp import Kernel, local_env, value

from cellbox.local.testing import RunningServer

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def tour_blocks() -> list[str]:
    """The Python blocks between the tour's heading and the next heading of its level or above."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## The tour\n")
    end = text.index("\n## ", start + 1)
    end = min(end, text.index("\n### ", start + 1))  # what follows the tour (the options table) is not a block to paste
    return BLOCK.findall(text[start:end])


def test_the_tour_has_the_blocks_a_user_pastes() -> None:
    blocks = tour_blocks()
    assert blocks[0].strip() == "%load_ext cellbox" and any(b.startswith("%%container") for b in blocks)


@pytest.mark.integration
def test_the_tour_runs_as_pasted(local_server: RunningServer, tmp_path: Path) -> None:
    kernel = Kernel(local_env(local_server.base_url, local_server.token, tmp_path), cwd=str(tmp_path))
    try:
        for block in tour_blocks():
            status, out = kernel.run(block)
            errors = [m for m in out if m["type"] == "error"]
            assert status == "ok" and not errors, (block, out)
        # What the container computed is what pandas computes here.
        status, out = kernel.run(
            "here = sales.assign(total=sales.price * sales.qty).groupby('region', as_index=False).total.sum()\n"
            "pd.testing.assert_frame_equal(totals.reset_index(drop=True), here)\n"
            "'equal'"
        )
        assert status == "ok" and value(out) == "'equal'", out
    finally:
        kernel.run("%container delete")
        kernel.stop()
