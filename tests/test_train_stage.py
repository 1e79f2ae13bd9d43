"""The train stage end to end: training on a tiny fixture, and importing published checkpoints
(real ones from the mirror; corrupt, mismatched and non-finite ones made here)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mcbits.data import checkpoints, fetch, registry
from mcbits.data.datasets import save_binarized, save_grayscale
from mcbits.vae.models import BinaryVAE, load_model, save_model, save_torch_atomic
from stages import plan as plan_stage
from stages import train as train_stage
from stages import train_settings

# Training numbers depend on the thread count; one thread also keeps a busy machine fast.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_params(root: Path, **train: object) -> None:
    block = {
        "source": "train",
        "profile": "tiny",
        "device": "cpu",
        "cuda_graphs": True,
        "seed": 42,
        "latent_dim": 6,
        "hidden_dim": 24,
        "mirror": None,
        "profiles": {
            "tiny": {"epochs": 2, "batch_size": 20, "lr": 0.001, "adam_eps": 0.0001, "test_images": 30}
        },
    }
    block.update(train)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": block}))


def _write_data(root: Path, dataset: str = "mnist", train: bool = True) -> None:
    rng = np.random.default_rng(0)
    gray = np.zeros((100, 28, 28), dtype=np.uint8)
    for i in range(100):
        r, c = rng.integers(0, 20, size=2)
        gray[i, r : r + 8, c : c + 8] = 240
    gray = gray.reshape(100, 784)
    folder = root / "data" / "prepared" / dataset
    meta = {"dataset": dataset, "display_name": "fixture", "num_images": 100}
    if train:
        save_grayscale(folder / "train.npz", gray, np.zeros(100), meta)
    bits = (rng.random((40, 784)) < gray[:40] / 255.0).astype(np.uint8)
    save_binarized(folder / "test.npz", bits, np.zeros(40), np.arange(40), {**meta, "num_images": 40})


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*argv: str) -> None:
    """The plan stage for a grid of this one model, then the train stage (as dvc repro runs them)."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    dataset, particles = argv[argv.index("--dataset") + 1], int(argv[argv.index("--particles") + 1])
    params["grid"] = {"datasets": [dataset], "particles": [particles]}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    plan_stage.main([])
    train_stage.main(list(argv))


def _fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        _run(*argv)
    assert info.value.code == 1
    return capsys.readouterr().err


def test_train_stage_trains_and_installs_everything(repo):
    _write_params(repo)
    _write_data(repo)
    _run("--dataset", "mnist", "--particles", "2", "--no-progress")

    folder = repo / "checkpoints" / "mnist-n2"
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "curves", "last.pt", "model.pt"]
    model = load_model(folder / "model.pt")
    assert (model.latent_dim, model.hidden_dim) == (6, 24)
    load_model(folder / "last.pt")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["source"] == "train" and config["profile"] == "tiny"
    assert config["num_particles"] == 2 and config["bound"] == "IWAE"
    assert config["training"]["epochs"] == 2 and config["eps"] == 0.0001

    # No tracked metrics of its own (the model's quality is the evaluate stage's NLL); the details
    # hold the best test loss, the log how long it took.
    assert not (repo / "metrics").exists()
    details = json.loads((repo / "details/train/mnist-n2.json").read_text())
    assert 1 <= details["best_epoch"] <= 2 and details["best_test_bits_per_dim"] > 0
    assert details["source"] == "train" and details["profile"] == "tiny"
    assert "NOT the paper" in details["profile_note"]
    assert details["epochs"] == 2 and details["test_images"] == 30 and details["train_images"] == 100
    assert details["sha256"] == hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    assert details["versions"]["torch"] == torch.__version__
    assert not {"stage_seconds", "train_seconds", "steps_per_second"} & set(details)  # timings vary
    log = json.loads((repo / "logs/train/mnist-n2.json").read_text())
    assert log["stage_seconds"] > 0 and log["train_seconds"] > 0 and log["machine"]["cpus"] >= 1

    # The curves, logged per epoch through DVCLive: step = epoch - 1, one TSV per curve.
    history = folder / "curves"
    curves = {}
    for name in train_stage.CURVES:
        with open(history / "plots" / "metrics" / f"{name}.tsv") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert [int(r["step"]) for r in rows] == [0, 1]
        curves[name] = [float(r[name]) for r in rows]
    assert details["best_test_bits_per_dim"] == pytest.approx(min(curves["test_bpd"]), rel=1e-5)
    assert json.loads((history / "metrics.json").read_text())["step"] == 1
    assert not (history / "dvc.yaml").exists()  # the pipeline's dvc.yaml declares the plots
    from stages.figures import read_curves
    assert list(read_curves(history)["epoch"]) == [1, 2]
    # The resumable state is gone once the outputs are installed; no temporary folders remain.
    assert not (repo / "checkpoints/.resume/mnist-n2.pt").exists()
    assert sorted(p.name for p in (repo / "checkpoints").iterdir()) == [".resume", "mnist-n2"]


