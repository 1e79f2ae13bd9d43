"""`make setup`: the CPU build by default, `TORCH=cuda` for PyTorch's CUDA build of the same version.

Checked as a dry run (`make -n`): the commands are what the README promises. Installing a CUDA
build needs PyTorch's index and, to be of use, an NVIDIA GPU, neither of which a test may assume.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'venv'}", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def test_default_setup_installs_the_pinned_package_only(tmp_path):
    out = _dry_run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "pip install -q -e '.[test]'" in out.stdout
    assert "index-url" not in out.stdout and "installed-cpu" in out.stdout


def test_cuda_setup_reinstalls_the_same_torch_from_the_cuda_index_and_checks_it(tmp_path):
    pinned = re.search(r'"torch==([0-9.]+)"', (REPO_ROOT / "pyproject.toml").read_text()).group(1)
    out = _dry_run(tmp_path, "TORCH=cuda")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    install = next(i for i, line in enumerate(lines) if "-e '.[test]'" in line)
    cuda = next(i for i, line in enumerate(lines) if f"'torch=={pinned}'" in line)
    assert install < cuda, out.stdout  # the CUDA build replaces the pinned CPU wheel, not the reverse
    assert "--index-url https://download.pytorch.org/whl/cu" in lines[cuda]
    assert "torch.version.cuda" in lines[cuda + 1]  # a CPU build is refused, not silently kept
    assert "installed-cuda" in out.stdout


@pytest.mark.parametrize("value", ["rocm", "gpu"])
def test_an_unknown_torch_build_is_refused(tmp_path, value):
    out = _dry_run(tmp_path, f"TORCH={value}")
    assert out.returncode != 0 and f"TORCH must be cpu or cuda, not '{value}'" in out.stderr
