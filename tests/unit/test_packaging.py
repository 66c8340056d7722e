"""Packaging: what `pip install dialsflow` brings, and that the pins agree with it.

The fast tests read pyproject.toml, requirements*.txt, constraints.txt and the imports of
the code. The slow one installs the current tree into a fresh virtualenv with plain pip (no
Airflow, no extra) and runs the CLI and the library there.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
EXTRAS = {name: [Requirement(r) for r in reqs]
          for name, reqs in PROJECT["optional-dependencies"].items()}
#: packages only the benchmark's seed-style baseline uses (in its own venv): never a
#: dependency of the product, nor in the development venv (cmsdials imports it where it is)
BENCH_ONLY = {"pandas"}


def _names(reqs: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in reqs}


def _pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements or constraints file; every entry must be `==`."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert m, f"{path.name}: {line!r} is not pinned with =="
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


PROD_PINS = _pins(ROOT / "requirements.txt")
DEV_PINS = _pins(ROOT / "requirements-dev.txt")
BENCH_PINS = _pins(ROOT / "requirements-bench.txt")
LOCK = _pins(ROOT / "constraints.txt")


def test_extras_are_airflow_and_emulator() -> None:
    assert set(EXTRAS) == {"airflow", "emulator"}
    assert "apache-airflow" in _names(EXTRAS["airflow"])
    assert not _names(RUNTIME) & _names(EXTRAS["airflow"])  # the library runs without Airflow


def test_requirements_txt_pins_exactly_the_runtime_and_airflow_dependencies() -> None:
    """requirements.txt is what the production image installs: runtime + airflow extra."""
    production = RUNTIME + EXTRAS["airflow"]
    assert set(PROD_PINS) == _names(production)
    for req in production:
        version = PROD_PINS[canonicalize_name(req.name)]
        assert req.specifier.contains(version), f"{req.name}=={version} is outside {req}"


def test_emulator_extra_is_pinned_for_development_only() -> None:
    for req in EXTRAS["emulator"]:
        name = canonicalize_name(req.name)
        version = PROD_PINS.get(name) or DEV_PINS.get(name)
        assert version, f"{req.name} (emulator extra) is pinned in no requirements file"
        assert req.specifier.contains(version), f"{req.name}=={version} is outside {req}"
    emulator_only = _names(EXTRAS["emulator"]) - _names(RUNTIME)
    assert not emulator_only & set(PROD_PINS), "emulator-only packages in the production pins"


def test_pandas_is_pinned_for_the_benchmark_only() -> None:
    declared = _names(RUNTIME) | {n for reqs in EXTRAS.values() for n in _names(reqs)}
    assert not BENCH_ONLY & declared
    assert not BENCH_ONLY & (set(PROD_PINS) | set(DEV_PINS))
    assert set(BENCH_PINS) == BENCH_ONLY


def test_the_production_image_installs_the_production_pins_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"-r \S*?(requirements[\w-]*\.txt)", dockerfile)
    assert installs == ["requirements.txt"]
    # and the build fails if pandas got into the image anyway
    assert "assert not u.find_spec('pandas')" in dockerfile


def test_the_lock_pins_every_requirement_at_the_same_version() -> None:
    assert not set(PROD_PINS) & set(DEV_PINS), "pinned twice"
    for name, version in {**PROD_PINS, **DEV_PINS, **BENCH_PINS}.items():
        assert LOCK.get(name) == version, f"{name}: requirements {version}, lock {LOCK.get(name)}"
    declared = _names(RUNTIME) | {n for reqs in EXTRAS.values() for n in _names(reqs)}
    assert declared <= set(LOCK)


def _executed_on_import(tree: ast.Module) -> list[ast.AST]:
    """The nodes that run when the module is imported: not function bodies, not
    `if TYPE_CHECKING:` blocks."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return nodes


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = _executed_on_import(tree) if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@cache
def _owners() -> dict[str, list[str]]:
    return packages_distributions()


def _undeclared(modules: set[str], allowed: set[str]) -> set[str]:
    """The modules, neither stdlib nor ours, that no distribution in `allowed` provides."""
    owners = _owners()
    ours = {"dialsflow", "dialsflow_emulator", "__future__"}
    missing = set()
    for module in modules - ours - set(sys.stdlib_module_names):
        assert module in owners, f"{module} belongs to no installed distribution"
        if not {canonicalize_name(d) for d in owners[module]} & allowed:
            missing.add(module)
    return missing


def _py_files(folder: Path, *, exclude: str | None = None) -> list[Path]:
    return [p for p in sorted(folder.rglob("*.py")) if not (exclude and exclude in p.parts)]


