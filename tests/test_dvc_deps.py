"""dvc.yaml's `deps` cover every project file each stage's command imports.

The import closure of a stage is computed from the code: the AST of its module (`python -m
stages.<name>`), then of every project module it imports (mcbits/ and stages/), recursively,
function-level imports included, with the `__init__.py` of every package on the way (Python runs
them). A dep covers a file when it names the file or a folder above it. A missing dep would let
DVC keep results of old code, so the test names the stage and the file.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("mcbits", "stages")
_MODULE_CMD = re.compile(r"python -m (stages(?:\.\w+)+)")


def module_file(module: str, root: Path = REPO_ROOT) -> Path | None:
    """The file of a project module (`a.b` -> a/b.py or a/b/__init__.py), else None."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every module name an import statement in `path` may load, at any depth of the code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from package import name` may import the submodule package.name
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def import_closure(module: str, root: Path = REPO_ROOT) -> set[Path]:
    """Project files (relative to root) that importing `module` runs, recursively."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = module_file(name, root)
        if path is None:
            continue
        files.add(path.relative_to(root))
        todo.extend(_imported_modules(path, name))
    return files


def stage_module(cmd: str) -> str:
    match = _MODULE_CMD.search(" ".join(str(cmd).split()))
    assert match, f"cannot find `python -m stages.<name>` in the command {cmd!r}"
    return match.group(1)


def missing_deps(dvc_yaml: dict, root: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """(stage, file) for every project file a stage imports that none of its deps covers."""
    missing = []
    for stage, spec in dvc_yaml["stages"].items():
        deps = [Path(str(d).rstrip("/")) for d in spec.get("deps", [])]
        for file in sorted(import_closure(stage_module(spec["cmd"]), root)):
            if not any(file == d or d in file.parents for d in deps):
                missing.append((stage, str(file)))
    return missing


@pytest.fixture(scope="module")
def dvc_yaml() -> dict:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())


def test_every_stage_depends_on_every_file_it_imports(dvc_yaml):
    missing = missing_deps(dvc_yaml)
    assert not missing, "dvc.yaml deps miss imported files:\n" + "\n".join(
        f"  stage {stage}: {file}" for stage, file in missing
    )


def test_the_checker_reports_a_removed_dep(dvc_yaml):
    broken = copy.deepcopy(dvc_yaml)
    deps = broken["stages"]["baselines"]["deps"]
    deps.remove("mcbits/results/baselines.py")
    assert ("baselines", "mcbits/results/baselines.py") in missing_deps(broken)
    # and a folder dep that a stage relies on, removed from the coding stages' shared list (one
    # YAML anchor: compress defines it, compress_cis, compress_stochastic and compress_if alias it)
    deps = broken["stages"]["compress"]["deps"]
    deps.remove("mcbits/coding")
    reported = {file for stage, file in missing_deps(broken) if stage == "compress"}
    assert {"mcbits/coding/coders.py", "mcbits/coding/rans.py"} <= reported
    coding = {"compress", "compress_cis", "compress_stochastic", "compress_if"}
    assert {stage for stage, _ in missing_deps(broken)} == {"baselines"} | coding


def test_the_closure_follows_function_level_and_package_imports(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "mcbits" / "sub").mkdir(parents=True)
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("def main():\n    from mcbits.sub import leaf\n")
    (tmp_path / "mcbits" / "__init__.py").write_text("from mcbits.base import X\n")
    (tmp_path / "mcbits" / "base.py").write_text("X = 1\n")
    (tmp_path / "mcbits" / "sub" / "__init__.py").write_text("")
    (tmp_path / "mcbits" / "sub" / "leaf.py").write_text("from . import other\nimport numpy\n")
    (tmp_path / "mcbits" / "sub" / "other.py").write_text("")
    (tmp_path / "mcbits" / "unused.py").write_text("")
    assert {str(p) for p in import_closure("stages.s", tmp_path)} == {
        "stages/__init__.py", "stages/s.py", "mcbits/__init__.py", "mcbits/base.py",
        "mcbits/sub/__init__.py", "mcbits/sub/leaf.py", "mcbits/sub/other.py",
    }
