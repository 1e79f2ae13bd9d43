"""Shared test fixtures: isolated artifact settings, the real mirror, fixture mirrors, DVC repos.

Every test runs with MCBITS_OFFLINE=1 (no test may touch the network; tests of the HTTP path
unset it and talk to a server on 127.0.0.1) and its own empty MCBITS_CACHE. MCBITS_MIRROR is left
as the environment sets it; tests that depend on which mirror is seen set or delete it themselves.

Helpers for pipeline tests (import them with `from conftest import ...`, or use the fixtures):
- `REAL_MIRROR` / fixture `real_mirror`: the project's artifact mirror, or a skip with the reason.
- `build_mirror_from(real, dest, emnist=..., checkpoints=...)`: a mirror folder holding links to
  chosen files of the real mirror (so a test decides what a source offers).
- `write_emnist_fixture(folder, split, part, n)`: NIST-named idx.gz files of generated images.
- `fixture_artifact(...)`, `use_fixture_dataset(...)`: registry entries whose checksums are those
  of fixture files, for tests that exercise verification without the real data.
- `make_dvc_repo(dest)`, `run_dvc(repo, *args)`: a temporary git+DVC copy of this repo's pipeline.
- `build_generated_mirror(dest)` + `pin_fixture_registry(repo, mirror)`: generated EMNIST test
  files and a repo copy whose registry accepts them, for DVC tests without the real mirror.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from mcbits.data import datasets, download, fetch, idx, registry
from mcbits.data.checksums import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[1]


def _find_mirror() -> Path | None:
    candidates = []
    if os.environ.get("MCBITS_MIRROR"):
        candidates.append(Path(os.environ["MCBITS_MIRROR"]))
    candidates.append(REPO_ROOT.parent / "shared" / "mirror")
    for path in candidates:
        if (path / "emnist").is_dir() and (path / "mcbits-checkpoints").is_dir():
            return path.resolve()
    return None


# Looked up once, before any fixture changes the environment.
REAL_MIRROR: Path | None = _find_mirror()
MIRROR_SKIP_REASON = (
    "artifact mirror not found: set MCBITS_MIRROR to it or provide ../shared/mirror "
    "(with emnist/ and mcbits-checkpoints/)"
)


@pytest.fixture(autouse=True)
def _isolated_artifact_settings(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path_factory.mktemp("mcbits-cache")))
    monkeypatch.setenv(fetch.OFFLINE_ENV, "1")
    # Tests need no patience: a retry waits 0 s.
    monkeypatch.setattr(download, "DOWNLOAD_BACKOFF_S", 0.0)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch intra-op thread (restored afterwards)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def real_mirror() -> Path:
    """The project's artifact mirror (skips the test when it is absent)."""
    if REAL_MIRROR is None:
        pytest.skip(MIRROR_SKIP_REASON)
    return REAL_MIRROR


def build_mirror_from(
    real: Path,
    dest: Path,
    *,
    emnist: Iterable[str] = (),
    checkpoints: Iterable[tuple[str, int]] = (),
) -> Path:
    """A mirror folder at `dest` holding symlinks to the named files of the real mirror."""
    for name in emnist:
        target = dest / "emnist" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(real / "emnist" / name)
    for split, n in checkpoints:
        folder = registry.checkpoint_folder(split, n)
        (dest / "mcbits-checkpoints" / folder).mkdir(parents=True, exist_ok=True)
        for name in ("model.pt", "train_config.yml"):
            (dest / "mcbits-checkpoints" / folder / name).symlink_to(
                real / "mcbits-checkpoints" / folder / name
            )
    dest.mkdir(parents=True, exist_ok=True)
    return dest


EMNIST_TEST_FILES = (
    "emnist-mnist-test-images-idx3-ubyte.gz",
    "emnist-mnist-test-labels-idx1-ubyte.gz",
)
LETTERS_SUBSET_FILES = (
    "emnist-letters-test-first14800-images-idx3-ubyte.gz",
    "emnist-letters-test-first14800-labels-idx1-ubyte.gz",
)


@pytest.fixture
def default_fixture_mirror(real_mirror, tmp_path) -> Path:
    """A mirror with what the default pipeline needs: EMNIST test files (letters: the subset)
    and the six published checkpoints, as links to the real mirror."""
    return build_mirror_from(
        real_mirror,
        tmp_path / "fixture-mirror",
        emnist=EMNIST_TEST_FILES + LETTERS_SUBSET_FILES,
        checkpoints=list(registry.PUBLISHED_CHECKPOINTS),
    )


# ---------------------------------------------------------------------------------------------
# Generated data and registry entries that match it


def fixture_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 28x28 uint8 images (with a wide range of grays) and labels 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_emnist_fixture(folder: Path, split: str, part: str, n: int, seed: int = 0) -> list[Path]:
    """Write NIST-named gz idx files (images stored transposed, as NIST does); return paths."""
    images, labels = fixture_images(n, seed)
    img = folder / f"emnist-{split}-{part}-images-idx3-ubyte.gz"
    lab = folder / f"emnist-{split}-{part}-labels-idx1-ubyte.gz"
    idx.write_images(img, images.transpose(0, 2, 1))
    idx.write_labels(lab, labels)
    return [img, lab]


def sha256_of(path: Path) -> str:
    return file_sha256(path)