def test_train_stage_is_reproducible(repo):
    _write_params(repo)
    _write_data(repo)
    _run("--dataset", "mnist", "--particles", "1", "--no-progress")
    first = (repo / "checkpoints/mnist-n1/model.pt").read_bytes()
    _run("--dataset", "mnist", "--particles", "1", "--no-progress")
    assert (repo / "checkpoints/mnist-n1/model.pt").read_bytes() == first
    config = yaml.safe_load((repo / "checkpoints/mnist-n1/config.yaml").read_text())
    assert config["bound"] == "ELBO"


def test_train_source_needs_a_training_set(repo, capsys):
    _write_params(repo)
    _write_data(repo, train=False)
    err = _fails(capsys, "--dataset", "mnist", "--particles", "1")
    assert "train.npz" in err and "prepare.train_data" in err


def test_bad_parameters_are_clear_errors(repo, capsys):
    _write_data(repo)
    _write_params(repo, source="scratch")
    assert "unknown train.source" in _fails(capsys, "--dataset", "mnist", "--particles", "1")
    _write_params(repo, profile="huge")
    assert "profile 'huge' is not defined" in _fails(capsys, "--dataset", "mnist", "--particles", "1")
    _write_params(repo, profiles={"tiny": {"epochs": 2, "learning_rate": 0.1}})
    assert "learning_rate" in _fails(capsys, "--dataset", "mnist", "--particles", "1")
    _write_params(repo, source="published")
    err = _fails(capsys, "--dataset", "mnist", "--particles", "1")
    assert "no published checkpoint exists for data set 'mnist'" in err
    assert "train.source=train" in err
    _write_params(repo, seed=-1)
    err = _fails(capsys, "--dataset", "mnist", "--particles", "1")
    assert "train.seed must be between 0 and" in err and "got -1" in err


# ---------------------------------------------------------------------------------------------
# Import path


def _fake_fetch(model_writer, config: dict):
    """A stand-in for checkpoints.fetch_published_checkpoint that writes chosen files."""

    def fetch(split, num_particles, dest_dir, mirror=None):
        dest_dir = Path(dest_dir)
        model_writer(dest_dir / "model.pt")
        (dest_dir / "train_config.yml").write_text(yaml.safe_dump(config))
        sha = hashlib.sha256((dest_dir / "model.pt").read_bytes()).hexdigest()
        return checkpoints.PublishedCheckpoint(
            dest_dir / "model.pt", dest_dir / "train_config.yml", sha, "fake"
        )

    return fetch


def _upstream_config(split="mnist", n=1) -> dict:
    return {"model": "BinaryVAE", "split": split, "num_particles": n, "latent_dim": 50, "epochs": 3280}


def _good_model(path: Path) -> None:
    torch.manual_seed(0)
    save_model(BinaryVAE(), path)


def _assert_nothing_installed(repo: Path) -> None:
    assert not (repo / "checkpoints" / "emnist-mnist-n1").exists()
    leftovers = [p.name for p in (repo / "checkpoints").iterdir()] if (repo / "checkpoints").exists() else []
    assert leftovers == [], leftovers
    assert not (repo / "metrics").exists() and not (repo / "details").exists()


@pytest.mark.parametrize(
    ("writer", "config", "message"),
    [
        (lambda p: p.write_bytes(b"\x00corrupt" * 50), _upstream_config(), "not a readable PyTorch"),
        (
            lambda p: (_good_model(p), p.write_bytes(p.read_bytes()[:5000])),
            _upstream_config(),
            "not a readable PyTorch",
        ),
        (
            lambda p: save_torch_atomic(
                {**BinaryVAE().state_dict(), "dec_fc3.bias": torch.full((784,), float("nan"))}, p
            ),
            _upstream_config(),
            "non-finite",
        ),
        (lambda p: save_model(BinaryVAE(latent_dim=20), p), _upstream_config(), "shape"),
        (_good_model, _upstream_config(split="letters"), "split='letters'"),
        (_good_model, _upstream_config(n=50), "num_particles=50"),
    ],
    ids=["corrupt", "truncated", "nan", "wrong-shape", "wrong-split", "wrong-n"],
)
def test_import_rejects_bad_checkpoints(repo, capsys, monkeypatch, writer, config, message):
    _write_params(repo, source="published", latent_dim=50, hidden_dim=200)
    monkeypatch.setattr(checkpoints, "fetch_published_checkpoint", _fake_fetch(writer, config))
    err = _fails(capsys, "--dataset", "emnist-mnist", "--particles", "1")
    assert message in err, err
    _assert_nothing_installed(repo)


def test_import_of_a_corrupted_mirror_file_fails_verification(repo, capsys, monkeypatch, tmp_path):
    # A mirror whose model.pt is damaged: the SHA-256 check refuses it, nothing is installed.
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    mirror = tmp_path / "bad-mirror"
    folder = mirror / "mcbits-checkpoints" / registry.checkpoint_folder("mnist", 1)
    folder.mkdir(parents=True)
    _good_model(folder / "model.pt")
    (folder / "train_config.yml").write_text(yaml.safe_dump(_upstream_config()))
    _write_params(repo, source="published", mirror=str(mirror), latent_dim=50, hidden_dim=200)
    err = _fails(capsys, "--dataset", "emnist-mnist", "--particles", "1")
    assert "checksum mismatch" in err and "model emnist-mnist-n1" in err
    _assert_nothing_installed(repo)


