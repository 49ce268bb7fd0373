"""What a notebook shows of large transfers and of a run's files, in a real kernel against the real local server:
one progress line per cell from the first row serialized to the last row read, previews that say how much of a
file they show, a large last value that says it is partial, and "save to the notebook's folder" buttons that work
from the kernel while the gallery itself stays static HTML."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernelhelp import WIDGET_VIEW, Kernel, plain, text, user_env, widget_text
from nbclient import NotebookClient

ROWS = 2_000_000  # about 50 MB in memory and 30 MB as Parquet: well over progress.MIN_BYTES
MAKE_BIG = (
    "import numpy as np, pandas as pd\n"
    "rng = np.random.default_rng(0)\n"
    f"big = pd.DataFrame({{'a': rng.integers(0, 1000, {ROWS}), 'b': rng.normal(size={ROWS}),\n"
    f"                    's': pd.Series(rng.integers(0, 10**6, {ROWS})).astype(str)}})"
)
FIRST_SHOWN = 0.5  # seconds from a transfer's start to its progress line
QUIET_AFTER_DONE = 0.5  # seconds the cell may take after its line says done (showing what it brought back)
SAVE_MIME = "application/vnd.cellbox.save+json"
X = "\N{MULTIPLICATION SIGN}"  # as pandas writes a frame's size in HTML


@pytest.fixture(scope="module")
def kernel(
    cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Kernel, Path]]:
    """A kernel working in a folder of its own, as Jupyter starts one in its notebook's folder."""
    home = tmp_path_factory.mktemp("kernel-home")
    folder = tmp_path_factory.mktemp("notebook-folder")
    env = user_env(cloud_environment, home)
    k = Kernel(env)
    status, out = k.run(
        f"import os\nos.chdir({str(folder)!r})\n%load_ext cellbox\n{MAKE_BIG}\n%container new transfers"
    )
    assert status == "ok", out
    yield k, folder
    k.run("%container delete")
    k.stop()