def fixture_artifact(
    base: registry.Artifact, files: Iterable[Path], **changes: object
) -> registry.Artifact:
    """`base` with only `files` (by name), each identified by its SHA-256; no network sources
    unless `changes` adds them (base_urls=..., zips=..., npm=...)."""
    specs = {p.name: registry.FileSpec(p.name, (f"sha256:{sha256_of(p)}",)) for p in files}
    fields = {"files": specs, "base_urls": (), "zips": (), "npm": (), "local_dirs": ()}
    fields.update(changes)
    return dataclasses.replace(base, **fields)


def use_fixture_dataset(monkeypatch, dataset_id: str, *, test_count: int, train_count: int = 0):
    """Make `dataset_id` expect fixture-sized files (counts), keeping its names and layout."""
    info = datasets.DATASETS[dataset_id]
    new = dataclasses.replace(
        info,
        test=dataclasses.replace(info.test, count=test_count),
        train=dataclasses.replace(info.train, count=train_count),
    )
    if info.test_subset is not None:
        new = dataclasses.replace(new, test_subset=dataclasses.replace(info.test_subset, count=test_count))
    monkeypatch.setitem(datasets.DATASETS, dataset_id, new)
    return new


# ---------------------------------------------------------------------------------------------
# Temporary DVC repositories


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: this interpreter's bin first, no DVC analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "mcbits tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@example.invalid"
    env.update(extra)
    return env


def run_dvc(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True):
    """Run `python -m dvc <args>` in `repo`; return the CompletedProcess (text, merged output)."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=env or tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({result.returncode}):\n{result.stdout}")
    return result


def make_dvc_repo(dest: Path, *, extra: Iterable[str] = ()) -> Path:
    """Copy the pipeline (dvc.yaml, params.yaml, plot_templates/, stages/, mcbits/ and `extra`
    paths) into `dest`, then `git init` and `dvc init` there. Stages run against the copied
    mcbits (cwd comes first on sys.path for `python -m`), so the copy is self-consistent."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("dvc.yaml", "params.yaml", "plot_templates", *extra):
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for name in ("stages", "mcbits"):
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=ignore)
    env = tool_env()
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    run_dvc(dest, "init", "-q", env=env)
    shutil.copy2(REPO_ROOT / ".dvcignore", dest / ".dvcignore")  # caches in source folders
    shutil.copy2(REPO_ROOT / ".gitignore", dest / ".gitignore")  # logs/, plans/, ... as in a clone
    run_dvc(dest, "config", "core.analytics", "false", env=env)
    return dest


# ---------------------------------------------------------------------------------------------
# A generated mirror for pipeline tests that must run without the real one


def build_generated_mirror(dest: Path, *, mnist_test: int = 40, letters_subset: int = 30) -> Path:
    """A mirror of generated EMNIST files with NIST's names: the mnist-split test set and the
    letters test subset (no full letters test set, as in the real mirror)."""
    folder = dest / "emnist"
    folder.mkdir(parents=True, exist_ok=True)
    write_emnist_fixture(folder, "mnist", "test", mnist_test, seed=101)
    images, labels = fixture_images(letters_subset, seed=102)
    idx.write_images(folder / LETTERS_SUBSET_FILES[0], images.transpose(0, 2, 1))
    idx.write_labels(folder / LETTERS_SUBSET_FILES[1], labels + 1)  # letters count from 1
    return dest


_OVERRIDE = """

# --- appended by tests/conftest.py (pin_fixture_registry) to a temporary copy only ---
import dataclasses as _dc  # noqa: E402

from mcbits.data.registry import REGISTRY as _REGISTRY  # noqa: E402
from mcbits.data.registry import FileSpec as _FileSpec  # noqa: E402

for _name, _specs in {specs!r}.items():
    _REGISTRY[_name] = _dc.replace(
        _REGISTRY[_name],
        files={{
            **_REGISTRY[_name].files,
            **{{n: _FileSpec(n, (d,)) for n, d in _specs.items()}},
        }},
        base_urls=(), zips=(), npm=(), local_dirs=(),
    )
DATASETS["emnist-mnist"] = _dc.replace(
    DATASETS["emnist-mnist"], test=_dc.replace(DATASETS["emnist-mnist"].test, count={mnist})
)
DATASETS["emnist-letters"] = _dc.replace(
    DATASETS["emnist-letters"],
    test_subset=_dc.replace(DATASETS["emnist-letters"].test_subset, count={letters}),
)
"""


def pin_fixture_registry(repo: Path, mirror: Path) -> None:
    """Make a repo copy (from make_dvc_repo) accept the generated mirror's EMNIST files: appends
    to the copy's mcbits/data/datasets.py an override of the registry's checksums (the files' SHA-256s)
    and the expected counts. Never use on the real repository."""
    assert repo.resolve() != REPO_ROOT.resolve(), "only for temporary copies"
    folder = mirror / "emnist"
    subset = set(LETTERS_SUBSET_FILES)
    specs: dict[str, dict[str, str]] = {"emnist": {}, "emnist-letters-test-subset": {}}
    for path in sorted(folder.iterdir()):
        key = "emnist-letters-test-subset" if path.name in subset else "emnist"
        specs[key][path.name] = f"sha256:{sha256_of(path)}"
    mnist = len(idx.read_labels(folder / EMNIST_TEST_FILES[1]))
    letters = len(idx.read_labels(folder / LETTERS_SUBSET_FILES[1]))
    with open(repo / "mcbits" / "data" / "datasets.py", "a") as f:
        f.write(_OVERRIDE.format(specs=specs, mnist=mnist, letters=letters))
