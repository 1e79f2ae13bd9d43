"""What every stage shares: parameters checked at stage start with the parameter named, tracked
metrics rounded to 6 significant digits, details without local folders; and one coding run's
metrics/details split, on a small model (no mirror needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mcbits.data.datasets import save_binarized
from mcbits.errors import McbitsError
from mcbits.vae.models import BinaryVAE, save_model
from stages import baselines as baselines_stage
from stages import compress as compress_stage
from stages import figures as figures_stage
from stages import headline as headline_stage
from stages._common import int_param, portable_source, round_floats

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
TEST_IMAGES = 12


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A working folder with params.yaml (the repository's, grid 'toy' with N = 1, 2), a toy
    test set of TEST_IMAGES images and a small model checkpoints/toy-n1."""
    monkeypatch.chdir(tmp_path)
    params = {**PARAMS, "grid": {"datasets": ["toy"], "particles": [1, 2]}, "num_particles": 1}
    params["compress"] = {**PARAMS["compress"], "num_compress": 4}
    _write(tmp_path, params)
    rng = np.random.default_rng(0)
    bits = (rng.random((TEST_IMAGES, 784)) < 0.2).astype(np.uint8)
    meta = {"dataset": "toy", "display_name": "toy set"}
    save_binarized(tmp_path / "data/prepared/toy/test.npz", bits, np.zeros(TEST_IMAGES),
                   np.arange(TEST_IMAGES), meta)
    torch.manual_seed(0)
    save_model(BinaryVAE(), tmp_path / "checkpoints/toy-n1/model.pt")
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