#: distributions a declared one brings and code may import directly: pydantic pins its core
#: exactly; Airflow's core, task SDK and pendulum (its datetime type) come with apache-airflow,
#: and so do the api-server's web framework and ORM (the UI plugin's app runs inside it)
PYDANTIC_PARTS = {"pydantic-core"}
AIRFLOW_PARTS = {"apache-airflow-core", "apache-airflow-task-sdk", "pendulum", "fastapi",
                 "sqlalchemy"}


def test_the_library_imports_only_its_runtime_dependencies() -> None:
    """Everything under plugins/dialsflow but airflow/: module level needs the runtime
    dependencies only; a function may import Airflow (reading Airflow's connection store
    when Airflow is there)."""
    runtime = _names(RUNTIME) | PYDANTIC_PARTS
    with_airflow = runtime | _names(EXTRAS["airflow"]) | AIRFLOW_PARTS
    for path in _py_files(ROOT / "plugins" / "dialsflow", exclude="airflow"):
        rel = path.relative_to(ROOT)
        missing = _undeclared(_imports(path, top_level_only=True), runtime)
        assert not missing, f"{rel} imports {sorted(missing)} at module level"
        missing = _undeclared(_imports(path), with_airflow)
        assert not missing, f"{rel} imports {sorted(missing)}"


def test_dags_and_the_airflow_adapters_need_runtime_and_the_airflow_extra_only() -> None:
    allowed = _names(RUNTIME) | PYDANTIC_PARTS | _names(EXTRAS["airflow"]) | AIRFLOW_PARTS
    for path in [*_py_files(ROOT / "plugins" / "dialsflow" / "airflow"),
                 *_py_files(ROOT / "dags")]:
        missing = _undeclared(_imports(path), allowed)
        assert not missing, f"{path.relative_to(ROOT)} imports {sorted(missing)}"


def test_the_emulator_needs_runtime_and_the_emulator_extra_only() -> None:
    allowed = _names(RUNTIME) | PYDANTIC_PARTS | _names(EXTRAS["emulator"])
    for path in _py_files(ROOT / "dialsflow_emulator"):
        missing = _undeclared(_imports(path), allowed)
        assert not missing, f"{path.relative_to(ROOT)} imports {sorted(missing)}"


def test_no_module_fakes_pandas() -> None:
    for path in _py_files(ROOT / "plugins"):
        assert not re.search(r"sys\.modules\[.pandas", path.read_text()), path


# ---- a real install ------------------------------------------------------------------------


def _copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked and new files, not ignored ones): what a
    commit of the current state would hold, uncommitted changes included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.mark.slow
def test_pip_install_gives_the_cli_and_library_without_airflow_or_pandas(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    src = tmp_path / "src"
    _copy_tree(src)
    venv = tmp_path / "v"
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*cmd: str | Path) -> subprocess.CompletedProcess:
        # cwd outside the source copy: imports must come from the installed package
        return subprocess.run([str(c) for c in cmd], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    def ok(*cmd: str | Path) -> str:
        done = run(*cmd)
        assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    ok(sys.executable, "-m", "venv", venv)
    bin_ = venv / "bin"
    # the lock as constraints: the versions CI tests, and no surprise from a new release
    ok(bin_ / "pip", "install", "-q", "-c", ROOT / "constraints.txt", src)

    assert "dialsflow fetch" in ok(bin_ / "dialsflow", "fetch", "--help")
    ok(bin_ / "dialsflow", "check-lumis", "--help")
    ok(bin_ / "python", "-c",
       "import dialsflow, dialsflow.pipeline.ingest, dialsflow.services.dials")
    for module in ("airflow", "pandas"):
        done = run(bin_ / "python", "-c", f"import {module}")
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, module

    # every module of the library imports without Airflow (airflow/ is the adapters' layer),
    # and so do the cmsdials auth modules DialsClient uses; nothing brings pandas in
    ok(bin_ / "python", "-c", """if True:
        import importlib, pkgutil, sys
        import dialsflow
        for m in pkgutil.walk_packages(dialsflow.__path__, "dialsflow."):
            if m.name != "dialsflow.airflow" and not m.name.startswith("dialsflow.airflow."):
                importlib.import_module(m.name)
        import cmsdials.auth.client, cmsdials.auth.client_credentials, cmsdials.auth.device
        assert "pandas" not in sys.modules
        """)
    # the emulator's `env` works from the base install (`serve` needs the emulator extra)
    assert "AIRFLOW_CONN_DIALS_DEFAULT" in ok(bin_ / "dialsflow-emulator", "env")

    # the wheel holds every module of both packages, subpackages included
    installed = set(ok(bin_ / "python", "-c", """if True:
        from importlib.metadata import files
        print("\\n".join(str(f) for f in files("dialsflow") if f.suffix == ".py"))
        """).split())
    plugins = src / "plugins"
    expected = {str(p.relative_to(plugins)) for p in _py_files(plugins / "dialsflow")}
    expected |= {str(p.relative_to(src)) for p in _py_files(src / "dialsflow_emulator")}
    assert installed == expected
