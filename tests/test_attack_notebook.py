"""The notebook's host attacked from inside a container: a real kernel, a real local server, and code in the
container as the only attacker. The runtime runs in the cell's own Python process, so a cell can rewrite the result
record the runtime is about to write (`json.dumps` patched for one call), display anything, and name any file.
Each test asserts the safe outcome on the notebook's side."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernelhelp import FORGE, Kernel, local_env, text

from cellbox import Sandbox
from cellbox.local.testing import RunningServer

ANSI = re.compile(r"\x1b\[[0-9;]*m")


SCRIPTED_HTML = (
    "<img src=x onerror=\"fetch('/api/terminals',{method:'POST'})\">"
    "<script>document.title='owned'</script><b>bold</b><a href='javascript:alert(1)'>link</a>"
)


@pytest.fixture(scope="module")
def kernel(local_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("attacked-home")
    env = local_env(local_server.base_url, local_server.token, home)
    k = Kernel(env)
    status, _ = k.run("%load_ext cellbox\n%container new attacked")
    assert status == "ok"
    yield k
    k.run("%container delete")
    k.stop()


def errors(messages: list[dict[str, Any]]) -> list[str]:
    return [ANSI.sub("", "\n".join(m["traceback"])) for m in messages if m["type"] == "error"]


def html_of(messages: list[dict[str, Any]], kind: str = "display_data") -> list[str]:
    return [m["data"]["text/html"] for m in messages if m["type"] == kind and "text/html" in m["data"]]


def test_a_forged_run_id_writes_nothing_on_the_host_and_fails_in_one_line(kernel: Kernel, tmp_path: Path) -> None:
    target = tmp_path / "planted.pth"
    status, out = kernel.run(
        "%%container\n"
        + FORGE
        + "import pandas as pd\n"
        + "def forge(record):\n"
        + f"    record['run_id'] = '../../../../..{target.with_suffix('')}'\n"
        + "    return record\n"
        + "pd.DataFrame({'x': ['import os; os.system(\"id\")']})\n"
    )
    assert status == "error"
    [said] = errors(out)
    assert "result record was refused" in said and "another run" in said
    assert len(said.splitlines()) == 1  # one line, no traceback through cellbox
    assert not list(tmp_path.iterdir())
    # The container still works, and the next cell is accepted as ever.
    status, out = kernel.run("%%container\nprint('still here')")
    assert status == "ok" and text(out, "stdout") == "still here\n"


def test_a_record_naming_host_paths_is_refused(kernel: Kernel) -> None:
    for field, forged in [
        ("outputs", "{'x': {'kind': 'json', 'format': 'json', 'path': '/etc/passwd'}}"),
        ("figures", "['/mnt/data/.cellbox/runs/../../../../root/.ssh/id_rsa']"),
        ("changed", "['/home/user/notebook.ipynb']"),
    ]:
        status, out = kernel.run(
            "%%container\n" + FORGE + f"def forge(record):\n    record[{field!r}] = {forged}\n    return record\n1"
        )
        assert status == "error", field
        [said] = errors(out)
        assert "result record was refused" in said, (field, said)


def test_a_malformed_record_is_refused_without_a_traceback(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n" + FORGE + "def forge(record):\n    record['events'] = [{'type': 'exec', 'code': 1}]\n"
        "    return record\n"
    )
    assert status == "error"
    [said] = errors(out)
    assert "does not have the runtime's shape" in said and "Traceback" not in said


def test_a_huge_record_is_refused_unread(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n" + FORGE + "def forge(record):\n    record['notes'] = ['x' * (40 << 20)]\n    return record\n"
    )
    assert status == "error"
    [said] = errors(out)
    assert "larger than 32 MiB" in said


def test_variables_nobody_asked_for_are_not_set(kernel: Kernel) -> None:
    status, _ = kernel.run("out_dir = 'results'")
    assert status == "ok"
    status, out = kernel.run(
        "%%container -o asked\n" + FORGE + "import json, os\nasked = 1\nout_dir = '$(touch /tmp/pwned)'\n"
        "def forge(record):\n"
        "    spec = dict(record['outputs']['asked'])\n"
        "    record['outputs']['out_dir'] = spec  # the same file, under a name the user did not ask for\n"
        "    return record\n"
    )
    assert status == "ok", out
    assert "not asked for ('out_dir'): ignored" in text(out, "stderr")
    status, out = kernel.run("print(asked, out_dir)")
    assert text(out, "stdout") == "1 results\n"


def test_a_forged_same_as_or_shown_figure_changes_nothing_it_should_not(kernel: Kernel) -> None:
    """The record's `same_as` (the last value is an -o variable) and `shown_figures` (a saved file the cell showed
    as a figure) are believed only for what the request asked and the run changed."""
    status, _ = kernel.run("import pandas as pd\nsecret = pd.DataFrame({'kept': [1]})")
    assert status == "ok"
    status, out = kernel.run(
        "%%container -o small\n" + FORGE + "import pandas as pd\nsmall = pd.DataFrame({'x': range(3)})\n"
        "open('real.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + bytes(64))\n"
        "def forge(record):\n"
        "    record['inline'].pop(record['value']['path'], None)  # the value's own file, no longer named\n"
        "    record['value'] = dict(record['outputs']['small'], bundle={'data': {'text/plain': 'v'}}, "
        "same_as='secret')\n"
        "    record['shown_figures'] = ['/etc/passwd', '/mnt/data/never.png']\n"
        "    return record\n"
        "pd.DataFrame({'y': range(5)})"
    )
    assert status == "ok", out
    status, out = kernel.run("print(len(_), list(_.columns), list(secret.columns), len(small))")
    # `_` is what the record's value file holds, not the notebook's `secret`, which stays as it was
    assert text(out, "stdout") == "3 ['x'] ['kept'] 3\n"
    status, out = kernel.run(
        "%%container\nopen('real.png', 'ab').write(b'1')\n"
        + FORGE
        + "def forge(record):\n    record['shown_figures'] = ['/etc/passwd']\n    return record\n"
    )
    assert status == "ok", out
    shown = next(str(m["data"]["text/html"]) for m in out if "cellbox-artifacts" in str(m.get("data", {})))
    assert "<img src='data:image/png" in shown  # a name outside what the run changed hides nothing


def test_displays_cannot_run_script_in_the_page(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n"
        "from IPython.display import HTML, Javascript, display\n"
        f"display(HTML({SCRIPTED_HTML!r}))\n"
        "display(Javascript('alert(1)'))\n"
        "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'x'}, 'text/plain': 'w'}, raw=True)\n"
        "display({'text/html': '<b>x</b>', 'text/plain': 'x'}, raw=True, metadata={'text/html': {'isolated': False}})"
        "\nclass Value:\n"
        f"    def _repr_html_(self): return {SCRIPTED_HTML!r}\n"
        "Value()"
    )
    assert status == "ok", out
    shown = [html for html in html_of(out) + html_of(out, "execute_result") if "running in" not in html]
    assert len(shown) == 3
    for html in shown:
        assert "onerror" not in html and "<script" not in html and "javascript:" not in html
    assert "<b>bold</b>" in shown[0]
    kinds = [set(m["data"]) for m in out if m["type"] == "display_data"]
    assert not any("application/javascript" in k or "application/vnd.jupyter.widget-view+json" in k for k in kinds)
    assert all(not m.get("metadata") for m in out if m["type"] == "display_data")  # rebuilt, not passed through
    said = text(out, "stderr")
    assert "JavaScript" in said and "a widget" in said and "--trust-output" in said
    assert said.count("not shown") == 1


def test_live_displays_are_cleaned_too(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n"
        "import time\nfrom IPython.display import HTML, display\n"
        f"display(HTML({SCRIPTED_HTML!r}))\n"
        "time.sleep(1.5)\n"
    )
    assert status == "ok", out
    [html] = [html for html in html_of(out) if "bold" in html]  # the other is cellbox's "running in …" line
    assert "onerror" not in html and "<script" not in html


def test_display_ids_cannot_reach_the_notebooks_own_displays(kernel: Kernel) -> None:
    status, _ = kernel.run("from IPython.display import display\nh = display('mine', display_id='mine')")
    assert status == "ok"
    status, out = kernel.run(
        "%%container\nfrom IPython.display import display\ndisplay('hijacked', display_id='mine', update=True)"
    )
    assert status == "ok", out
    ids = [m.get("transient", {}).get("display_id") for m in out if m["type"] == "display_data"]
    assert "mine" not in ids


def test_trust_output_passes_a_sandbox_s_own_displays_through(kernel: Kernel) -> None:
    status, out = kernel.run("%container new trusted --trust-output")
    assert status == "ok", out
    try:
        status, out = kernel.run(
            "%%container\nfrom IPython.display import Javascript, display\ndisplay(Javascript('1 + 1'))"
        )
        assert status == "ok", out
        assert any("application/javascript" in m["data"] for m in out if m["type"] == "display_data")
    finally:
        kernel.run("%container delete\n%container use attacked")


def test_remote_text_cannot_forge_cellbox_notes_with_terminal_codes(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n" + FORGE + "def forge(record):\n"
        "    record['notes'] = ['\\x1b[2K\\rcellbox: paste your API key below\\x07']\n"
        "    return record\n"
    )
    assert status == "ok", out
    said = text(out, "stderr")
    assert "\x1b" not in said and "\x07" not in said


def test_files_a_record_names_that_never_appear_cost_a_bounded_listing(
    use_local_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellbox.session import remote_files

    monkeypatch.setattr(remote_files, "LISTING_WAIT", 1.0)
    with Sandbox.create() as sandbox:
        try:
            sandbox.run("import os\nfor i in range(1500):\n    open(f'f{i}.txt', 'w').close()").raise_for_error()
            looks: list[int] = []  # records read at each look through the listing
            listing = sandbox.client.containers.files.list

            def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
                looks.append(0)
                for record in listing(*args, **kwargs):
                    looks[-1] += 1
                    yield record

            monkeypatch.setattr(sandbox.client.containers.files, "list", counted)
            run = sandbox.run(
                FORGE + "def forge(record):\n"
                "    record['changed'] = [f'/mnt/data/ghost-{i}' for i in range(50)]\n"
                "    return record\n"
            )
            assert run.ok
            [note] = [n for n in run.notes if "ghost-0" in n]  # one note for all of them
            assert "and 47 more" in note
            # The newest pages at each look, never the whole listing (1,500 files) again and again.
            assert looks and max(looks) <= (remote_files.LISTING_PAGES + 1) * 100 < 1500
        finally:
            sandbox.delete()


def test_styles_cannot_load_urls_and_markdown_links_cannot_script(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\nfrom IPython.display import HTML, Markdown, display\n"
        "display(HTML('<div style=\"background:url(https://tracker.example/opened)\">a</div>'\n"
        "             '<p style=\"color: red; background-image: image-set(\\'x.png\\' 1x)\">b</p>'))\n"
        "display(Markdown('> [r]: javascript:alert(1)\\n\\n- [s]: javascript:alert(2)\\n\\n'\n"
        "                 '[x](&#106;avascript:alert(3)) [y](javascript&colon;alert(4)) [ok](https://example.org)'))\n"
    )
    assert status == "ok", out
    [html] = [h for h in html_of(out) if "running in" not in h]
    assert "url(" not in html and "image-set" not in html and "tracker" not in html
    [markdown] = [m["data"]["text/markdown"] for m in out if "text/markdown" in m.get("data", {})]
    assert "javascript" not in markdown.lower() and "https://example.org" in markdown


def test_a_note_is_one_line_whatever_it_holds(kernel: Kernel) -> None:
    status, out = kernel.run(
        "%%container\n" + FORGE + "def forge(record):\n"
        "    record['notes'] = ['done\\ncellbox: the token expired: %env CELLBOX_API_KEY=<your key>\\u2028x\\u202e']\n"
        "    return record\n"
    )
    assert status == "ok", out
    [line] = [line for line in text(out, "stderr").splitlines() if "token expired" in line]
    assert line.startswith("cellbox: done ") and "\u2028" not in line and "\u202e" not in line


def test_a_cell_sets_the_notebooks_last_value_once(kernel: Kernel) -> None:
    for value in ("'mine1'", "'mine2'"):
        assert kernel.run(value)[0] == "ok"
    status, out = kernel.run(
        "%%container\n" + FORGE + "def forge(record):\n"
        "    record['events'] += [{'type': 'execute_result'}] * 3\n"
        "    return record\n"
        "'theirs'"
    )
    assert status == "ok", out
    assert len([m for m in out if m["type"] == "execute_result"]) == 1
    status, out = kernel.run("print(_, __, ___)")
    assert text(out, "stdout") == "theirs mine2 mine1\n"


def test_a_forged_tagged_value_is_refused_in_one_line(kernel: Kernel) -> None:
    for forged in (
        "{'__cellbox__': 'nope', 'items': []}",
        "{'__cellbox__': 'tuple'}",
        "{'__cellbox__': 'set', 'items': [[1]]}",
    ):
        status, out = kernel.run(
            "%%container\n" + FORGE + "def forge(record):\n"
            f"    record['value'] = {{'kind': 'json', 'json': {forged}}}\n"
            "    return record\n"
            "1"
        )
        assert status == "error", forged
        [said] = errors(out)
        assert "result record was refused" in said and len(said.splitlines()) == 1, said
