"""The magics' options are declared once (`cellbox.notebook.options`): the parsers, the help and README's table are
made from the declarations and agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cellbox.notebook import options

ROOT = Path(__file__).resolve().parents[1]


def _script() -> object:
    spec = importlib.util.spec_from_file_location("magic_options", ROOT / "scripts" / "magic-options.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_holds_the_table_the_declarations_make() -> None:
    readme = (ROOT / "README.md").read_text()
    assert _script().with_table(readme) == readme, "run scripts/magic-options.py"  # type: ignore[attr-defined]
    assert options.markdown_table() in readme


def test_every_declared_option_parses_and_is_in_the_help() -> None:
    cell = options.cell_parser()
    for option in options.CELL_OPTIONS:
        if not option.positional:
            assert option.flags[0] in options.HELP, option.flags
            assert option.example in options.HELP
    words = "box -i a b -o c --pull *.png --to out --hidden --force --modules --timeout 5 --pool --split s --by region"
    parsed = cell.parse_args(words.split())
    assert (parsed.name, parsed.inputs, parsed.outputs, parsed.pull, parsed.to) == (
        "box",
        ["a", "b"],
        ["c"],
        ["*.png"],
        "out",
    )
    assert parsed.hidden and parsed.force and parsed.modules and parsed.pool and parsed.timeout == 5.0
    assert (parsed.split, parsed.by) == (["s"], "region")
    line = options.line_parser()
    for command in options.COMMANDS:
        assert command.words in options.HELP and command.example in options.HELP
        for option in command.arguments:
            if not option.positional:
                assert option.words in options.HELP, (command.name, option.flags)
    new = line.parse_args(["new", "box", "--memory", "4g", "--expires", "30", "--fresh", "--trust-output"])
    assert (new.command, new.name, new.memory, new.expires, new.fresh, new.trust_output) == (
        "new",
        "box",
        "4g",
        30,
        True,
        True,
    )
    pool = line.parse_args(["pool", "4", "--name", "p", "--retry"])
    assert (pool.size, pool.name, pool.retry, pool.delete) == (4, "p", True, False)
