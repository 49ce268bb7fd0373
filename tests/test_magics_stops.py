"""What a cell says when its run is stopped or its process dies, in a real Jupyter kernel against the real local
server: the interrupt says whether the container kept its state, and a process killed right after running out of
memory is said to have, with what to do."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from kernelhelp import Kernel, text


@pytest.fixture(scope="module")
def kernel(cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("stops-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLBOX_", "OCI_", "JPY_"))}
    env.update(**cloud_environment, CELLBOX_STATE_DIR=str(home), XDG_CONFIG_HOME=str(home))
    k = Kernel(env)
    assert k.run("%load_ext cellbox")[0] == "ok"
    yield k
    k.run("%container delete")
    k.stop()


def _stopped(kernel: Kernel, code: str) -> str:
    """`code` run and the kernel interrupted (as Jupyter's Stop does) 1.5 s into it; the one line the cell failed
    with."""
    timer = threading.Timer(1.5, os.kill, (kernel.manager.provisioner.process.pid, signal.SIGINT))
    timer.start()
    started = time.monotonic()
    status, out = kernel.run(code)
    timer.join()
    assert status == "error" and time.monotonic() - started < 40, out
    error = next(m for m in out if m["type"] == "error")
    assert error["ename"] == "Interrupted" and len(error["traceback"]) == 1, error
    return str(error["evalue"])


def test_stop_says_the_container_kept_its_state_when_the_code_stopped(kernel: Kernel) -> None:
    said = _stopped(kernel, "%%container\nimport time\nkept = 1\ntime.sleep(60)")
    assert said.endswith(
        "the cell was stopped while it ran; the container keeps its state up to where the code stopped"
    )
    status, out = kernel.run("%%container\nkept")
    assert status == "ok" and out[-1]["data"]["text/plain"] == "1"


def test_stop_says_the_process_restarted_when_the_code_caught_the_interrupt(kernel: Kernel) -> None:
    kernel.run("%%container\nbefore = 1")
    code = (
        "%%container\nimport time\nwhile True:\n    try:\n        time.sleep(0.2)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    said = _stopped(kernel, code)
    assert "its code did not stop at the interrupt (it caught KeyboardInterrupt" in said, said
    assert "the container's Python process was restarted: variables and imports are gone" in said
    assert "keeps its state" not in said
    status, out = kernel.run("%%container\nprint('before' in globals())")
    assert status == "ok" and text(out, "stdout") == "False\n"  # it was true: restarted
    assert "Python process was restarted before this cell" in text(out, "stderr")  # and the next cell says so


def test_a_process_killed_right_after_running_out_of_memory_says_so_with_advice(kernel: Kernel) -> None:
    code = (
        "%%container\nimport os, signal\nchunks = []\ntry:\n    while True:\n"
        "        chunks.append(bytearray(32 * 2**20))\nexcept MemoryError:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # as native code that can't go on does"
    )
    status, out = kernel.run(code)
    assert status == "error", out
    error = next(m for m in out if m["type"] == "error")
    said = error["evalue"]
    assert "not by the memory limit" not in said, said
    assert "it was killed right after running out of memory" in said, said
    assert "`--memory 4g` in a notebook), or less data at once" in said
