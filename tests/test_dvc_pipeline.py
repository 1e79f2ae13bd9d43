"""`dvc repro prepare` in a temporary git+DVC copy of the pipeline, fed from a fixture mirror
(links to the real mirror's EMNIST test files, or generated files); then a second repro must
rerun nothing."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import build_generated_mirror, make_dvc_repo, pin_fixture_registry, run_dvc, tool_env

from mcbits.data.datasets import load_binarized


@pytest.mark.dvc
@pytest.mark.mirror
def test_repro_prepare_then_nothing_to_do(tmp_path, default_fixture_mirror):
    repo = make_dvc_repo(tmp_path / "repo")
    env = tool_env(
        MCBITS_MIRROR=str(default_fixture_mirror),
        MCBITS_OFFLINE="1",
        MCBITS_CACHE=str(tmp_path / "cache"),
    )
    datasets = yaml.safe_load((repo / "params.yaml").read_text())["grid"]["datasets"]
    assert set(datasets) >= {"emnist-mnist", "emnist-letters"}

    first = run_dvc(repo, "repro", "prepare", env=env)
    for dataset in datasets:
        assert f"Running stage 'prepare@{dataset}'" in first.stdout, first.stdout

    bits, _, meta = load_binarized(repo / "data/prepared/emnist-mnist/test.npz")
    assert bits.shape == (10000, 784) and meta["subset"] is False
    letters = json.loads((repo / "data/prepared/emnist-letters/summary.json").read_text())
    assert letters["subset"] is True and letters["display_name"] == "EMNIST Letters (a-s, 14,800)"

    # The lock records the tracked params (seed, train_data) and not the mirror setting.
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    params = lock["stages"]["prepare@emnist-mnist"]["params"]["params.yaml"]
    assert set(params) == {"prepare.seed", "prepare.train_data"}

    second = run_dvc(repo, "repro", "prepare", env=env)
    assert "Running stage" not in second.stdout, second.stdout
    skipped = set(re.findall(r"Stage 'prepare@([\w-]+)' didn't change, skipping", second.stdout))
    assert skipped == set(datasets)
    assert "Data and pipelines are up to date." in run_dvc(repo, "status", "prepare", env=env).stdout

    # Where the files come from is not a reason to rerun (they are verified by checksum) ...
    original = yaml.safe_load((repo / "params.yaml").read_text())
    moved_params = dict(original, prepare=dict(original["prepare"], mirror="/elsewhere"))
    (repo / "params.yaml").write_text(yaml.safe_dump(moved_params))
    moved = dict(env, MCBITS_MIRROR=str(tmp_path / "another-mirror"))
    assert "up to date" in run_dvc(repo, "status", "prepare", env=moved).stdout
    # ... but the binarization seed is.
    reseeded = dict(original, prepare=dict(original["prepare"], seed=original["prepare"]["seed"] + 1))
    (repo / "params.yaml").write_text(yaml.safe_dump(reseeded))
    status = run_dvc(repo, "status", "prepare", env=env).stdout
    assert "prepare.seed" in status and "prepare@emnist-mnist" in status


@pytest.mark.dvc
def test_repro_prepare_from_generated_mirror(tmp_path):
    # Needs no real mirror: generated files, and a repo copy whose registry knows their checksums.
    mirror = build_generated_mirror(tmp_path / "generated-mirror", mnist_test=40, letters_subset=30)
    repo = make_dvc_repo(tmp_path / "repo")
    pin_fixture_registry(repo, mirror)
    env = tool_env(MCBITS_MIRROR=str(mirror), MCBITS_OFFLINE="1", MCBITS_CACHE=str(tmp_path / "c"))
    first = run_dvc(repo, "repro", "prepare", env=env)
    assert "Running stage 'prepare@emnist-mnist'" in first.stdout, first.stdout
    bits, labels, meta = load_binarized(repo / "data/prepared/emnist-mnist/test.npz")
    assert bits.shape == (40, 784) and meta["seed"] == 42
    letters = json.loads((repo / "data/prepared/emnist-letters/summary.json").read_text())
    assert letters["subset"] is True and letters["test"]["num_images"] == 30
    second = run_dvc(repo, "repro", "prepare", env=env)
    assert "Running stage" not in second.stdout, second.stdout
    assert "Data and pipelines are up to date." in run_dvc(repo, "status", "prepare", env=env).stdout


@pytest.mark.dvc
def test_moving_the_mirror_changes_no_hash(tmp_path):
    # The prepared data (a dep of train) is the same wherever the mirror is: prepare is forced to
    # rerun from a moved mirror, and the lock stays byte for byte as it was (where the files came
    # from and how long it took go to logs/, which no stage tracks).
    mirror = build_generated_mirror(tmp_path / "here" / "mirror", mnist_test=20, letters_subset=12)
    repo = make_dvc_repo(tmp_path / "repo")
    pin_fixture_registry(repo, mirror)
    env = tool_env(MCBITS_MIRROR=str(mirror), MCBITS_OFFLINE="1", MCBITS_CACHE=str(tmp_path / "c"))
    run_dvc(repo, "repro", "prepare", env=env)
    lock = (repo / "dvc.lock").read_text()
    data = _data_hashes(repo)
    assert len(data) == 4  # raw and prepared, two data sets
    summary = (repo / "data/prepared/emnist-letters/summary.json").read_text()
    assert str(tmp_path) not in lock + summary

    moved = tmp_path / "elsewhere" / "another-name"
    moved.parent.mkdir()
    mirror.rename(moved)
    env = dict(env, MCBITS_MIRROR=str(moved))
    rerun = run_dvc(repo, "repro", "--force", "prepare", env=env).stdout
    assert "Running stage 'prepare@emnist-mnist'" in rerun, rerun
    assert _data_hashes(repo) == data
    assert str(tmp_path) not in (repo / "dvc.lock").read_text() + lock
    assert (repo / "data/prepared/emnist-letters/summary.json").read_text() == summary
    assert (repo / "dvc.lock").read_text() == lock
    # Where the files came from is logged by kind and name only.
    log = json.loads((repo / "logs/prepare/emnist-mnist.json").read_text())
    assert set(log["test_sources"].values()) == {
        "mirror:emnist-mnist-test-images-idx3-ubyte.gz", "mirror:emnist-mnist-test-labels-idx1-ubyte.gz"}


def _data_hashes(repo) -> dict[str, str]:
    """{output path: md5} of every data/ output in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if out["path"].startswith("data/")}
