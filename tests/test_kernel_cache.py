"""Cached kernels go stale with any source of mcbits.coding, not only their own file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numba

import mcbits
from mcbits.coding import kernel_cache

ROOT = Path(mcbits.__file__).resolve().parent.parent


def _package_kernels():
    import importlib
    import pkgutil

    import mcbits.coding as package

    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"mcbits.coding.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher) and value.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", value


def test_every_cached_kernel_of_the_package_is_stamped_with_the_whole_package():
    kernels = dict(_package_kernels())
    assert "mcbits.coding.fused._encode_step" in kernels and "mcbits.coding.rans._push_table" in kernels
    for name, kernel in kernels.items():
        if kernel._cache is not None and type(kernel._cache).__name__ != "NullCache":
            assert type(kernel._cache._impl.locator) in kernel_cache.STAMPED_LOCATORS, name


def test_the_digest_covers_every_source_file(tmp_path):
    copy = tmp_path / "coding"
    shutil.copytree(kernel_cache.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "tables"))
    assert kernel_cache.sources_digest(copy) == kernel_cache.sources_digest()
    for name in ("hashing.py", "exact.py"):
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        assert kernel_cache.sources_digest(copy) != kernel_cache.sources_digest()
        path.write_bytes(original)


_POP = """
import sys
import numpy as np
from mcbits.coding import gaussian
from mcbits.coding.rans import Message
assert gaussian.__file__.startswith(sys.argv[1]), gaussian.__file__
print(gaussian.pop(Message(), np.zeros((1, 3), np.int64), np.zeros((1, 3), np.int64), 8, 16).tolist())
"""


def test_an_edit_to_a_called_file_recompiles_the_caller(tmp_path):
    # a copy of the project, its kernels cached in their own folder; gaussian's pop kernel calls
    # rans.py's and exact.py's kernels
    project = tmp_path / "project"
    shutil.copytree(ROOT / "mcbits", project / "mcbits", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(project), "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "NUMBA_DEBUG_CACHE": "1"}

    def run() -> str:
        # cwd: `python -c` puts it first on sys.path, so the copy is what gets imported
        done = subprocess.run([sys.executable, "-c", _POP, str(project)], env=env, cwd=project,
                              capture_output=True, text=True, check=True)
        assert done.stdout.splitlines()[-1] == "[[33, 59, 243]]"
        return done.stdout

    first = run()
    assert "_pop_gaussian" in first and "data saved" in first
    assert "data loaded" in run()  # unchanged sources: from the cache
    rans = project / "mcbits" / "coding" / "rans.py"
    rans.write_text(rans.read_text() + "\n# an edit that numba's own stamp would not see from gaussian.py\n")
    again = run()
    pop_lines = [line for line in again.splitlines() if "_pop_gaussian" in line]
    assert pop_lines and not any("data loaded" in line for line in pop_lines), again