@pytest.mark.mirror
def test_import_published_checkpoint_from_the_mirror(repo, real_mirror, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    _write_params(repo, source="published", mirror=str(real_mirror), latent_dim=50, hidden_dim=200)
    _run("--dataset", "emnist-mnist", "--particles", "5")
    folder = repo / "checkpoints" / "emnist-mnist-n5"
    want_sha = registry.PUBLISHED_CHECKPOINTS[("mnist", 5)][0]
    assert hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest() == want_sha
    load_model(folder / "model.pt", latent_dim=50, hidden_dim=200)
    # An imported model has no training to report: no metrics, no curves.
    assert not (repo / "metrics").exists() and not (folder / "curves").exists()
    details = json.loads((repo / "details/train/emnist-mnist-n5.json").read_text())
    assert details["source"] == "published" and details["sha256"] == want_sha
    # Where it came from goes to the log (by name only), not the details: a mirror and a download
    # give the same verified bytes and must give the same outputs.
    assert "origin" not in details
    log = json.loads((repo / "logs/train/emnist-mnist-n5.json").read_text())
    assert log["origin"] == "local copy of train_bin_emnist_split=mnist_num=5/model.pt (mirror or cache)"
    for path in [*(repo / "details").rglob("*.json"), *(repo / "logs").rglob("*.json")]:
        assert str(real_mirror) not in path.read_text(), path
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["upstream_train_config"]["split"] == "mnist" and config["sha256"] == want_sha
    assert "origin" not in config  # the installed folder does not depend on where it came from
    # Importing again gives byte-identical outputs (DVC sees nothing new downstream).
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _run("--dataset", "emnist-mnist", "--particles", "5")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# ---------------------------------------------------------------------------------------------
# Mixed grids: train.source auto, and the fast profile's keys


@pytest.mark.parametrize(("dataset", "want"), [("emnist-mnist", "published"), ("emnist-letters", "published"),
                                               ("mnist", "train"), ("fashion-mnist", "train")])
def test_auto_source_imports_where_published_and_trains_elsewhere(dataset, want):
    assert train_settings.resolved_source("auto", dataset) == want
    assert train_settings.resolved_source("train", dataset) == "train"
    assert train_settings.resolved_source("published", dataset) == "published"


def test_auto_source_trains_mnist_and_imports_emnist_in_one_grid(repo, monkeypatch):
    # One params.yaml, two data sets: mnist is trained with a smooth-schedule profile, emnist-mnist
    # imported (a stand-in fetch: the mirror test above covers the real one).
    profile = {"epochs": 3, "batch_size": 20, "lr": 0.002, "lr_end": 0.0001, "schedule": "cosine",
               "adam_eps": 0.0001, "test_images": 30}
    _write_params(repo, source="auto", latent_dim=50, hidden_dim=200, profiles={"tiny": profile})
    _write_data(repo, "mnist")
    fake = _fake_fetch(_good_model, _upstream_config())
    monkeypatch.setattr(checkpoints, "fetch_published_checkpoint", fake)
    _run("--dataset", "mnist", "--particles", "1", "--no-progress")
    _run("--dataset", "emnist-mnist", "--particles", "1", "--no-progress")
    trained = json.loads((repo / "details/train/mnist-n1.json").read_text())
    imported = json.loads((repo / "details/train/emnist-mnist-n1.json").read_text())
    assert trained["source"] == "train" and imported["source"] == "published"
    config = yaml.safe_load((repo / "checkpoints/mnist-n1/config.yaml").read_text())
    assert config["training"]["schedule"] == "cosine" and config["lr_end"] == 0.0001
    assert config["scheduler"] == "cosine"
    with open(repo / "checkpoints/mnist-n1/curves/plots/metrics/lr.tsv") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f, delimiter="\t")]
    assert lrs[0] == pytest.approx(0.002) and lrs[-1] == pytest.approx(0.0001)  # the schedule ran


def test_the_pipeline_profiles_are_valid_configs():
    # Every profile in the committed params.yaml builds a valid TrainConfig through the stage.
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["train"]
    assert params["profile"] in params["profiles"] and params["source"] == "auto"
    for name in params["profiles"]:
        config = train_settings.train_config(5, {**params, "profile": name})
        assert config.profile == name and config.num_particles == 5
    fast = train_settings.train_config(1, params)
    assert (fast.schedule, fast.batch_size, fast.epochs) == ("cosine", 100, 500)


def test_an_unknown_profile_is_refused_by_name_even_for_an_imported_model(repo, capsys, monkeypatch):
    _write_params(repo, source="auto", profile="nope", latent_dim=50, hidden_dim=200)
    fake = _fake_fetch(_good_model, _upstream_config())
    monkeypatch.setattr(checkpoints, "fetch_published_checkpoint", fake)
    err = _fails(capsys, "--dataset", "emnist-mnist", "--particles", "1")
    assert "profile 'nope' is not defined" in err and "train.profile" in err
    _assert_nothing_installed(repo)
