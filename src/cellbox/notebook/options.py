"""Every option of `%container` and `%%container`, declared once: the parsers, the help a user reads
(`%container?`, `--help`) and README's table are all made from these declarations, so they can't disagree.

An `Option` is one argument: its flags, the words it takes, what it does and an example; `parse` holds what
argparse needs. A `Command` is one `%container` command with its arguments.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

from IPython.core.magic_arguments import MagicArgumentParser

from ..api import MEMORY_LIMITS

__all__ = ["CELL_OPTIONS", "COMMANDS", "HELP", "asks_for_help", "cell_parser", "line_parser", "markdown_table"]

WIDTH = 112  # the help page's width: a notebook's output area shows it without wrapping
INDENT = 20


@dataclasses.dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # ("-i", "--input"), or ("name",) for a positional argument
    words: str  # how it is written: "-i VAR ..."
    says: str  # what it does, in a notebook user's words
    example: str = ""
    parse: dict[str, Any] = dataclasses.field(default_factory=dict)  # argparse's keywords
    pool: bool = False  # an option of a pool's cell (shown in the pool's section)

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    words: str  # "new [NAME] [--memory 1g|4g|16g|64g] …"
    says: str
    example: str
    arguments: tuple[Option, ...] = ()


MEMORY = "|".join(MEMORY_LIMITS)

CELL_OPTIONS: tuple[Option, ...] = (
    Option(("name",), "NAME_OR_ID",
           "the running container to run in (the notebook's current one if left out); a name no running container "
           "has is an error that names similar ones: `%container new NAME` makes one", "",
           {"nargs": "?", "metavar": "NAME_OR_ID"}),
    Option(("-i", "--input"), "-i VAR ...",
           "send notebook variables first, under the same names, sent again only when they changed; what can "
           "travel: DataFrames and Series (mixed object columns too), numpy arrays, numbers, strings, bytes, dates, "
           "times, decimals, None, and dicts and lists of them (frames and arrays among them)",
           "%%container -i sales prices",
           {"dest": "inputs", "nargs": "+", "action": "extend", "default": [], "metavar": "VAR"}),
    Option(("-o", "--output"), "-o VAR ...",
           "bring container variables back into the notebook when the cell ends (what can travel, as for -i); "
           "those that can't fail the cell after the others are set, each named in one line",
           "%%container -i sales -o totals",
           {"dest": "outputs", "nargs": "+", "action": "extend", "default": [], "metavar": "VAR"}),
    Option(("--files",), "--files PATH ...",
           "upload local files first (globs allowed), into /mnt/data, keeping their folders (`data/raw.csv` at "
           "/mnt/data/data/raw.csv)", "%%container --files data/*.csv",
           {"nargs": "+", "action": "extend", "default": [], "metavar": "PATH"}),
    Option(("--pull",), "--pull GLOB ...", "download files the cell wrote, when it ends (into --to)",
           '%%container --pull "*.png" "report.html"',
           {"nargs": "+", "action": "extend", "default": [], "metavar": "GLOB"}),
    Option(("--to",), "--to DIR",
           "where --pull puts its files (default: the notebook's folder), each at its path under /mnt/data; hidden "
           "files, files already there and code that would shadow a Python module are skipped, and the cell says "
           "which", '%%container --pull "out/*.parquet" --to results', {"default": "."}),
    Option(("--hidden",), "--hidden",
           '--pull also brings hidden files (a part of the path starting with ".": .bashrc, .git/...)',
           '%%container --pull "*" --hidden --to copy', {"action": "store_true"}),
    Option(("--force",), "--force", "--pull replaces files already there", "%%container --pull report.html --force",
           {"action": "store_true"}),
    Option(("--modules",), "--modules",
           "--pull also brings code Python would import in place of a module: a pandas.py, sitecustomize.py or "
           "cellbox.py, a package folder pandas/, any .pth (the notebook's folder comes first when a kernel "
           "imports). Other .py files (helpers.py) come anyway", "%%container --pull pandas.py --modules",
           {"action": "store_true"}),
    Option(("--timeout",), "--timeout S", "stop the cell after S seconds (the container keeps its files and state)",
           "%%container --timeout 60", {"type": float, "metavar": "S"}),
    Option(("--pool",), "--pool", "run the cell on every part, over the notebook's pool (`%container pool N`)",
           "%%container --pool --split sales -o summary", {"action": "store_true"}, pool=True),
    Option(("--split",), "--split VAR ...",
           "with --pool: cut these frames into one part per container (by rows); -o frames come back joined in "
           "part order, and --pull puts each part's files in a folder of its own (DIR/part-0, DIR/part-1, ...)",
           '%%container --pool --split sales -o summary --pull "*.png" --to plots',
           {"nargs": "+", "action": "extend", "default": [], "metavar": "VAR"}, pool=True),
    Option(("--by",), "--by COLUMN", "with --split: cut by whole groups of this column, not by rows",
           "%%container --pool --split sales --by region -o summary", {"metavar": "COLUMN"}, pool=True),
)  # fmt: skip

_PULL = tuple(o for o in CELL_OPTIONS if o.flags[0] in ("--to", "--hidden", "--force", "--modules"))

COMMANDS: tuple[Command, ...] = (
    Command("new", f"new [NAME] [--memory {MEMORY}] [--expires MINUTES] [--fresh] [--trust-output]",
            "make a container the current one (an existing one of that name is used)",
            "%container new analysis --memory 4g", (
                Option(("name",), "NAME", "its name", parse={"nargs": "?"}),
                Option(("--memory",), f"--memory {MEMORY}", "its memory, fixed for its life",
                       parse={"choices": MEMORY_LIMITS}),
                Option(("--expires",), "--expires MINUTES", "minutes of idleness before it expires (default 20)",
                       parse={"type": int, "metavar": "MINUTES"}),
                Option(("--fresh",), "--fresh", "delete the container of that name (or the current one) first",
                       parse={"action": "store_true"}),
                Option(("--trust-output",), "--trust-output",
                       "show what its code displays unchanged, script included: only for a container that runs "
                       "nothing but your own code (by default its HTML is sanitized and JavaScript and widgets are "
                       "left out)", parse={"action": "store_true"}),
            )),
    Command("use", "use NAME_OR_ID",
            "make a running container the current one (never makes one: a name none has is an error that names "
            "similar ones)", "%container use analysis",
            (Option(("name",), "NAME_OR_ID", "the container"),)),
    Command("list", "list", "every container, this notebook's marked", "%container list"),
    Command("files", "files", "the current container's files", "%container files"),
    Command("status", "status", "the current container: status, memory, time left", "%container status"),
    Command("env", "env", "the Python packages the current container has, with their versions", "%container env"),
    Command("push", "push VAR_OR_PATH ...",
            "send variables or local files now (files keep their folders, as with --files)",
            "%container push sales data/2024.csv",
            (Option(("items",), "VAR_OR_PATH ...", "what to send", parse={"nargs": "+", "metavar": "VAR_OR_PATH"}),)),
    Command("pull", "pull REMOTE_GLOB ... [--to DIR] [--hidden] [--force] [--modules]",
            "download files from the container, skipping hidden files (unless --hidden), code that would shadow a "
            "Python module (unless --modules) and files already there (unless --force)",
            '%container pull "*.csv" --to downloads',
            (Option(("patterns",), "REMOTE_GLOB ...", "what to download",
                    parse={"nargs": "+", "metavar": "REMOTE_GLOB"}), *_PULL)),
    Command("delete", "delete [NAME_OR_ID]", "delete a container (the current one by default)",
            "%container delete analysis", (Option(("name",), "NAME_OR_ID", "the container", parse={"nargs": "?"}),)),
    Command("pool", f"pool N [--name PREFIX] [--memory {MEMORY}] [--expires MINUTES] | --retry | --delete",
            "make or attach the notebook's pool of N containers; show it; rerun the last pool cell's failed parts; "
            "delete every container of it", "%container pool 4 --memory 4g", (
                Option(("size",), "N", "how many containers", parse={"nargs": "?", "type": int, "metavar": "N"}),
                Option(("--name",), "--name PREFIX", "their names' prefix", parse={"metavar": "PREFIX"}),
                Option(("--memory",), f"--memory {MEMORY}", "each one's memory", parse={"choices": MEMORY_LIMITS}),
                Option(("--expires",), "--expires MINUTES", "minutes of idleness before they expire",
                       parse={"type": int, "metavar": "MINUTES"}),
                Option(("--retry",), "--retry", "run the last pool cell's failed parts again",
                       parse={"action": "store_true"}),
                Option(("--delete",), "--delete", "delete every container of the pool", parse={"action": "store_true"}),
            )),
)  # fmt: skip


def _add(parser: Any, option: Option) -> None:
    keywords = {**option.parse}
    if not option.positional:
        keywords.setdefault("help", option.says)
    parser.add_argument(*option.flags, **keywords)


def cell_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%%container", add_help=False)
    for option in CELL_OPTIONS:
        _add(parser, option)
    return parser


def line_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%container", add_help=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.says)
        for option in command.arguments:
            _add(sub, option)
    return parser


def _entry(words: str, says: str, example: str = "") -> str:
    lead = f"  {words}"
    body = textwrap.wrap(says, WIDTH - INDENT)
    lines = [lead.ljust(INDENT) + body[0]] if len(lead) < INDENT else [lead, " " * INDENT + body[0]]
    lines += [" " * INDENT + line for line in body[1:]]
    if example:
        lines.append(" " * (INDENT + 4) + example)
    return "\n".join(lines)


def _command(command: Command) -> str:
    """A command's entry, and under it what each of its own options does (pull's are the cell's, said above)."""
    own = [o for o in command.arguments if not o.positional and o not in _PULL]
    return "\n".join(
        [_entry(command.words, command.says, command.example)] + [_entry("  " + o.words, o.says) for o in own]
    )


