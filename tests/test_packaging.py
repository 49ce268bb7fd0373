"""What the ecosystem gets: the sdist and the wheel made from it, their metadata, and the extras.

The sdist carries the built labextension, so a wheel builds from it without Node or the npm registry: the slow
test builds one with neither on the PATH (and without build isolation, so offline) and reads what pip would
install. The others check, without building, that `pip install cellbox` alone is a working client (the extras'
modules blocked in a fresh interpreter), that `cellbox.common.extras` names each extra's modules as pyproject.toml
declares them, and that cellbox imports no other package's private modules.
"""

from __future__ import annotations

import ast
import email
import email.message
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
import tomllib

from cellbox.common import extras

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LABEXTENSION = ROOT / "src" / "cellbox" / "labextension"

CLASSIFIERS = {
    "Framework :: Jupyter",
    "Framework :: Jupyter :: JupyterLab :: 4",
    "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt",
    "Operating System :: POSIX :: Linux",
    "Programming Language :: Python :: 3.11",
    "Typing :: Typed",
}


def _name(requirement: str) -> str:
    """The normalized distribution name a requirement line names."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]).lower()


def _build(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_a_wheel_builds_from_the_sdist_without_node(tmp_path: Path) -> None:
    if not (LABEXTENSION / "package.json").is_file():
        pytest.fail("no built labextension in src/cellbox/labextension: run `make install` first")
    # From the checkout, the labextension `make install` built is carried as it is (building it again is the
    # editable install's job, and needs Node).
    env = {**os.environ, "HATCH_JUPYTER_BUILDER_SKIP_NPM": "1"}
    _build(["--sdist", "--outdir", str(tmp_path / "sdist"), str(ROOT)], ROOT, env)
    (sdist,) = (tmp_path / "sdist").glob("cellbox-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
        archive.extractall(tmp_path / "src", filter="data")
    assert {"LICENSE", "PKG-INFO", "pyproject.toml", "src/cellbox/py.typed"} <= members
    assert {"src/cellbox/labextension/package.json", "src/cellbox/labextension/static/style.js"} <= members
    assert not [m for m in members if m.startswith(("jupyter_extension/node_modules/", ".hypothesis/", ".venv/"))]

    # A PATH with neither node nor npm: the wheel's build must not need them.
    bare = tmp_path / "bin"
    bare.mkdir()
    assert shutil.which("node", path=str(bare)) is None and shutil.which("npm", path=str(bare)) is None
    env = {k: v for k, v in os.environ.items() if k != "HATCH_JUPYTER_BUILDER_SKIP_NPM"} | {"PATH": str(bare)}
    (unpacked,) = (tmp_path / "src").iterdir()
    _build(["--wheel", "--outdir", str(tmp_path / "wheel"), "."], unpacked, env)
    (wheel,) = (tmp_path / "wheel").glob("cellbox-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        data = info.replace(".dist-info", ".data") + "/data/"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
        labextension = json.loads(archive.read(f"{data}share/jupyter/labextensions/cellbox/package.json"))

    assert "MIT License" in licence and "the cellbox authors" in licence
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    classifiers = set(metadata.get_all("Classifier") or [])
    assert classifiers >= CLASSIFIERS, CLASSIFIERS - classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PyPI refuses one beside the expression
    assert metadata["Keywords"] and metadata["Author"] == "the cellbox authors"
    assert set(metadata.get_all("Provides-Extra") or []) >= {"local", "lab", "oci", "all", "test"}
    required = metadata.get_all("Requires-Dist") or []
    unconditional = {_name(r) for r in required if "extra ==" not in r}
    assert not unconditional & {"starlette", "uvicorn", "jupyterlab", "jupyter-server", "oci", "matplotlib"}
    assert {"httpx", "pandas", "ipython"} <= unconditional
    assert {_name(r) for r in required if "extra == 'all'" in r} >= {"starlette", "jupyterlab", "oci"}

    assert "cellbox/py.typed" in names
    assert labextension["name"] == "cellbox"
    static = {n for n in names if n.startswith(f"{data}share/jupyter/labextensions/cellbox/static/")}
    assert any(n.endswith("/style.js") for n in static) and any("/remoteEntry." in n for n in static)
    assert f"{data}share/jupyter/labextensions/cellbox/install.json" in names
    assert f"{data}etc/jupyter/jupyter_server_config.d/cellbox.json" in names


def test_each_extra_names_modules_of_its_packages() -> None:
    """`cellbox.common.extras` checks for modules that the extra's packages, as pyproject.toml lists them, bring."""
    declared = PYPROJECT["project"]["optional-dependencies"]
    providers = importlib.metadata.packages_distributions()
    for extra, modules in extras.EXTRAS.items():
        packages = {_name(r) for r in declared[extra]}
        for module in modules:
            assert {_name(d) for d in providers.get(module, [])} & packages, (extra, module)
    assert {_name(r) for r in declared["all"]} == {"cellbox"}
    assert set(re.findall(r"\w+", declared["all"][0].split("[", 1)[1])) == set(extras.EXTRAS)


# Run in a fresh interpreter where no module of any extra can be imported, as after `pip install cellbox` alone.
_CLIENT_ONLY = textwrap.dedent(
    """
    import contextlib, importlib, io, json, os, sys

    blocked = set(json.loads(os.environ["BLOCKED"]))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    for module in ("cellbox", "cellbox.api", "cellbox.session.sandbox", "cellbox.notebook.magics",
                   "cellbox.pool.fanout", "cellbox.doctor", "cellbox.cli"):
        importlib.import_module(module)

    from cellbox import ConfigurationError, cli
    from cellbox.common import isolation
    from cellbox.session import backend

    isolation.missing = lambda: None  # a host that could isolate code: the extra is what is missing

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["serve"])
    try:
        backend.settings()
    except ConfigurationError as exc:
        autostart = str(exc)
    else:
        autostart = None
    with contextlib.redirect_stdout(io.StringIO()):
        config = cli.main(["config"])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
    print(json.dumps({"serve": [code, err.getvalue()], "autostart": autostart, "config": config, "loaded": loaded}))
    """
)


def test_the_client_works_without_the_extras(tmp_path: Path) -> None:
    script = tmp_path / "client_only.py"
    script.write_text(_CLIENT_ONLY)
    blocked = sorted({m.split(".")[0] for modules in extras.EXTRAS.values() for m in modules} | {"jupyterlab"})
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "BLOCKED": json.dumps(blocked)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["loaded"] == []
    code, said = found["serve"]
    assert code == 1 and said.count("\n") == 1 and "pip install 'cellbox[local]'" in said, said
    assert found["autostart"] and "pip install 'cellbox[local]'" in found["autostart"]
    assert found["config"] == 0


def _private_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "cellbox" and any(p.startswith("_") and not p.endswith("__") for p in parts):
                found.append(f"{name} (line {node.lineno})")
    return found


def test_no_private_imports_of_other_packages() -> None:
    """A private module of another package (`oci._vendor`, `pandas._libs`) may change in any release."""
    offenders = {}
    for path in sorted((ROOT / "src" / "cellbox").rglob("*.py")):
        found = _private_imports(ast.parse(path.read_text(), str(path)))
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}