def progress_lines(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The states of the cell's progress line, in order: its display, each value its live widget's line was set
    to (where the display is a widget), and every update of the display (the last one: the line as saved)."""
    first = next(m for m in messages if m["type"] == "display_data" and "cellbox-progress" in html(m))
    display_id = first["transient"]["display_id"]
    updates = [m for m in messages if m.get("transient", {}).get("display_id") == display_id]
    if WIDGET_VIEW not in first["data"]:
        return updates
    return [*widget_text(messages, first, 1), *updates[1:]]


def html(message: dict[str, Any]) -> str:
    return str(message.get("data", {}).get("text/html", ""))


def phases_in_order(lines: list[dict[str, Any]], *phases: str) -> None:
    """Each phase shows while it is under way, in this order."""
    seen = [next((i for i, m in enumerate(lines) if f" {phase} " in plain(m)), -1) for phase in phases]
    assert -1 not in seen and seen == sorted(seen), [plain(m) for m in lines]


@pytest.mark.cloud_profiles("plain")
def test_a_big_push_shows_its_phases_at_once_and_ends_done(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, took, out = k.timed("%container push big", comms=True)
    assert status == "ok", out
    lines = progress_lines(out)
    assert lines[0]["at"] < FIRST_SHOWN, f"the line showed {lines[0]['at']:.2f} s after the push started"
    phases_in_order(lines, "serializing", "uploading")
    final = plain(lines[-1])
    assert final.startswith("push big to transfers: serialized big (2,000,000 rows) in ")
    assert re.search(r"uploaded [\d.]+ MB in [\d.]+ s · done in [\d.]+ s$", final), final
    assert "value='1000' max='1000'" in html(lines[-1])  # the saved state: a full bar and the whole line
    assert took - lines[-1]["at"] < QUIET_AFTER_DONE, f"{took - lines[-1]['at']:.2f} s after done"
    assert "cellbox: pushed big: sent 1 of 1 file(s)" in text(out, "stdout")


@pytest.mark.cloud_profiles("plain")
def test_a_cell_shows_every_phase_of_its_inputs_run_and_outputs_on_one_line(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    k.run("big = big.assign(c=1)")  # changed: sent again
    status, took, out = k.timed("%%container -i big -o out\nout = big.assign(d=big.a * 2)\nlen(out)", comms=True)
    assert status == "ok", out
    lines = progress_lines(out)
    assert lines[0]["at"] < FIRST_SHOWN
    phases_in_order(lines, "serializing", "uploading", "running", "downloading", "reading")
    final = plain(lines[-1])
    assert final.startswith("cell in transfers: serialized big (2,000,000 rows)")
    assert "· read out (2,000,000 rows) in " in final and final.endswith(" s") and "· done in " in final
    assert all("done" not in plain(m) for m in lines[:-1])  # done once, at the end
    assert took - lines[-1]["at"] < QUIET_AFTER_DONE, f"{took - lines[-1]['at']:.2f} s after done"
    value = next(m for m in out if m["type"] == "execute_result")
    assert plain(value) == str(ROWS) and value["at"] > lines[-1]["at"]
    status, out = k.run("print(out.d.sum() == 2 * big.a.sum(), len(out.columns))")
    assert text(out, "stdout") == "True 5\n"


@pytest.mark.cloud_profiles("plain")
def test_a_big_output_alone_shows_its_download_and_reading(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, _, out = k.timed(
        f"%%container -o made\nimport pandas as pd\nmade = pd.DataFrame({{'x': range({ROWS})}})", comms=True
    )
    assert status == "ok", out
    lines = progress_lines(out)
    phases_in_order(lines, "downloading", "reading")
    assert plain(lines[-1]).startswith("cell in transfers: ran ")
    assert "downloaded made (" in plain(lines[-1]) and "read made (2,000,000 rows)" in plain(lines[-1])


@pytest.mark.cloud_profiles("plain")
def test_previews_and_a_partial_value_say_how_much_they_show(kernel: tuple[Kernel, Path]) -> None:
    k, _ = kernel
    status, out = k.run(
        "%%container\nimport pandas as pd\n"
        "pd.DataFrame({'x': range(6000), 'y': 1}).to_csv('rows.csv', index=False)\n"
        "pd.DataFrame({'x': range(6000)}).to_parquet('rows.parquet')\n"
        "pd.DataFrame({'x': range(3)}).to_csv('few.csv', index=False)"
    )
    assert status == "ok", out
    gallery = next(html(m) for m in out if "cellbox-artifacts" in html(m))
    assert gallery.count(f"first 20 of 6,000 rows {X} 2 columns") == 1
    assert f"first 20 of 6,000 rows {X} 1 columns" in gallery and f"3 rows {X} 1 columns" in gallery
    status, out = k.run("%%container\nwide = pd.DataFrame({'a': range(1_000_000), 'b': 0})\nwide")
    assert status == "ok", out
    shown = next(m for m in out if m["type"] == "execute_result")
    assert f"1000000 rows {X} 2 columns" in html(shown)  # pandas' own display of the whole frame, made remotely
    status, out = k.run("_")  # what came back: the first rows, saying so where pandas says the size
    assert f"<p>first 100,000 of 1,000,000 rows {X} 2 columns</p>" in html(out[-1])
    assert plain(out[-1]).endswith("[first 100,000 of 1,000,000 rows x 2 columns]")


def test_save_buttons_name_each_file_for_the_extension_and_the_gallery_stays_static(
    kernel: tuple[Kernel, Path],
) -> None:
    k, _ = kernel
    code = "%%container\nimport os\nos.makedirs('plots', exist_ok=True)\nopen('saved.txt', 'w').write('from here')\n"
    status, out = k.run(code + "open('plots/p.txt', 'w').write('plotted')")
    assert status == "ok", out
    (gallery,) = [m for m in out if "cellbox-artifacts" in html(m)]
    assert SAVE_MIME not in gallery["data"] and "saved.txt" in plain(gallery)  # static: readable without a kernel
    (buttons,) = [m for m in out if SAVE_MIME in m.get("data", {})]
    pull = "%container pull plots/p.txt saved.txt"
    assert plain(buttons) == f"save to the notebook's folder: {pull}"  # what other frontends show
    assert html(buttons) == f"<div style='opacity:.7'><code>{pull}</code></div>"
    data = buttons["data"][SAVE_MIME]
    assert [f["path"] for f in data["files"]] == ["plots/p.txt", "saved.txt"]  # where each lands in the folder
    # What the extension's buttons ask the Jupyter server to download: these files of this sandbox.
    status, out = k.run(
        "sb = get_ipython().magics_manager.registry['ContainerMagics'].current\n"
        f"print(sb.id == {data['container_id']!r}, "
        f"[sb.client.containers.files.content(sb.id, f['file_id']).decode() for f in {data['files']!r}])"
    )
    assert text(out, "stdout") == "True ['plotted', 'from here']\n", out


@pytest.mark.cloud_profiles("plain")
def test_a_saved_notebook_keeps_static_html(use_cloud_server: str, tmp_path: Path) -> None:
    """Run as nbclient runs a notebook (what nbval and papermill do; the kernel inherits the environment): the
    progress line's last state and the gallery are saved as static HTML."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            # A line for any transfer, however small, so this one shows.
            nbformat.v4.new_code_cell(
                "%load_ext cellbox\nimport cellbox.session.progress\ncellbox.session.progress.MIN_BYTES = 1"
            ),
            nbformat.v4.new_code_cell(
                "%%container -o made\nimport pandas as pd\nmade = pd.DataFrame({'x': range(3000)})\n"
                "made.to_csv('made.csv', index=False)"
            ),
            nbformat.v4.new_code_cell("%container delete"),
        ]
    )
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(notebook, tmp_path / "saved.ipynb")
    outputs = nbformat.read(tmp_path / "saved.ipynb", as_version=4).cells[1].outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    progress = next(o for o in shown if "cellbox-progress" in o.data.get("text/html", ""))
    assert (
        "· done in " in progress.data["text/plain"]
        and "<progress value='1000' max='1000'" in progress.data["text/html"]
    )
    gallery = next(o for o in shown if "cellbox-artifacts" in o.data.get("text/html", ""))
    assert "first 20 of 3,000 rows" in gallery.data["text/html"] and SAVE_MIME not in gallery.data
