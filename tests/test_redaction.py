"""A backend (or a proxy in front of it) that echoes the request's credentials in its errors: the `cellbox`
command's one-line failures and the magics' error display never repeat them. Against a careless proxy on
loopback (tests/api/echoproxy.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from echoproxy import SHAPES, EchoProxy, leaks

from cellbox.api import CellboxError
from cellbox.cli import EXIT_ERROR, main
from cellbox.notebook.magics import ContainerMagics

PLAIN_KEY = "cli0token0abcdef0123456789"  # shaped like no known key: only knowing the configured one helps


@pytest.fixture(params=SHAPES)
def proxy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoProxy]:
    """A proxy that answers 401 with the Authorization header in its error, configured as the backend."""
    with EchoProxy(status=401, shape=request.param) as echo:
        monkeypatch.setenv("CELLBOX_BASE_URL", echo.base_url)
        monkeypatch.setenv("CELLBOX_API_KEY", PLAIN_KEY)
        yield echo


@pytest.mark.parametrize("command", [["ls"], ["files", "cntr_abc"], ["rm", "cntr_abc", "cntr_def"]])
def test_the_cli_never_prints_an_echoed_key(
    proxy: EchoProxy, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main(command) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert proxy.seen and proxy.seen[0] == f"Bearer {PLAIN_KEY}"
    assert "401" in err and "[redacted]" in err
    assert list(leaks(out + err, PLAIN_KEY)) == []


def test_the_magics_never_show_an_echoed_key(proxy: EchoProxy) -> None:
    with pytest.raises(CellboxError) as caught:
        ContainerMagics(None).container("list")
    shown = "\n".join(caught.value._render_traceback_())  # type: ignore[attr-defined]  # what IPython displays
    assert proxy.seen and "401" in shown and "[redacted]" in shown
    assert list(leaks(shown, PLAIN_KEY)) == []
