"""BinaryVAE: upstream's parameter names and call surface, and load_model's validation."""

from __future__ import annotations

import pytest
import torch

from mcbits.data import registry
from mcbits.errors import McbitsError
from mcbits.vae.models import (
    PARAM_LAYERS,
    BinaryVAE,
    expected_shapes,
    load_model,
    save_model,
    save_torch_atomic,
)


def _model(seed: int = 0, **kw) -> BinaryVAE:
    torch.manual_seed(seed)
    return BinaryVAE(**kw).eval()


def test_parameter_names_and_shapes_are_upstreams():
    model = _model()
    state = model.state_dict()
    assert list(state) == [f"{layer}.{p}" for layer in PARAM_LAYERS for p in ("weight", "bias")]
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_shapes(50, 200)
    assert state["enc_fc1.weight"].shape == (200, 784)
    assert state["dec_fc3.weight"].shape == (784, 200)


def test_encode_decode_shapes_and_ranges():
    model = _model(latent_dim=7, hidden_dim=13)
    x = (torch.rand(5, 784) < 0.3).float()
    mean, std = model.encode(x)
    assert mean.shape == std.shape == (5, 7)
    assert bool((std > 0).all())
    # (B, 1, 28, 28) and integer pixels give the same posterior as (B, 784) floats.
    mean4, std4 = model.encode(x.reshape(5, 1, 28, 28).to(torch.uint8))
    assert torch.equal(mean, mean4) and torch.equal(std, std4)
    probs = model.decode(torch.randn(3, 5, 7))
    assert probs.shape == (3, 5, 784)
    assert bool(((probs > 0) & (probs < 1)).all())
    logits = model.decode_logits(torch.zeros(2, 7))
    assert torch.allclose(torch.sigmoid(logits), model.decode(torch.zeros(2, 7)))
    with pytest.raises(ValueError, match="784"):
        model.encode(torch.zeros(2, 100))


def test_encode_is_deterministic():
    model = _model()
    x = (torch.rand(4, 784) < 0.5).float()
    a, b = model.encode(x), model.encode(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_save_and_load_round_trip(tmp_path):
    model = _model(3)
    path = tmp_path / "m" / "model.pt"
    save_model(model, path)
    loaded = load_model(path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    # The file is a plain state dict (what upstream's load_state_dict expects).
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(model.state_dict())
    # Sizes are read from the file.
    small = _model(latent_dim=4, hidden_dim=8)
    save_model(small, tmp_path / "small.pt")
    assert load_model(tmp_path / "small.pt").latent_dim == 4


def test_load_missing_file(tmp_path):
    with pytest.raises(McbitsError, match="does not exist"):
        load_model(tmp_path / "nope.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_load_corrupt_file(tmp_path, damage):
    path = tmp_path / "model.pt"
    save_model(_model(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a checkpoint" * 100)
    else:
        path.write_bytes(b"")
    with pytest.raises(McbitsError, match="not a readable PyTorch state dict") as info:
        load_model(path)
    assert info.value.remedy and "train or fetch the model again" in info.value.remedy


def test_load_rejects_wrong_keys_shapes_and_values(tmp_path):
    good = _model().state_dict()
    cases = {
        "missing": {k: v for k, v in good.items() if k != "dec_fc2.bias"},
        "renamed": {("encoder." + k if k.startswith("enc_fc1") else k): v for k, v in good.items()},
        "shape": {**good, "dec_fc1.weight": torch.zeros(200, 49)},
        "nan": {**good, "enc_fc2.weight": good["enc_fc2.weight"].clone().fill_(float("nan"))},
        "inf": {**good, "dec_fc3.bias": torch.full((784,), float("inf"))},
    }
    messages = {
        "missing": "missing",
        "renamed": "unexpected",
        "shape": "shape",
        "nan": "non-finite",
        "inf": "non-finite",
    }
    for name, state in cases.items():
        path = tmp_path / f"{name}.pt"
        save_torch_atomic(state, path)
        with pytest.raises(McbitsError, match=messages[name]):
            load_model(path)
    # A pickled non-dict (e.g. a whole list) is refused too.
    save_torch_atomic([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(McbitsError, match="not a state dict"):
        load_model(tmp_path / "list.pt")
    # Explicit sizes that disagree with the file are a shape error.
    save_model(_model(), tmp_path / "ok.pt")
    with pytest.raises(McbitsError, match="shape"):
        load_model(tmp_path / "ok.pt", latent_dim=32)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    save_model(_model(), tmp_path / "model.pt")
    save_model(_model(1), tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.mirror
def test_published_checkpoints_load_without_conversion(real_mirror):
    for split, n in registry.PUBLISHED_CHECKPOINTS:
        path = real_mirror / "mcbits-checkpoints" / registry.checkpoint_folder(split, n) / "model.pt"
        model = load_model(path, latent_dim=50, hidden_dim=200)
        # load_state_dict in strict mode, straight from the file, as upstream would.
        fresh = BinaryVAE()
        fresh.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        x = torch.zeros(1, 784)
        assert torch.equal(model.encode(x)[0], fresh.encode(x)[0])
