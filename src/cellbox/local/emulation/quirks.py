"""`--model-quirks`: the `cellbox-local` model misbehaving the way an LLM may, deterministically so tests can rely
on it (responses/model.py asks here what each request gets).

The n-th request naming a container (counted per container, any request, from 1; a new `{"type": "auto"}` container
is on its 1st, a reused one counts on) is quirky when n % 3 == 2 (the 2nd, 5th, 8th...), so the 1st request and the
one after each quirky one are always clean:

- `no-call`: on quirky requests, a reply without any call (the code is not run);
- `incomplete`: on quirky requests, a call that ends `incomplete` without running the code (with `no-call` too:
  no-call on the 2nd, 8th, 14th..., incomplete on the 5th, 11th...);
- `reformat`: every call's code is restyled as a model retyping it might (single quotes to double, one space
  around a top-level `=` and after a comma, none around a keyword's `=`); the program is the same (its AST is);
  code with nothing to restyle gains or loses its final newline;
- `rerun-on-error`: after a call whose code raised, a second call runs the same code again, unless
  `max_tool_calls` is 1;
- `ignore-limits`: `max_tool_calls` and `tool_choice` are ignored, as by a backend that lacks them.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections import OrderedDict

# The misbehaviours --model-quirks can turn on (the module docstring says when each happens).
QUIRKS = ("rerun-on-error", "reformat", "no-call", "incomplete", "ignore-limits")


def parse_quirks(text: str | None) -> frozenset[str]:
    """The quirks a --model-quirks value turns on ('all' or a comma list); ValueError naming an unknown one."""
    given = {q.strip() for q in (text or "").split(",") if q.strip()}
    if "all" in given:
        return frozenset(QUIRKS)
    unknown = given - set(QUIRKS)
    if unknown:
        raise ValueError(f"unknown model quirk(s) {', '.join(sorted(unknown))}: expected all or {', '.join(QUIRKS)}")
    return frozenset(given)


class RequestCounter:
    """How many requests have named each container (the quirks' clock); bounded, oldest forgotten first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def next(self, container_id: str) -> int:
        count = self._counts.pop(container_id, 0) + 1
        self._counts[container_id] = count
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)
        return count


def misbehaviour(quirks: frozenset[str], nth: int) -> str | None:
    """`no-call`, `incomplete` or None: what the n-th request on a container gets."""
    if nth % 3 != 2:
        return None
    if {"no-call", "incomplete"} <= quirks:
        return "no-call" if nth % 6 == 2 else "incomplete"
    for quirk in ("no-call", "incomplete"):
        if quirk in quirks:
            return quirk
    return None


# -- reformat ---------------------------------------------------------------------------------------------------


def reformat(code: str) -> str:
    """The same program restyled (quotes, spacing), as a model retyping code might; `code` itself when it is not
    valid Python or the restyled text would not be the same program."""
    try:
        before = ast.dump(ast.parse(code))
        edits = _edits(code)
    except (SyntaxError, ValueError, tokenize.TokenError, IndentationError):
        return code
    restyled = code
    for start, end, text in sorted(edits, reverse=True):
        restyled = restyled[:start] + text + restyled[end:]
    if restyled == code:
        restyled = code.rstrip("\n") if code.endswith("\n") else code + "\n"
    try:
        same = ast.dump(ast.parse(restyled)) == before
    except SyntaxError:
        same = False
    return restyled if same else code


def _edits(code: str) -> list[tuple[int, int, str]]:
    starts = [0]
    for line in code.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
    edits: list[tuple[int, int, str]] = []
    depth = 0

    def gap(left: tokenize.TokenInfo, right: tokenize.TokenInfo, text: str) -> None:
        """Sets the blank between two tokens of one line to `text` (never across a line, comment or `\\`)."""
        if left.end[0] != right.start[0] or right.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            return
        start, end = offset(left.end), offset(right.start)
        if code[start:end].strip(" \t") == "" and code[start:end] != text:
            edits.append((start, end, text))

    for i, token in enumerate(tokens):
        if token.type == tokenize.STRING:
            quoted = _double_quoted(token.string)
            if quoted != token.string:
                edits.append((offset(token.start), offset(token.end), quoted))
        elif token.type == tokenize.OP:
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth = max(0, depth - 1)
            elif token.string == "," and i + 1 < len(tokens) and tokens[i + 1].string not in ")]}":
                gap(token, tokens[i + 1], " ")
            elif token.string == "=" and 0 < i < len(tokens) - 1:
                spacing = " " if depth == 0 else ""
                gap(tokens[i - 1], token, spacing)
                gap(token, tokens[i + 1], spacing)
    return edits


def _double_quoted(literal: str) -> str:
    """A single-quoted string literal in double quotes, when that changes nothing else (no `"` or `\\` in it)."""
    prefix = literal[: len(literal) - len(literal.lstrip("bBrRuUfF"))]
    body = literal[len(prefix) :]
    if body.startswith("'''") or not body.startswith("'"):
        return literal
    inner = body[1:-1]
    if '"' in inner or "\\" in inner:
        return literal
    return f'{prefix}"{inner}"'
