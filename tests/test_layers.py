"""The package's rooms depend downward only, as docs/ARCHITECTURE.md draws them: this fails when an import climbs.

Each module's imports are read from its source (what runs, not what is only named for type checkers under
`if TYPE_CHECKING:`) and each is checked against the rooms its own room may use; inside `local` (the server), each
of its own rooms too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cellbox"

# Each room and the rooms below it that it may import. `local` (the server) stands apart: the client reaches it
# only over HTTP, except the command line, which starts it.
MAY_USE: dict[str, set[str]] = {
    "_version": set(),
    "common": set(),
    "runtime": set(),
    "api": {"_version", "common"},
    "boundary": {"api", "common", "runtime"},  # the runtime's own encoding of values is the contract it checks
    "session": {"boundary", "api", "common", "runtime", "_version"},
    "pool": {"session", "boundary", "api", "common"},
    "notebook": {"pool", "session", "boundary", "api", "common"},
    "doctor": {"session", "api", "common"},
    "jupyter": {"session", "boundary", "api", "common", "_version"},
    "local": {"common", "runtime", "_version"},
    "cli": {"doctor", "local", "session", "api", "common", "_version"},
    "__main__": {"cli"},
    "__init__": {"notebook", "pool", "session", "boundary", "api", "_version"},
}

# The server's own rooms (`cellbox.local.<room>`: a sub-package, or a module at its top) and those below each. The
# cloud emulation stands apart: the real server may use it, it uses nothing of the real server but the error shape.
LOCAL_MAY_USE: dict[str, set[str]] = {
    "errors": set(),
    "emulation": {"errors"},
    "options": {"emulation"},  # the profiles and quirks are values of its fields
    "store": set(),
    "jail": {"store", "errors"},
    "responses": {"jail", "store", "emulation", "errors"},
    "http": {"responses", "jail", "store", "emulation", "errors", "options"},
    "server": {"http", "jail", "store", "errors", "options", "sandbox_env"},
    "cli": {"server", "options"},
    "testing": {"jail", "options", "sandbox_env"},
    "sandbox_env": set(),
    "__main__": {"cli"},
    "__init__": set(),
}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def local_room_of(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of each import that runs: not those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    checked_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            checked_only.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if id(node) in checked_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("cellbox")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("cellbox"):
                continue
            if target == "cellbox" or node.module is None:  # `from . import x`: each name may be a room of its own
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def test_every_room_is_declared() -> None:
    rooms = {room_of(module_name(p)) for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts}
    assert rooms <= set(MAY_USE), f"rooms without a place in the layers: {rooms - set(MAY_USE)}"


def test_imports_go_down_only() -> None:
    climbs = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "labextension" in path.parts:
            continue
        room = room_of(module_name(path))
        for line, target in imports(path):
            used = room_of(target)
            if used != room and used not in MAY_USE[room]:
                climbs.append(f"{path.relative_to(PACKAGE)}:{line} ({room}) imports {target} ({used})")
    assert not climbs, "imports that climb:\n" + "\n".join(climbs)


def local_modules() -> list[Path]:
    return sorted((PACKAGE / "local").rglob("*.py"))


def test_every_local_room_is_declared() -> None:
    rooms = {local_room_of(module_name(p)) for p in local_modules()}
    assert rooms <= set(LOCAL_MAY_USE), f"server rooms without a place in the layers: {rooms - set(LOCAL_MAY_USE)}"


def test_the_server_imports_go_down_only() -> None:
    climbs = []
    for path in local_modules():
        room = local_room_of(module_name(path))
        for line, target in imports(path):
            if room_of(target) != "local":
                continue
            used = local_room_of(target)
            if used != room and used not in LOCAL_MAY_USE[room]:
                climbs.append(f"{path.relative_to(PACKAGE)}:{line} ({room}) imports {target} ({used})")
    assert not climbs, "imports that climb inside the server:\n" + "\n".join(climbs)