def _write(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _with(root: Path, block: str, **values) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[block] = {**params[block], **values} if isinstance(params[block], dict) else values["value"]
    _write(root, params)


def _fails(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    return capsys.readouterr().err


COMPRESS_ARGV = ["--kind", "is", "--particles", "1", "--train", "toy", "--test", "toy"]
RUN = "is-n1_toy_on_toy"  # the run's file name: <kind>-n<N>_<train>_on_<test>
BASELINES_ARGV = ["--test", "toy", "--metrics", "metrics/baselines/toy.json",
                  "--details", "details/baselines/toy.json"]


# --- num_compress, in every stage that reads it ---------------------------------------------

@pytest.mark.parametrize("value", [0, -3, TEST_IMAGES + 1, 20000, "all", None, True])
@pytest.mark.parametrize("stage", ["compress", "baselines"])
def test_num_compress_outside_the_test_set_is_refused(repo, capsys, stage, value):
    _with(repo, "compress", num_compress=value)
    main, argv = ((compress_stage.main, COMPRESS_ARGV) if stage == "compress"
                  else (baselines_stage.main, BASELINES_ARGV))
    err = _fails(capsys, main, argv)
    assert f"compress.num_compress must be between 1 and {TEST_IMAGES}, got {value!r}" in err, err
    assert f"toy has {TEST_IMAGES} test images" in err
    assert not Path("metrics").exists() and not Path("bitstreams").exists()


def test_baselines_use_exactly_num_compress_images(repo):
    _with(repo, "compress", num_compress=TEST_IMAGES)
    baselines_stage.main(BASELINES_ARGV)
    metrics = json.loads(Path("metrics/baselines/toy.json").read_text())
    assert set(metrics) == {"gzip", "bz2", "lzma", "png", "images"} and metrics["images"] == TEST_IMAGES
    details = json.loads(Path("details/baselines/toy.json").read_text())
    assert details["images"] == TEST_IMAGES and details["bytes"]["png"] > 0


# --- seeds ----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["seed", "eval_seed"])
@pytest.mark.parametrize("value", [-1, 2**64, 1.5])
def test_negative_or_huge_coder_seeds_are_refused(repo, capsys, key, value):
    _with(repo, "compress", **{key: value})
    err = _fails(capsys, compress_stage.main, COMPRESS_ARGV)
    assert f"compress.{key} must be between 0 and {2**63 - 1}, got {value!r}" in err, err
    assert "Traceback" not in err


# --- num_particles (headline) ----------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 7, -1, True, "5", None])
def test_headline_particles_must_be_in_the_grid(repo, capsys, value):
    _with(repo, "num_particles", value=value)
    err = _fails(capsys, headline_stage.main, ["--dataset", "toy"])
    assert f"num_particles={value!r} is not one of grid.particles [1, 2]" in err, err
    assert "where: params.yaml: num_particles" in err


def test_headline_particles_in_the_grid_are_accepted():
    assert headline_stage.headline_particles(2, [1, 2]) == 2
    with pytest.raises(McbitsError, match="not one of grid.particles"):
        headline_stage.headline_particles(2, None)


# --- one coding run: tracked metrics and details ---------------------------------------------

def test_compress_writes_rates_as_metrics_and_the_rest_as_details(repo):
    compress_stage.main(COMPRESS_ARGV)
    assert Path(f"bitstreams/{RUN}.mcb").stat().st_size > 0
    metrics = json.loads(Path(f"metrics/compress/{RUN}.json").read_text())
    assert tuple(metrics) == compress_stage.RUN_METRICS
    assert metrics["images"] == 4 and metrics["decode_check"] == "passed"
    assert metrics["ideal_stderr_bpd"] > 0
    assert all(float(f"{v:.6g}") == v for v in metrics.values() if isinstance(v, float))
    details = json.loads(Path(f"details/compress/{RUN}.json").read_text())
    assert details["label"] == "BB-ELBO" and details["coder"] == "BitsBackCoder"
    assert details["train"] == details["test"] == "toy" and details["images"] == 4
    assert len(details["model_sha256"]) == 64 and "encode_s" not in details  # timings vary: the log
    log = json.loads(Path(f"logs/compress/{RUN}.json").read_text())
    assert log["encode_s"] >= 0 and log["decode_s"] >= 0 and log["images_per_s"] > 0
    assert details["coder_config"]["prop_mprec"] == PARAMS["compress"]["prop_mprec"]
    assert {"mcbits", "numpy", "python", "torch"} <= set(details["versions"])
    assert not set(metrics) - {"images", "decode_check"} & set(details)  # each figure once


# --- helpers ---------------------------------------------------------------------------------

def test_round_floats_keeps_six_significant_digits():
    value = {"a": 0.23508293345142559, "b": [1234567.891, 2, None, True], "c": "x", "d": float("nan"),
             "e": np.float64(1e-7 / 3)}
    assert round_floats(value) == {"a": 0.235083, "b": [1234570.0, 2, None, True], "c": "x", "d": None,
                                   "e": 3.33333e-08}
    assert round_floats(round_floats(value)) == round_floats(value)


@pytest.mark.parametrize(("source", "portable"), [
    ("mirror:/work/shared/mirror/emnist/f.gz", "mirror:f.gz"),
    ("cache:/root/.cache/mcbits/emnist/f.gz", "cache:f.gz"),
    ("kept /tmp/x/data/raw/emnist-mnist/f.gz", "kept f.gz"),
    ("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip", "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"),
    ("mirror /a/b/emnist/f.gz: not found", "mirror f.gz: not found"),
    ("archive gzip.zip (/a/b/gzip.zip: bad CRC)", "archive gzip.zip (gzip.zip: bad CRC)"),
])
def test_portable_source_drops_local_folders(source, portable):
    assert portable_source(source) == portable


def test_int_param_names_the_parameter():
    assert int_param(3, "x.y") == 3
    with pytest.raises(McbitsError, match=r"x\.y must be a non-negative integer, got -1"):
        int_param(-1, "x.y")
    with pytest.raises(McbitsError, match=r"x\.y must be between 1 and 4, got 5"):
        int_param(5, "x.y", minimum=1, maximum=4)


# --- figures ---------------------------------------------------------------------------------

def _plot_data(folder: Path) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame({"num_particles": [1, 5, 50], "BB-IS net": [0.235, 0.230, 0.227],
                  "BB-IS total": [0.236, 0.235, 0.273], "BB-CIS net": [0.2355, 0.2307, 0.2272],
                  "BB-CIS total": [0.238, 0.233, 0.230]}).to_csv(folder / "rate_vs_particles.csv",
                                                                 index=False)
    pd.DataFrame({"setting": ["MNIST → MNIST", "MNIST → Letters"], "savings_pct": [3.6, 8.7]}).to_csv(
        folder / "savings.csv", index=False)


def test_figures_only_draw_training_curves_for_trained_models(tmp_path):
    _plot_data(tmp_path / "plots")
    histories = tmp_path / "checkpoints"
    (histories / "emnist-mnist-n1").mkdir(parents=True)  # imported: no curves
    pngs = figures_stage.render(tmp_path / "plots", histories, "emnist-mnist")
    assert sorted(pngs) == ["rate_vs_particles.png", "savings.png"]
    assert all(data.startswith(b"\x89PNG") for data in pngs.values())
    assert figures_stage.render(tmp_path / "plots", histories, "emnist-mnist") == pngs  # same bytes
    trained = histories / "mnist-n1" / figures_stage.paths.CURVES_FOLDER
    curves = trained / "plots" / "metrics"  # DVCLive's layout
    curves.mkdir(parents=True)
    (curves / "train_bpd.tsv").write_text("timestamp\tstep\ttrain_bpd\n1\t0\t0.3\n2\t1\t0.25\n")
    assert "training_curves.png" not in figures_stage.render(tmp_path / "plots", histories, "emnist-mnist")
    (curves / "test_bpd.tsv").write_text("timestamp\tstep\ttest_bpd\n1\t0\t0.29\n2\t1\t0.26\n")
    assert list(figures_stage.read_curves(trained)["epoch"]) == [1, 2]
    assert "training_curves.png" in figures_stage.render(tmp_path / "plots", histories, "emnist-mnist")


def test_a_stage_error_about_a_missing_input_points_at_the_pipeline(capsys):
    """The library names the missing file and a generic remedy; the stage adds the DVC way."""
    from stages._common import stage_main

    @stage_main
    def missing() -> None:
        raise McbitsError("model file checkpoints/x/model.pt does not exist", where="checkpoints/x/model.pt",
                          remedy="train the model first, or fetch a published one (mcbits fetch checkpoint)")

    @stage_main
    def other() -> None:
        raise McbitsError("num_particles=0 is not one of grid.particles", where="params.yaml")

    with pytest.raises(SystemExit) as exit_info:
        missing()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "mcbits fetch checkpoint" in err and "dvc repro" in err
    with pytest.raises(SystemExit):
        other()
    assert "dvc repro" not in capsys.readouterr().err