def _help() -> str:
    cell = [o for o in CELL_OPTIONS if not o.positional and not o.pool]
    pool = [o for o in CELL_OPTIONS if o.pool]
    parts = [
        "Run notebook cells in a container: a sandbox reached through the Containers API (OCI Generative AI, "
        "OpenAI,\nor cellbox's own local server, the default). Its Python state lasts from cell to cell, as in a "
        "notebook; its\nworking folder is /mnt/data.",
        "%%container [NAME_OR_ID] [options]\n    Runs the cell in the notebook's current container (made for you on "
        "first use; after a kernel\n    restart, the one the notebook used last, reattached), or in NAME_OR_ID,\n"
        "    a running container (never made: `%container new NAME` makes one).\n"
        "    Printed output, displays, figures and the last expression come back as "
        "if the cell ran here.\n\n" + "\n".join(_entry(o.words, o.says, o.example) for o in cell),
        "%container COMMAND\n" + "\n".join(_command(c) for c in COMMANDS),
        "Many containers at once (a pool):\n" + "\n".join(_entry(o.words, o.says, o.example) for o in pool),
        "Configuration (environment, or config.toml: ~/.config/cellbox/ on Linux): nothing for the local server\n"
        "(Linux, with bubblewrap). A cloud, from any system:\n"
        "CELLBOX_BASE_URL (or CELLBOX_OCI_REGION), CELLBOX_API_KEY or CELLBOX_AUTH, CELLBOX_PROJECT (OCI) and\n"
        "CELLBOX_MODEL. `cellbox doctor`, in a terminal, checks a cloud set-up step by step.",
    ]
    return "\n\n".join(parts) + "\n"


HELP = _help()

HELP_WORDS = {"-h", "--help"}


def asks_for_help(line: str) -> bool:
    """`%container --help`, `%%container -h`, `%container new --help`: help instead of running anything."""
    return any(word in HELP_WORDS for word in line.split())


def markdown_table() -> str:
    """README's table of every option, made from the same declarations."""
    rows = ["| magic | option | what it does | example |", "|---|---|---|---|"]

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for option in CELL_OPTIONS:
        if not option.positional:
            example = f"`{cell(option.example)}`" if option.example else ""
            rows.append(f"| `%%container` | `{cell(option.words)}` | {cell(option.says)} | {example} |")
    for command in COMMANDS:
        rows.append(f"| `%container` | `{cell(command.words)}` | {cell(command.says)} | `{cell(command.example)}` |")
    return "\n".join(rows) + "\n"
