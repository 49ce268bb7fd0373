"""What `%container?`, `%container --help` and `%%container --help` show: every command and option, each with
an example, in a notebook user's words. Kept apart from the parsers so the text reads as one page."""

from __future__ import annotations

HELP = """\
Run notebook cells in a container: a sandbox reached through the Containers API (OCI Generative AI, OpenAI,
or cellbox's own local server, the default). Its Python state lasts from cell to cell, as in a notebook; its
working folder is /mnt/data.

%%container [NAME_OR_ID] [options]
    Runs the cell in the notebook's current container (made for you on first use), or in NAME_OR_ID.
    Printed output, displays, figures and the last expression come back as if the cell ran here.

  -i VAR ...        send notebook variables first, under the same names (DataFrames, Series, arrays,
                    JSON values); sent again only when they changed
                        %%container -i sales prices
  -o VAR ...        bring container variables back into the notebook when the cell ends
                        %%container -i sales -o totals
  --files PATH ...  upload local files first (globs allowed), into /mnt/data
                        %%container --files data/*.csv
  --pull GLOB ...   download files the cell wrote, when it ends (into --to)
                        %%container --pull "*.png" "report.html"
  --to DIR          where --pull puts its files (default: the notebook's folder), each at its path under
                    /mnt/data; hidden files, files already there and code that would shadow a Python
                    module are skipped, and the cell says which
                        %%container --pull "out/*.parquet" --to results
  --hidden          --pull also brings hidden files (a part of the path starting with ".": .bashrc, .git/...)
                        %%container --pull "*" --hidden --to copy
  --force           --pull replaces files already there
                        %%container --pull report.html --force
  --modules         --pull also brings code Python would import in place of a module: a pandas.py,
                    sitecustomize.py or cellbox.py, a package folder pandas/, any .pth (the notebook's
                    folder comes first when a kernel imports). Other .py files (helpers.py) come anyway
                        %%container --pull pandas.py --modules
  --timeout S       stop the cell after S seconds (the container keeps its files and state)
                        %%container --timeout 60

%container COMMAND
  new [NAME] [--memory 1g|4g|16g|64g] [--expires MINUTES] [--fresh] [--trust-output]
                    make a container the current one (an existing one of that name is used; --fresh
                    deletes it first)      %container new analysis --memory 4g
                    --trust-output shows what its code displays unchanged, script included: only for
                    a container that runs nothing but your own code (by default its HTML is sanitized
                    and JavaScript and widgets are left out)
  use NAME_OR_ID    make an existing container the current one       %container use analysis
  list              every container, this notebook's marked          %container list
  files             the current container's files                    %container files
  status            the current container: status, memory, time left %container status
  push VAR_OR_PATH ...
                    send variables or local files now                %container push sales data/2024.csv
  pull REMOTE_GLOB ... [--to DIR] [--hidden] [--force] [--modules]
                    download files from the container, skipping hidden files (unless --hidden), code that
                    would shadow a Python module (unless --modules) and files already there (unless
                    --force)                                         %container pull "*.csv" --to downloads
  delete [NAME_OR_ID]
                    delete a container (the current one by default)  %container delete analysis

Many containers at once (a pool):
  %container pool N [--name PREFIX] [--memory ...] [--expires MINUTES]    make or attach N containers
  %container pool --retry | --delete                  rerun the failed parts | delete the pool
  %%container --pool --split VAR [--by COLUMN] -o VAR
                    split the frame VAR into parts (by rows, or by whole groups of COLUMN), run the cell on
                    each part in its own container, bring -o frames back joined in part order; --pull
                    puts each part's files in a folder of its own (DIR/part-0, DIR/part-1, ...)
                        %%container --pool --split sales -o summary --pull "*.png" --to plots

Configuration (environment, or ~/.config/cellbox/config.toml): nothing for the local server. A cloud:
CELLBOX_BASE_URL (or CELLBOX_OCI_REGION), CELLBOX_API_KEY or CELLBOX_AUTH, CELLBOX_PROJECT (OCI) and
CELLBOX_MODEL. `cellbox doctor`, in a terminal, checks a cloud set-up step by step.
"""

CELL_HELP_WORDS = {"-h", "--help"}


def asks_for_help(line: str) -> bool:
    """`%container --help`, `%%container -h`, `%container new --help`: help instead of running anything."""
    return any(word in CELL_HELP_WORDS for word in line.split())
