"""--model-quirks: the cellbox-local model misbehaving the way an LLM may, on a schedule tests can rely on."""

from __future__ import annotations

import ast

import pytest
from localhelp import respond

from cellbox.local.emulation.quirks import reformat
from cellbox.local.testing import running_server


@pytest.fixture(scope="module")
def quirky(tmp_path_factory, starts_processes):
    with running_server(tmp_path_factory.mktemp("quirky"), model_quirks="all", pool_size=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def rerunning(tmp_path_factory, starts_processes):
    with running_server(tmp_path_factory.mktemp("rerun"), model_quirks="rerun-on-error", pool_size=1) as srv:
        yield srv


def _calls(response) -> list:
    return [item for item in response.output if item.type == "code_interpreter_call"]


def test_the_schedule_of_no_call_and_incomplete(quirky, sdk, logs):
    """1st clean, 2nd no call, 3rd and 4th clean, 5th incomplete (not run), 6th clean: per container."""
    with sdk(quirky) as c:
        cid = c.containers.create(name="schedule").id
        seen = []
        for n in range(1, 7):
            response = respond(c, cid, f"hits = globals().get('hits', []) + [{n}]\nprint(hits)")
            calls = _calls(response)
            seen.append([call.status for call in calls])
            assert response.status == "completed"
        assert seen == [["completed"], [], ["completed"], ["completed"], ["incomplete"], ["completed"]]
        # Only the clean requests ran their code.
        assert logs(_calls(respond(c, cid, "print(hits)"))[0]) == "[1, 3, 4, 6]\n"
        # Another container has a schedule of its own: its 1st request is clean.
        other = c.containers.create(name="other").id
        assert [call.status for call in _calls(respond(c, other, "1"))] == ["completed"]


def test_reformat_runs_the_same_program_restyled(quirky, sdk, logs):
    with sdk(quirky) as c:
        cid = c.containers.create(name="reformat").id
        code = "x='a'\nprint(dict(k=x),[1,2])"
        (call,) = _calls(respond(c, cid, code))
        assert call.code == 'x = "a"\nprint(dict(k=x), [1, 2])'
        assert ast.dump(ast.parse(call.code)) == ast.dump(ast.parse(code))
        assert logs(call) == "{'k': 'a'} [1, 2]\n"


@pytest.mark.parametrize(
    "code",
    [
        "(getattr(__import__('sys'), 'cellbox_runtimes', {}).get('/mnt/data/r.py') "
        "or __import__('runpy').run_path('/mnt/data/r.py'))['run']('/mnt/data/q.json')",
        "f(a = 1, b='x' ,c=\"y\")\n",
        "s = 'it\\'s'\nt = r'\\d'\nu = f'{x}'\nv = '''a'''\n",
        "if x:\n    y=[1,\n       2]  # comment, here\n",
        "print(1)",
        "not python (",
    ],
)
def test_reformat_never_changes_meaning(code):
    restyled = reformat(code)
    try:
        tree = ast.dump(ast.parse(code))
    except SyntaxError:
        assert restyled == code  # what is not Python is left alone
        return
    assert restyled != code
    assert ast.dump(ast.parse(restyled)) == tree


def test_rerun_on_error_runs_failing_code_again(rerunning, sdk, logs):
    with sdk(rerunning) as c:
        cid = c.containers.create(name="rerun").id
        failing = "hits = globals().get('hits', 0) + 1\nraise ValueError(hits)"
        calls = _calls(respond(c, cid, failing))
        assert [(call.code, call.status) for call in calls] == [(failing, "completed")] * 2
        assert "ValueError: 1" in logs(calls[0]) and "ValueError: 2" in logs(calls[1])
        # max_tool_calls forbids the second call.
        calls = _calls(respond(c, cid, failing, max_tool_calls=1))
        assert len(calls) == 1 and "ValueError: 3" in logs(calls[0])
        # Code that succeeds runs once.
        assert len(_calls(respond(c, cid, "print(hits)"))) == 1


def test_ignore_limits_ignores_tool_choice_and_max_tool_calls(quirky, sdk):
    with sdk(quirky) as c:
        cid = c.containers.create(name="limits").id
        assert len(_calls(respond(c, cid, "1", tool_choice="none"))) == 1  # 1st request: clean otherwise
        respond(c, cid, "1")  # the 2nd is a no-call one
        calls = _calls(respond(c, cid, "raise ValueError", max_tool_calls=1))  # the 3rd
        assert len(calls) == 2


def test_quirky_streams_pass_strict_validation(quirky, sdk):
    with sdk(quirky) as c:
        cid = c.containers.create(name="stream").id
        finals = []
        for _ in range(5):
            events = list(
                c.responses.create(
                    model="cellbox-local",
                    input="raise KeyError",
                    tools=[{"type": "code_interpreter", "container": cid}],
                    stream=True,
                )
            )
            assert [e.sequence_number for e in events] == list(range(len(events)))
            finals.append([item.type for item in events[-1].response.output])
        call, message = "code_interpreter_call", "message"
        assert finals == [[call, call, message], [message], [call, call, message], [call, call, message],
                          [call, message]]  # fmt: skip


def test_unknown_quirks_and_profiles_are_refused(tmp_path):
    # Refused before a server starts, naming what is wrong.
    with pytest.raises(TypeError, match="bogus_option"), running_server(tmp_path, bogus_option=1):
        pass
    with pytest.raises(ValueError, match=r"unknown model quirk.*sulk"), running_server(tmp_path, model_quirks="sulk"):
        pass
    with pytest.raises(ValueError, match="unknown profile 'azure'"), running_server(tmp_path, profile="azure"):
        pass
