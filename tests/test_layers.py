"""The layers stay layered: the coding layer (mcbits/coding) never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CODING = Path(__file__).resolve().parents[1] / "mcbits" / "coding"
CODING_MODULES = sorted(CODING.rglob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth (function-level imports too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", CODING_MODULES, ids=lambda p: str(p.relative_to(CODING)))
def test_coding_module_source_imports_no_torch(path):
    assert "torch" not in _imported_roots(path), f"{path} imports torch"


def test_importing_the_coding_layer_loads_no_torch():
    modules = [
        "mcbits.coding." + ".".join(p.relative_to(CODING).with_suffix("").parts)
        for p in CODING_MODULES
        if p.name != "__init__.py"
    ]
    assert modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
