"""Attack: output a server must hold or parse. Images weren't capped like text (150 x 4 MiB images took the
server from 172 MB to 2.5 GB); a kernel, which runs the hostile code, can put anything on its own sockets.

A run keeps at most MAX_IMAGES images and MAX_IMAGE_CHARS of them, and says what it dropped; frames that
don't parse or don't have the documented shape are skipped, one too long is skipped without being held; the run
still answers, and so do other containers."""

from __future__ import annotations

import struct
import time

from cellbox.local.jail import kernel

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
import json, socket, struct, sys
runs = socket.socket(fileno=int(sys.argv[1]))  # the kernel's own socket to the server
def frame(body):
    runs.sendall(struct.pack("!I", len(body)) + body)
frame(b"{not json")
for message in [[1, 2], {"image": 5}, {"image": "javascript:alert(1)"}, {"done": "x"}, {"done": 10**9},
                {"ready": True}, "done", None]:
    frame(json.dumps(message).encode())
frame(b"[" * 4000)  # nested past the JSON parser's depth
frame(b"[" + b"[]," * 300_000 + b"[]]")  # long and not an image: dropped unparsed
frame(b"x" * (MAX_FRAME - 16))  # longer than the run has room for: skipped as it arrives, counted as an image
print("still here")
"""


def test_malformed_kernel_frames_are_skipped(server, client, container, run, logs):
    call, _ = run(client, container.id, FORGED.replace("MAX_FRAME", str(kernel.MAX_FRAME)))
    assert call.status == "completed"
    assert "still here" in logs(call)
    assert "1 image(s) not kept" in logs(call)  # the frame too long to hold, counted as the image it claims
    assert not [o for o in call.outputs if o.type == "image"]
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


def test_frames_are_read_however_the_bytes_arrive():
    """Frames split anywhere (here, the short ones byte by byte, a length split in two); one longer than the room
    skipped as it arrives, never held; a long one that is not an image frame, and one that isn't JSON, dropped
    (counted); past the most a run can have, or at one longer than the kernel ever sends, no more are read."""
    frames = kernel._Frames()
    long = struct.pack("!I", kernel.MAX_FRAME - 10) + b"x" * (kernel.MAX_FRAME - 10)
    image = kernel._frame({"image": "data:image/png;base64," + "A" * 10_000})  # as jail_kernel.py writes one
    short = kernel._frame({"image": "data:image/png;base64,AAAA"})
    rest = struct.pack("!I", 9) + b"{not json" + kernel._frame([[]] * 5_000) + kernel._frame({"done": 1, "error": None})
    # The long one comes when the run has no room left for it; the others while it has.
    room, none = kernel.MAX_FRAME, kernel.SMALL_FRAME
    pieces = [(short[i : i + 1], room) for i in range(len(short))] + [(long[:2], none), (long[2:7], none)]
    pieces += [(long[i : i + (1 << 20)], none) for i in range(7, len(long), 1 << 20)] + [(image, room)]
    pieces += [(rest[i : i + 1], room) for i in range(len(rest))]
    seen = []
    for piece, limit in pieces:
        seen += frames.feed(piece, limit=limit)
        assert len(frames._buffer) < 100_000  # the long frame (16 MiB) was never held
    assert seen == [
        {"image": "data:image/png;base64,AAAA"},
        kernel._Frames.TOO_BIG,
        {"image": "data:image/png;base64," + "A" * 10_000},
        None,  # not JSON
        None,  # long, and not an image frame
        {"done": 1, "error": None},
    ]
    assert not frames.over
    assert len(frames.feed(kernel._frame({}) * (kernel.MAX_FRAMES + 5))) == kernel.MAX_FRAMES and frames.over
    beyond = kernel._Frames()
    assert beyond.feed(struct.pack("!I", kernel.MAX_FRAME + 1) + b"x" * 100) == [] and beyond.over


HUGE_FRAME = """
import socket, struct, sys
runs = socket.socket(fileno=int(sys.argv[1]))
runs.sendall(struct.pack("!I", (4 << 30) - 1) + b"x" * 65536)  # 4 GiB said
print("sent")
"""


def test_a_frame_longer_than_the_kernel_sends_restarts_it_at_once(server, client, container, run, logs):
    """Skipping 4 GiB would swallow the run's real end, and the run would wait for its time limit."""
    started = time.monotonic()
    call, _ = run(client, container.id, HUGE_FRAME)
    assert time.monotonic() - started < 5
    assert call.status == "failed" and "sent its kernel's messages itself" in logs(call)
    assert logs(run(client, container.id, "print('again')")[0]) == "again\n"


TINY_FRAMES = """
import socket, struct, sys, time
runs = socket.socket(fileno=int(sys.argv[1]))
end = time.monotonic() + 20
while time.monotonic() < end:
    runs.sendall(struct.pack("!I", 0) * 16384)  # empty frames, each one the server's to look at
print("flooded for 20 s")
"""


def test_a_flood_of_tiny_frames_restarts_that_kernel_not_the_server(server, client, container, run, logs):
    """Every frame costs the event loop all containers share: a kernel sending more than a run can have is
    restarted at once (it was 2.6 s a bystander's `print(1)` while one flooded)."""
    other = client.containers.create(name="bystander")
    try:
        run(client, container.id, "kept = 1")
        started = time.monotonic()
        call, _ = run(client, container.id, TINY_FRAMES)
        assert time.monotonic() - started < 5
        assert call.status == "failed" and "sent its kernel's messages itself" in logs(call)
        started = time.monotonic()
        assert logs(run(client, other.id, "print(1)")[0]) == "1\n"
        assert time.monotonic() - started < 1
        assert "restarted (variables lost)" in logs(call)
        assert logs(run(client, container.id, "print('kept' in globals())")[0]) == "False\n"  # a new kernel
    finally:
        client.containers.delete(other.id)


def test_many_small_images_are_capped_by_the_kernel_not_punished(server, client, container, run, logs):
    code = "from IPython.display import display\nfor _ in range(100):\n"
    code += "    display({'image/png': 'iVBORw0KGgo='}, raw=True)\nprint('shown')"
    call, _ = run(client, container.id, code)
    assert call.status == "completed"
    assert len([o for o in call.outputs if o.type == "image"]) == kernel.MAX_IMAGES
    assert f"{100 - kernel.MAX_IMAGES} image(s) not kept" in logs(call) and "shown" in logs(call)
