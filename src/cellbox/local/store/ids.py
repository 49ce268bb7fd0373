"""The ids this server issues, and the test that a string is one of them.

Ids name folders and files in the data dir, so a string from a URL is checked against the exact shape the
server issues before it is used for anything: `.` or `..` (which URL decoding hands over from `%2E`), a `/`,
or any other stranger is a 404 without touching the disk.

Ids sort by creation time (their first 16 hex digits are the creation time, as the cloud's start with it), so a
list's `after` cursor works even when the object it names was deleted since.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import time

_BASE62 = string.digits + string.ascii_letters
_lock = threading.Lock()
_last_stamp = 0

CONTAINER = re.compile(r"cntr_[0-9a-f]{48}")
CONTAINER_FILE = re.compile(r"cfile_[0-9a-f]{32}")
FILE = re.compile(r"file-[0-9a-f]{16}[0-9A-Za-z]{6}")
RESPONSE = re.compile(r"resp_[0-9a-f]{48}")


def _stamp() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process."""
    global _last_stamp
    with _lock:
        now = max(time.time_ns(), _last_stamp + 1)
        _last_stamp = now
        return now


def _time_hex() -> str:
    seconds, frac = divmod(_stamp(), 1_000_000_000)
    return f"{seconds:08x}{frac:08x}"


def new_container_id() -> str:
    return "cntr_" + _time_hex() + secrets.token_hex(16)


def new_container_file_id() -> str:
    return "cfile_" + _time_hex() + secrets.token_hex(8)


def new_file_id() -> str:
    return "file-" + _time_hex() + "".join(secrets.choice(_BASE62) for _ in range(6))


def new_response_id() -> str:
    return "resp_" + _time_hex() + secrets.token_hex(16)


def new_item_id(prefix: str) -> str:
    """The id of an item in a response (`ci_...`, `msg_...`): never looked up, so only unique."""
    return prefix + _time_hex() + secrets.token_hex(16)


def is_container_id(value: str) -> bool:
    return CONTAINER.fullmatch(value) is not None


def is_container_file_id(value: str) -> bool:
    return CONTAINER_FILE.fullmatch(value) is not None


def is_file_id(value: str) -> bool:
    return FILE.fullmatch(value) is not None


def is_response_id(value: str) -> bool:
    return RESPONSE.fullmatch(value) is not None
