"""A container whose Python state is gone says so before its next run: `state_lost` beside the API's fields."""

from __future__ import annotations

import pytest

from cellbox.local.testing import running_server


@pytest.mark.integration
def test_a_restarted_server_says_which_containers_lost_their_state(tmp_path, sdk, run, logs) -> None:
    data = tmp_path / "d"
    with running_server(data, pool_size=0) as srv, sdk(srv) as client:
        box = client.containers.create(name="kept")
        run(client, box.id, "x = 41")
        listed = client.containers.list().data
        assert [getattr(b, "state_lost", None) for b in listed] == [None]
        assert getattr(client.containers.retrieve(box.id), "state_lost", None) is None
    with running_server(data, pool_size=0) as srv, sdk(srv) as client:
        # The files are kept; the kernel (and `x`) went with the old server, and the listing says so.
        [again] = client.containers.list().data
        assert again.id == box.id and again.status == "running"
        assert again.state_lost == "the server restarted since its last run"
        assert client.containers.retrieve(box.id).state_lost == "the server restarted since its last run"
        call, _ = run(client, box.id, "'x' in globals()")
        assert "variables and imports of earlier runs are gone" in logs(call)
        # The run started a new kernel: what it makes is kept again.
        assert getattr(client.containers.retrieve(box.id), "state_lost", None) is None
