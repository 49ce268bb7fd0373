"""Which files a cell saved from figures it also showed (`runtime.capture.saved_figures`), in a fresh interpreter
as the container's runtime runs: matplotlib imported by the cell itself, figures shown through IPython's display
formatter or left open for a runtime without a shell, and everything put back afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cellbox.runtime

RUNTIME = Path(cellbox.runtime.__file__).parent

CELL = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    import capture
    os.chdir(sys.argv[2])
    import contextlib
    shell, trap = None, contextlib.nullcontext()
    if sys.argv[3] == "shell":
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        trap = shell.builtin_trap  # get_ipython() as a running cell finds it
    trap.__enter__()
    assert "matplotlib.figure" not in sys.modules
    figures = capture.saved_figures()
    with figures:
        import matplotlib
        matplotlib.use("agg")
        import matplotlib.pyplot as plt
        shown = plt.figure(); plt.plot([1, 2]); plt.savefig("shown.png"); shown.savefig("again")
        hidden = plt.figure(); hidden.savefig("hidden.png"); plt.close(hidden)
        if shell is not None:
            shell.display_formatter.format(shown)
        else:
            figures.open_ones_shown()
    from matplotlib.figure import Figure
    print(json.dumps({"paths": figures.paths, "restored": Figure.savefig.__module__ == "matplotlib.figure",
                      "hook_gone": figures not in sys.meta_path,
                      "formatter": shell is None or "format" not in shell.display_formatter.__dict__}))
    """
)


def saved(tmp_path: Path, mode: str) -> dict:
    script = tmp_path / "cell.py"
    script.write_text(CELL)
    done = subprocess.run(
        [sys.executable, str(script), str(RUNTIME), str(tmp_path), mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_figure_shown_through_the_shell_names_its_files(tmp_path: Path) -> None:
    found = saved(tmp_path, "shell")
    assert found["paths"] == [str(tmp_path / "again"), str(tmp_path / "again.png"), str(tmp_path / "shown.png")]
    assert found["restored"] and found["hook_gone"] and found["formatter"]


def test_without_a_shell_the_figures_left_open_count_as_shown(tmp_path: Path) -> None:
    found = saved(tmp_path, "plain")
    assert str(tmp_path / "shown.png") in found["paths"] and str(tmp_path / "hidden.png") not in found["paths"]
    assert found["restored"] and found["hook_gone"]
