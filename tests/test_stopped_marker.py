"""`cellbox stop` leaves a mark beside the endpoint file that only a server serving again takes away."""

from __future__ import annotations

from pathlib import Path

from cellbox.common import endpoint


def test_a_stopped_server_stays_stopped_until_one_serves_again(tmp_path: Path) -> None:
    file = tmp_path / "state" / "server.json"
    assert not endpoint.stopped(file)
    endpoint.mark_stopped(file)  # its folder may not exist yet: `cellbox stop` before any server ran
    assert endpoint.stopped(file)
    endpoint.mark_stopped(file)
    assert endpoint.stopped(file)
    endpoint.write(file, "http://127.0.0.1:1/v1", "tok")
    assert not endpoint.stopped(file)
    endpoint.clear_stopped(file)  # nothing to clear: no error
    assert not endpoint.stopped(file)
