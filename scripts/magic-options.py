"""Write README's table of every magic option from their one declaration (`cellbox.notebook.options`):
`.venv/bin/python scripts/magic-options.py` after changing an option; tests/test_options.py fails until it is run."""

from __future__ import annotations

from pathlib import Path

from cellbox.notebook.options import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- magic options: made by scripts/magic-options.py from cellbox/notebook/options.py -->\n"
END = "<!-- end of magic options -->\n"


def with_table(text: str) -> str:
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    return before + START + markdown_table() + END + after


if __name__ == "__main__":
    README.write_text(with_table(README.read_text()))
