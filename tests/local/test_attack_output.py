"""Attack: output a server must hold or parse. Images weren't capped like text (150 x 4 MiB images took the
server from 172 MB to 2.5 GB); a kernel, which runs the hostile code, can put anything on its own sockets.

A run keeps at most MAX_IMAGES images and MAX_IMAGE_CHARS of them, and says what it dropped; messages that
don't parse or don't have the documented shape are skipped; the run still answers, and so do other containers."""

from __future__ import annotations

import time

from cellbox.local import kernel

IMAGES = """
import base64, os
from IPython.display import display
blob = base64.b64encode(os.urandom(3 << 20)).decode()  # 4 MiB of base64 each
for i in range(40):
    display({"image/png": blob}, raw=True)
print("shown")
"""


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_images_are_capped_and_the_rest_is_said(server, client, container, run, logs):
    before = _rss_kb(server.process.pid)
    call, _ = run(client, container.id, IMAGES)
    images = [o for o in call.outputs if o.type == "image"]
    assert 0 < len(images) <= kernel.MAX_IMAGES
    assert sum(len(o.url) for o in images) <= kernel.MAX_IMAGE_CHARS + 100 * len(images)
    text = logs(call)
    assert "shown" in text
    assert f"{40 - len(images)} image(s) not kept" in text
    assert _rss_kb(server.process.pid) - before < 400_000  # 160 MiB were shown; far less is held


FORGED = """
kernel = get_ipython().kernel
session, sock = kernel.session, kernel.iopub_socket
parent = kernel.get_parent()
# Unparsable: a bad signature.
sock.send_multipart([b"stream", b"<IDS|MSG>", b"bad-signature", b"{", b"{}", b"{}", b"{}"])
# Signed, but not the documented shape: content a list, parent header a string, traceback a number.
for msg_type, content in [("stream", [1, 2]), ("error", {"ename": 5, "traceback": 7}),
                          ("display_data", {"data": ["x"]}), ("execute_result", {"data": {"image/png": 12}})]:
    parts = [session.pack(session.msg_header(msg_type)), session.pack(parent["header"]), b"{}", session.pack(content)]
    sock.send_multipart([msg_type.encode(), b"<IDS|MSG>", session.sign(parts), *parts])
print("still here")
"""


def test_malformed_kernel_messages_are_skipped(server, client, container, run, logs):
    call, _ = run(client, container.id, FORGED)
    assert call.status == "completed"
    assert "still here" in logs(call)
    started = time.monotonic()
    assert logs(run(client, container.id, "print(6 * 7)")[0]).strip() == "42"
    assert time.monotonic() - started < 5


FLOOD = """
import sys
from IPython.display import display
for i in range(8000):
    display(i)
    print(i, file=sys.stderr, flush=True)
print("flooded")
"""


def test_an_output_flood_ends_with_an_answer(server, client, container, run, logs):
    started = time.monotonic()
    call, _ = run(client, container.id, FLOOD)
    assert call.status == "completed"
    assert time.monotonic() - started < 120
    text = logs(call)
    assert "flooded" in text or "some is lost" in text
    assert logs(run(client, container.id, "print('after')")[0]).strip().endswith("after")
