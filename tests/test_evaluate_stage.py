"""The evaluate stage: metrics of one (model, test set) item, seeded; and its place in the DVC
pipeline (a second repro does nothing, an evaluation-only change reruns evaluation only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import build_mirror_from, make_dvc_repo, run_dvc, tool_env

from mcbits.data.datasets import save_binarized
from mcbits.vae.models import BinaryVAE, save_model
from stages import evaluate as evaluate_stage

EVALUATE = {"num_images": 20, "seed": 0, "cis_seed": 0, "batch_size": 8, "nll_samples": 200}


def _setup(root: Path, particles: list[int], **evaluate: object) -> None:
    params = {"grid": {"datasets": ["toy"], "particles": particles}, "evaluate": {**EVALUATE, **evaluate}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    torch.manual_seed(0)
    save_model(BinaryVAE(latent_dim=5, hidden_dim=12), root / "checkpoints" / "toy-n2" / "model.pt")
    rng = np.random.default_rng(0)
    for name, n in (("toy", 30), ("other", 12)):
        bits = (rng.random((n, 784)) < 0.2).astype(np.uint8)
        meta = {"dataset": name, "display_name": f"{name} set", "subset": name == "other"}
        save_binarized(root / "data/prepared" / name / "test.npz", bits, np.zeros(n), np.arange(n), meta)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)  # the stage pins one thread


def _run(testset: str = "toy") -> dict:
    """Run the stage; return its details (the tracked metrics are checked against them)."""
    evaluate_stage.main(["--dataset", "toy", "--particles", "2", "--testset", testset])
    details = json.loads((Path("details/evaluate") / f"toy-n2__{testset}.json").read_text())
    metrics = json.loads((Path("metrics/evaluate") / f"toy-n2__{testset}.json").read_text())
    # Tracked metrics: each bound in bits/dim (6 significant digits) and the NLL in nats, nothing else.
    expected = {k: float(f"{b['bits_per_dim']:.6g}") for k, b in details["bounds"].items()}
    expected["nll_nats"] = float(f"{details['bounds']['nll']['nats']:.6g}")
    assert metrics == expected
    return details


def test_evaluate_writes_every_bound(repo):
    _setup(repo, [1, 3])
    m = _run()
    # The model's own N (2) joins the grid's particle counts.
    assert m["particle_counts"] == [1, 2, 3]
    assert set(m["bounds"]) == {
        "neg_elbo",
        "neg_joint",
        *(f"neg_iwae_{n}" for n in (1, 2, 3)),
        *(f"neg_coupled_iwae_{n}" for n in (1, 2, 3)),
        "nll",
    }
    # The NLL: k = nll_samples importance samples per image; -log p(x) <= every bound's estimate
    # on average (it is IWAE_k with k = 200 >= 3), and its standard error is recorded.
    nll = m["bounds"]["nll"]
    assert nll["num_particles"] == 200 and nll["samples"] == 200 * 20 and m["nll_samples"] == 200
    assert nll["nats"] < m["bounds"]["neg_iwae_3"]["nats"] < m["bounds"]["neg_elbo"]["nats"]
    assert nll["std_error_nats"] > 0
    assert m["model"] == "toy-n2" and m["testset"] == "toy" and m["in_distribution"] is True
    assert m["num_images"] == 20 and m["seed"] == 0 and m["dtype"] == "float64"
    assert m["bounds"]["neg_iwae_3"]["samples"] == 60
    for b in m["bounds"].values():
        assert b["bits_per_dim"] > 0 and np.isfinite(b["nats"])


def test_evaluate_is_seeded(repo):
    _setup(repo, [1, 3])
    first = _run()["bounds"]
    assert _run()["bounds"] == first
    _setup(repo, [1, 3], seed=1)
    assert _run()["bounds"]["neg_elbo"] != first["neg_elbo"]


def test_cross_set_and_short_test_set(repo, capsys):
    _setup(repo, [1])
    m = _run("other")
    assert m["in_distribution"] is False and m["testset_subset"] is True
    # 12 images available, 20 asked for: all 12 are used, and both numbers are recorded.
    assert m["num_images"] == 12 and m["num_images_requested"] == 20
    assert "fewer than evaluate.num_images" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"evaluate": {**EVALUATE, "num_images": 0}}, "evaluate.num_images must be a positive integer"),
        ({"evaluate": {**EVALUATE, "seed": -1}}, "evaluate.seed"),
        ({"grid": {"datasets": ["toy"], "particles": 5}}, "grid.particles must be a list"),
    ],
)
def test_bad_parameters(repo, capsys, change, message):
    _setup(repo, [1])
    params = yaml.safe_load(Path("params.yaml").read_text())
    params.update(change)
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as info:
        _run()
    assert info.value.code == 1
    assert message in capsys.readouterr().err


def test_missing_model_is_a_clear_error(repo, capsys):
    _setup(repo, [1])
    (repo / "checkpoints/toy-n2/model.pt").unlink()
    with pytest.raises(SystemExit):
        _run()
    err = capsys.readouterr().err
    assert "does not exist" in err and "mcbits fetch checkpoint" in err  # the library's remedy
    assert "dvc repro" in err  # the stage's pointer to the pipeline


@pytest.mark.dvc
@pytest.mark.mirror
def test_pipeline_import_then_evaluate_reruns_only_what_changed(tmp_path, real_mirror):
    mirror = build_mirror_from(
        real_mirror,
        tmp_path / "mirror",
        emnist=("emnist-mnist-test-images-idx3-ubyte.gz", "emnist-mnist-test-labels-idx1-ubyte.gz"),
        checkpoints=[("mnist", 1)],
    )
    repo = make_dvc_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["grid"] = {"datasets": ["emnist-mnist"], "particles": [1]}
    params["evaluate"]["num_images"] = 100
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env(MCBITS_MIRROR=str(mirror), MCBITS_OFFLINE="1", MCBITS_CACHE=str(tmp_path / "cache"))

    first = run_dvc(repo, "repro", "evaluate", env=env).stdout
    evaluate = "evaluate@n-1-train-emnist-mnist-test-emnist-mnist"
    for stage in ("prepare@emnist-mnist", "train@emnist-mnist-n-1", evaluate):
        assert f"Running stage '{stage}'" in first, first
    details = json.loads((repo / "details/evaluate/emnist-mnist-n1__emnist-mnist.json").read_text())
    assert details["num_images"] == 100
    metrics = json.loads((repo / "metrics/evaluate/emnist-mnist-n1__emnist-mnist.json").read_text())
    assert 0.2 < metrics["neg_elbo"] < 0.27
    train = json.loads((repo / "details/train/emnist-mnist-n1.json").read_text())
    assert train["source"] == "published" and len(train["sha256"]) == 64

    second = run_dvc(repo, "repro", "evaluate", env=env).stdout
    assert "Running stage" not in second, second

    params["evaluate"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = run_dvc(repo, "repro", "evaluate", env=env).stdout
    assert f"Running stage '{evaluate}'" in third, third
    assert "Running stage 'train@" not in third and "Running stage 'prepare@" not in third, third
