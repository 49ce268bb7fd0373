"""The rule a container name follows where cellbox makes one from what a person typed (the sidebar's form and its
server extension): short, and only characters that read the same in a shell line, a URL and a file name.
The sidebar's copy (jupyter_extension/src/names.ts) is checked against this one on tests/format_cases.json."""

from __future__ import annotations

import re

__all__ = ["NAME_MAX", "container_name_problem"]

NAME_MAX = 64
_ALLOWED = re.compile(r"[A-Za-z0-9._-]")
_FIRST = re.compile(r"[A-Za-z0-9]")


def container_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a new container's name, in one line; None when it is a good one."""
    if not name:
        return "a container needs a name"
    if len(name) > NAME_MAX:
        return f"a container name has at most {NAME_MAX} characters; this one has {len(name)}"
    bad = list(dict.fromkeys(char for char in name if not _ALLOWED.fullmatch(char)))
    if bad:
        shown = ", ".join(f"'{char}'" for char in bad)
        return f"a container name has only letters, digits, '-', '_' and '.'; not {shown}"
    if not _FIRST.fullmatch(name[0]):
        return "a container name starts with a letter or a digit"
    return None
