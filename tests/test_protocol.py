"""The run protocol in-process against the real runtime, no server: the request file, the loader line run as the
model would run it, the check of the code it ran, and the result record read back into a `Run`."""

from __future__ import annotations

import contextlib
import io
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cellbox import frames, protocol
from cellbox.api import CodeInterpreterCall
from cellbox.protocol import LoaderMismatch


class InProcessContainer:
    """A data folder in tmp_path and a kernel namespace of its own; `execute` runs code as the tool would."""

    def __init__(self, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.data_dir = data_dir
        self.namespace = types.ModuleType("__main__")  # the runtime's user namespace outside IPython
        monkeypatch.setitem(sys.modules, "__main__", self.namespace)
        monkeypatch.setattr(sys, "cellbox_runtimes", {}, raising=False)
        monkeypatch.chdir(data_dir)
        name, source, _ = protocol.runtime_file()
        self.runtime_path = self.put(name, source)

    def put(self, name: str, content: bytes) -> str:
        path = self.data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)

    def execute(self, code: str) -> CodeInterpreterCall:
        logs = io.StringIO()
        with contextlib.redirect_stdout(logs):
            exec(code, {})
        return CodeInterpreterCall.from_dict(
            {"id": "ci_1", "code": code, "outputs": [{"type": "logs", "logs": logs.getvalue()}]}
        )

    def loaded_runtime(self) -> dict[str, Any]:
        """The runtime's globals as the loader line finds them in the kernel (loading it first)."""
        self.execute(f"import runpy; runpy.run_path({self.runtime_path!r})")
        runtimes: dict[str, dict[str, Any]] = sys.cellbox_runtimes  # type: ignore[attr-defined]
        return runtimes[self.runtime_path]

    def run(self, request: protocol.Request) -> protocol.Result:
        loader = protocol.loader_line(self.runtime_path, self.put(request.filename, request.body()))
        assert loader in protocol.run_prompt(loader)
        logs = protocol.checked_logs([self.execute(loader)], loader, "in-process")
        record = protocol.result_from_logs(logs)
        assert record is not None
        return protocol.Result.parse(record)


def read_values(result: protocol.Result) -> list[Any]:
    return [frames.read(spec, Path(spec["path"])) for spec in result.frame_specs]


def test_a_run_travels_through_the_protocol_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = InProcessContainer(tmp_path, monkeypatch)
    sales = pd.DataFrame({"region": ["a", "b", "a"], "price": [1.0, 2.0, 3.0]})
    (tmp_path / ".cellbox" / "inputs").mkdir(parents=True)
    spec = frames.write(sales, tmp_path / ".cellbox" / "inputs" / "sales")
    spec["name"] = "sales"
    request = protocol.Request.new(
        "sales['twice'] = sales.price * 2\nprint('rows', len(sales))\ntotals = sales.groupby('region').price.sum()\n"
        "sales.price.sum()",
        inputs=[spec],
        variables=["sales", "totals"],
        data_dir=str(tmp_path),
    )
    result = box.run(request)
    assert result.run_id == request.run_id and result.error is None
    run = result.to_run(read_values(result), [], [])
    assert run.ok and run.stdout == "rows 3\n" and run.value == 6.0
    assert run.variables["sales"]["twice"].tolist() == [2.0, 4.0, 6.0]
    pd.testing.assert_series_equal(run.variables["totals"], sales.groupby("region").price.sum())
    assert box.namespace.totals is not None  # state stays in the kernel's namespace for the next run

    # A second run reuses the loaded runtime and the state the first one left.
    again = box.run(protocol.Request.new("totals.max()", data_dir=str(tmp_path)))
    assert again.to_run([], [], []).value == 4.0
    assert list(sys.cellbox_runtimes) == [box.runtime_path]  # type: ignore[attr-defined]


def test_a_frame_value_and_an_error_come_back_as_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = InProcessContainer(tmp_path, monkeypatch)
    monkeypatch.setitem(box.loaded_runtime(), "MAX_VALUE_ROWS", 10)
    result = box.run(
        protocol.Request.new("import pandas as pd\npd.DataFrame({'v': range(25)})", data_dir=str(tmp_path))
    )
    run = result.to_run(read_values(result), [], [])
    assert run.value["v"].tolist() == list(range(10))
    assert "showing the first 10 of 25 rows" in run.stderr
    failed = box.run(protocol.Request.new("def f():\n    return 1 / 0\nf()", data_dir=str(tmp_path)))
    run = failed.to_run([], [], [])
    assert run.error is not None and run.error.ename == "ZeroDivisionError" and run.error.run_id == failed.run_id
    # Only the cell's frames: the runtime, uploaded under its content-named file, is not shown.
    assert run.error.traceback.startswith('Traceback (most recent call last):\n  File "<cell>", line 3, in <module>')
    assert 'File "<cell>", line 2, in f' in run.error.traceback
    assert Path(box.runtime_path).name.startswith("cellbox_runtime_") and box.runtime_path not in run.error.traceback


def test_anything_but_the_loader_is_refused() -> None:
    loader = protocol.loader_line("/mnt/data/.cellbox/rt.py", "/mnt/data/.cellbox/runs/x/request.json")
    assert "\n" not in loader
    ran = CodeInterpreterCall.from_dict({"id": "ci_1", "code": "print('something else')"})
    with pytest.raises(LoaderMismatch, match="something else"):
        protocol.checked_logs([ran], loader, "m")
    with pytest.raises(LoaderMismatch, match="no code"):
        protocol.checked_logs([], loader, "m")
    twice = CodeInterpreterCall.from_dict({"id": "ci_2", "code": loader})
    with pytest.raises(LoaderMismatch):
        protocol.checked_logs([twice, twice], loader, "m")


def test_variable_names_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(protocol.CellboxError, match="not a valid Python variable name"):
        protocol.Request.new("1", variables=["ok", "not-a-name"])
