"""Attack: a kernel killed from outside (an operator, the OOM killer, a crash). The next run "completed" with a
NameError, and nothing said the kernel had restarted.

The next run starts a new kernel and says first, in its logs, that the Python state was lost and why."""

from __future__ import annotations

import os
import signal

import pytest
from localhelp import processes_mentioning, run_logs, sdk

from cellbox.local.testing import running_server, wait_until


@pytest.mark.integration
def test_a_kernel_killed_from_outside_is_reported_at_the_next_run(tmp_path):
    # No warm pool: a warm kernel's command line names the folder it had before it became a container's.
    with running_server(tmp_path / "data", pool_size=0) as server, sdk(server) as client:
        _kill_and_run(server, client)


def _kill_and_run(server, client) -> None:
    container = client.containers.create(name="victim")
    assert run_logs(client, container.id, "state = 'kept'\nprint(state)").strip() == "kept"
    folder = str(server.data_dir / "containers" / container.id)
    jails = processes_mentioning(folder)
    assert jails, "the container's jail"
    for pid in jails:
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: not processes_mentioning(str(server.data_dir / "containers" / container.id)), what="the jail to go"
    )
    out = run_logs(client, container.id, "print('state' in globals())")
    note, rest = out.split("\n", 1)
    assert "restarted before this run" in note and "ended from outside" in note
    assert rest.strip() == "False"
    # And only once: the run after that has nothing to say.
    assert run_logs(client, container.id, "print(2)").strip() == "2"
