"""What `-i` and `-o` carry, in a real kernel against the real local server, typed as a user types it: frames as
pandas holds them (object columns of mixed values, labels that are not strings), arrays, dicts and lists of arrays
and frames, times and decimals; an error that names the variable and the entry that can't travel, in one line; and
`-o` that brings back every value that can before it fails naming the ones that can't."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from kernelhelp import Kernel, text, user_env

ANSI = re.compile(r"\x1b\[[0-9;]*m")

DIRTY = """
import datetime, decimal
import numpy as np, pandas as pd
dirty = pd.DataFrame({
    "code": [101, "A7", None],
    "score": [1.5, float("nan"), None],
    "when": [datetime.date(2024, 1, 2), "soon", pd.Timestamp("2024-01-02 03:04:05", tz="Europe/Paris")],
    "tags": [["a", "b"], {"k": 1}, ("t", 2)],
    "amount": [decimal.Decimal("1.10"), b"\\x00raw", 3 + 4j],
    7: [1, 2, 3],
})
"""


@pytest.fixture(scope="module")
def kernel(cloud_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel-home")
    env = user_env(cloud_environment, home)
    k = Kernel(env)
    status, out = k.run(f"%load_ext cellbox\n{DIRTY}\n%container new values")
    assert status == "ok", out
    yield k
    k.run("%container delete")
    k.stop()


def error_of(out: list[dict[str, Any]]) -> tuple[str, str]:
    """The cell's error: its name, and all it shows, as plain text (IPython shows a UsageError as one line on
    stderr)."""
    error = next((m for m in out if m["type"] == "error"), None)
    if error is None:
        shown = text(out, "stderr").strip()
        return shown.split(":", 1)[0], shown
    return error["ename"], ANSI.sub("", "\n".join(error["traceback"]))


def printed(kernel: Kernel, code: str) -> str:
    status, out = kernel.run(code)
    assert status == "ok", out
    return text(out, "stdout").strip()


@pytest.mark.auto_binding
def test_a_dirty_frame_travels_both_ways_with_its_values(kernel: Kernel) -> None:
    # In the container the frame is the notebook's: each value of its own type, the labels as they were.
    seen = printed(
        kernel,
        "%%container -i dirty -o back\n"
        "print([type(v).__name__ for v in dirty.code], list(dirty.columns)[-1] == 7, dirty.tags[2])\n"
        "back = dirty.copy()\nback['more'] = [None, 'x', 2]",
    )
    assert seen == "['int', 'str', 'NoneType'] True ('t', 2)"
    # And back in the notebook: equal as Python values, None and NaN apart, the one new column too.
    same = (
        "import math\n"
        "def same(a, b):\n"
        "    return (a is b) or (isinstance(a, float) and math.isnan(a) and isinstance(b, float) and math.isnan(b))"
        " or (type(a) is type(b) and a == b)\n"
        "print(all(same(a, b) for c in dirty for a, b in zip(dirty[c], back[c])), list(back.columns), "
        "back.more.tolist(), back.score.tolist()[1:], back.when[2].tzinfo)"
    )
    assert printed(kernel, same) == (
        "True ['code', 'score', 'when', 'tags', 'amount', 7, 'more'] [None, 'x', 2] [nan, nan] Europe/Paris"
    )
    # A column with a value no format holds fails at once, in one line that names it and says what to do.
    kernel.run("odd = dirty.copy()\nodd['code'] = [1, object(), 3]")
    status, out = kernel.run("%%container -i odd\nodd")
    ename, shown = error_of(out)
    assert (status, ename) == ("error", "UsageError")
    assert shown.count("\n") <= 1 and "Traceback" not in shown and "cellbox/" not in shown
    assert "-i odd: odd['code'] at row 1 is a builtins.object, which can't travel" in shown
    assert "convert it first" in shown


@pytest.mark.auto_binding
def test_arrays_times_and_dicts_of_frames_travel_both_ways(kernel: Kernel) -> None:
    setup = (
        "import datetime, decimal\nimport numpy as np, pandas as pd\n"
        "data = {'weights': np.arange(6.0).reshape(2, 3), 'frames': [dirty, pd.Series([1, 2], name='s')],\n"
        "        'when': datetime.datetime(2024, 5, 6, 7, 8, 9, 10), 'day': datetime.date(2024, 5, 6),\n"
        "        'price': decimal.Decimal('9.99'), 'n': np.int32(7), 't': np.datetime64('2024-05-06T07:08', 'm')}\n"
        "grid = np.eye(3, dtype='float32')\nstamp = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc)\n"
    )
    assert printed(kernel, setup) == ""
    remote = printed(
        kernel,
        "%%container -i data grid stamp -o twice when\n"
        "print(type(data['weights']).__name__, data['weights'].shape, type(data['frames'][0]).__name__,\n"
        "      data['frames'][0].code.tolist(), repr(data['n']), data['price'], grid.dtype, stamp.tzinfo)\n"
        "twice = {'weights': data['weights'] * 2, 'frames': data['frames'], 'price': data['price'] * 2}\n"
        "when = data['when']",
    )
    assert remote == "ndarray (2, 3) DataFrame [101, 'A7', None] np.int32(7) 9.99 float32 UTC"
    local = printed(
        kernel,
        "print(twice['weights'].tolist(), twice['frames'][0].equals(dirty), twice['frames'][1].name,\n"
        "      repr(twice['price']), repr(when))",
    )
    assert local == (
        "[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]] True s Decimal('19.98') datetime.datetime(2024, 5, 6, 7, 8, 9, 10)"
    )


@pytest.mark.auto_binding
def test_an_input_that_cannot_travel_names_its_entry(kernel: Kernel) -> None:
    kernel.run("import threading\nmodel_data = {'rows': [1, 2], 'model': threading.Lock()}")
    status, out = kernel.run("%%container -i model_data\nmodel_data")
    ename, shown = error_of(out)
    assert (status, ename) == ("error", "UsageError") and shown.count("\n") <= 1
    assert shown.startswith("UsageError: -i model_data: model_data['model'] is a _thread.lock, which can't travel")
    status, out = kernel.run("%container push model_data")  # the same value, pushed by itself
    ename, shown = error_of(out)
    assert (status, ename) == ("error", "UsageError") and shown.count("\n") <= 1
    assert "model_data['model'] is a _thread.lock" in shown and "push the file" in shown


@pytest.mark.auto_binding
def test_o_brings_back_what_travels_then_names_what_did_not(kernel: Kernel) -> None:
    kernel.run("metrics = preds = model = None")
    status, out = kernel.run(
        "%%container -o metrics preds model\n"
        "import threading\nimport pandas as pd\n"
        "metrics = {'auc': 0.91}\npreds = pd.Series([0, 1, 1])\nmodel = threading.Lock()"
    )
    ename, shown = error_of(out)
    assert status == "error" and ename == "TypeError"
    assert "-o model: model is a _thread.lock, which can't travel" in shown
    assert shown.count("\n") == 1  # one line for the value that could not come, one for those that did
    assert "(brought back all the same: metrics, preds)" in shown and "Traceback" not in shown
    assert printed(kernel, "print(metrics, preds.tolist(), model)") == "{'auc': 0.91} [0, 1, 1] None"


def test_help_says_what_i_and_o_take(kernel: Kernel) -> None:
    _, out = kernel.run("%container?")
    page = next(m for m in out if m["type"] == "page")["data"]["text/plain"]
    assert "arrays" in page and "dicts and lists of them" in page and "what can travel" in page
