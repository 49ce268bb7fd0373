"""The pool's part of `%container` and `%%container`: the arguments and what they do, over `cellbox.Pool`.

    %container pool N [--name PREFIX] [--memory 1g|4g|16g|64g] [--expires MINUTES]   make the notebook's pool
    %container pool                                                                   show it
    %container pool --retry                                                           rerun the last cell's failed parts
    %container pool --delete                                                          delete every sandbox in it

    %%container --pool [--split VAR ...] [--by COLUMN] [-i VAR ...] [-o VAR ...] [--files PATH ...] [--timeout S]
                       [--pull GLOB ... [--to DIR] [--hidden] [--force] [--modules]]

`--split` variables are cut into one part per sandbox (by rows, or whole groups of `--by COLUMN`); `-i` values go
to every sandbox; `-o` frames come back concatenated in part order. A failing part fails the cell after the grid
showed every part (the others' results are kept: `%container pool --retry`).
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..boundary.local_paths import Pulled, Skipped
from ..pool.fanout import Pool
from ..pool.parts import PartsFailed, PoolRuns, concat

__all__ = ["PoolCommands"]


class PoolCommands:
    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.pool: Pool | None = None
        self._outputs: tuple[str, ...] = ()

    def line(self, args: Any) -> Any:
        if args.delete:
            pool = self._require()
            count = len(pool)
            pool.delete()
            self.pool = None
            print(f"cellbox: deleted the pool's {count} container(s)")
            return None
        if args.retry:
            runs = self._require().retry_failed()
            return self._finish(runs)
        if args.size is None:
            return self._require()
        if self.pool is not None:
            self.pool.close()
        self.pool = Pool(args.size, name=args.name, memory_limit=args.memory, expires_after=args.expires)
        if self.pool.shortfall:
            print(f"cellbox: {self.pool.shortfall}")
        return self.pool

    def cell(self, args: Any, cell: str) -> None:
        if args.name:
            raise UsageError("%%container --pool runs in the notebook's pool: drop NAME (`%container pool N` makes it)")
        namespace = self.shell.user_ns
        missing = [name for name in (*args.split, *args.inputs) if name not in namespace]
        if missing:
            raise UsageError(f"{' '.join(missing)}: no such variable in the notebook")
        if args.by and not args.split:
            raise UsageError("--by COLUMN needs --split VAR")
        pool = self._require()
        split = {name: (args.by, namespace[name]) if args.by else namespace[name] for name in args.split}
        self._outputs = tuple(args.outputs)
        runs = pool.map(
            cell,
            split=split,
            inputs={name: namespace[name] for name in args.inputs},
            outputs=args.outputs,
            files=args.files,
            timeout=args.timeout,
            pull=args.pull,
            to=args.to,
            hidden=args.hidden,
            force=args.force,
            modules=args.modules,
        )
        if args.pull:
            pulled = sum(len(part.pulled) for part in runs)
            skipped = sum((p.pulled.skipped for p in runs if isinstance(p.pulled, Pulled)), Skipped()).note
            said = f"; {skipped}" if skipped else ""
            print(f"cellbox: pulled {pulled} file(s) into {args.to}/part-N, one folder per part{said}")
        self._finish(runs)

    def _finish(self, runs: PoolRuns) -> None:
        """The `-o` variables concatenated into the notebook once every part is done; else the cell fails."""
        if runs.failed:
            numbers = ", ".join(str(p.index) for p in runs.failed)
            raise PartsFailed(
                f"{len(runs.failed)} of {len(runs)} parts failed (parts {numbers}), shown above with their tracebacks; "
                "the other parts' results are kept: `%container pool --retry` runs the failed ones again",
                runs.failed,
                shown=True,
            )
        for name in self._outputs:
            self.shell.user_ns[name] = concat(runs, name)

    def _require(self) -> Pool:
        if self.pool is None:
            raise UsageError("no pool: `%container pool N` makes one of N containers")
        return self.pool
