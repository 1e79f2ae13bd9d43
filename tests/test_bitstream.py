"""Bitstream files: exact round trips, and every damaged or mismatched file is a clear error.

A decode must either return the encoded images or raise McbitsError: never wrong images, never a
crash with a traceback from deep inside.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from coding_doubles import TinyModel

from mcbits.coding import bitstream
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.errors import McbitsError

SHA = "ab" * 32
OTHER_SHA = "cd" * 32


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    # (n, 8, 8): the file keeps the original image shape
    return TinyModel(latent_dim=4, num_pixels=64, seed=0).sample_images(6, seed=3).reshape(6, 8, 8)


def _encode(path, images, coder="CISBitsBackCoder", num=3, lanes=2, **kwargs):
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0, arithmetic=kwargs.get("arithmetic", "exact"))
    config = CoderConfig(coder=coder, num_particles=num, lanes=lanes, seed=4, **kwargs)
    return bitstream.encode_to_file(path, images, make_coder(model, config), model_sha256=SHA)


def _decode(path, model=None):
    return bitstream.decode_from_file(path, model or TinyModel(latent_dim=4, num_pixels=64, seed=0),
                                      model_sha256=SHA)


@pytest.mark.parametrize("coder,num,lanes", [("StochasticCoder", 1, 1), ("BitsBackCoder", 1, 3),
                                             ("ISBitsBackCoder", 4, 1), ("CISBitsBackCoder", 3, 2)])
def test_round_trip_through_a_file(tmp_path, images, coder, num, lanes):
    path = tmp_path / "x.mcb"
    result = _encode(path, images, coder, num, lanes)
    decoded = _decode(path)
    assert decoded.shape == images.shape and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)
    # the reported sizes are the real ones
    assert result.file_bytes == path.stat().st_size
    assert result.num_images == 6 and result.num_dims == images.size
    assert result.message_bits <= 8 * result.file_bytes
    assert result.net_bpd == pytest.approx(result.net_bits / images.size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mcb"]  # no temporary left behind


def test_flat_images_come_back_flat(tmp_path, images):
    flat = images.reshape(6, 64)
    _encode(tmp_path / "f.mcb", flat)
    decoded = _decode(tmp_path / "f.mcb")
    assert decoded.shape == (6, 64)
    np.testing.assert_array_equal(decoded, flat)


def test_header_records_what_decoding_needs(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images, "ISBitsBackCoder", 4, 2, whiten_prior=False)
    header, payload = bitstream.read_header(path)
    assert header["coder"]["coder"] == "ISBitsBackCoder"
    assert header["coder"]["num_particles"] == 4 and header["coder"]["whiten_prior"] is False
    assert header["model_sha256"] == SHA
    assert header["num_images"] == 6 and header["image_shape"] == [8, 8]
    assert header["images_sha256"] == bitstream.images_digest(images.reshape(6, 64))
    assert len(header["drawn"]) == 2
    assert {"torch", "numpy", "numba", "mcbits"} <= set(header["encoder"])
    assert payload  # the message bytes
    assert path.read_bytes().startswith(bitstream.MAGIC)


def test_encoding_over_an_existing_file_replaces_it_atomically(tmp_path, images):
    path = tmp_path / "x.mcb"
    path.write_bytes(b"old contents")
    _encode(path, images)
    np.testing.assert_array_equal(_decode(path), images)


def test_a_failed_encode_leaves_no_file(tmp_path, images):
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    model.fail_after = 3  # the network "fails" part-way through the images
    coder = make_coder(model, CoderConfig(coder="ISBitsBackCoder", num_particles=2))
    with pytest.raises(RuntimeError):
        bitstream.encode_to_file(tmp_path / "x.mcb", images, coder, model_sha256=SHA)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Damage


def _layout(data: bytes) -> dict[str, int]:
    """Offsets of the parts of a file: magic+version, header length, header, message, checksum."""
    head_len = int.from_bytes(data[8:12], "little")
    return {"magic": 2, "version": 6, "header_length": 9, "header": 12 + head_len // 2,
            "message_first": 12 + head_len, "message_last": len(data) - 33,
            "checksum": len(data) - 5}


@pytest.mark.parametrize("where", ["magic", "version", "header_length", "header", "message_first",
                                   "message_last", "checksum"])
@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_a_flipped_byte_anywhere_is_an_error(tmp_path, images, where, flip):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    data = bytearray(path.read_bytes())
    data[_layout(bytes(data))[where]] ^= flip
    path.write_bytes(bytes(data))
    with pytest.raises(McbitsError) as err:
        _decode(path)
    assert str(path) in str(err.value)  # names the file
    assert err.value.remedy


def test_every_single_byte_flip_is_detected(tmp_path, images):
    # The exhaustive version of the test above on a small file: no position slips through.
    path = tmp_path / "x.mcb"
    _encode(path, images[:2], "BitsBackCoder", 1, 1)
    original = path.read_bytes()
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 0x10
        with pytest.raises(McbitsError):
            bitstream.unpack(bytes(data))


@pytest.mark.parametrize("keep", ["nothing", "7_bytes", "magic_and_length", "all_but_one",
                                  "all_but_checksum", "half"])
def test_a_truncated_file_is_an_error(tmp_path, images, keep):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    data = path.read_bytes()
    cut = {"nothing": 0, "7_bytes": 7, "magic_and_length": 12, "all_but_one": len(data) - 1,
           "all_but_checksum": len(data) - 32, "half": len(data) // 2}[keep]
    path.write_bytes(data[:cut])
    with pytest.raises(McbitsError):
        _decode(path)


def test_appended_bytes_are_an_error(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(McbitsError):
        _decode(path)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(McbitsError) as err:
        _decode(tmp_path / "nope.mcb")
    assert "nope.mcb" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Mismatches


def test_another_model_is_refused_before_decoding(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    with pytest.raises(McbitsError) as err:
        bitstream.decode_from_file(path, model, model_sha256=OTHER_SHA)
    assert "model" in str(err.value) and SHA[:12] in str(err.value)
    assert model.pixel_calls == []  # refused before any decoding work


def _rewrite_header(path, change) -> None:
    """Change the header of a valid file and re-seal it with a correct checksum."""
    header, message = bitstream.unpack(path.read_bytes())
    change(header)
    path.write_bytes(bitstream.pack(header, message))


def test_a_header_naming_unknown_parameters_is_refused(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    _rewrite_header(path, lambda h: h["coder"].update(quantum_bits=3))
    with pytest.raises(McbitsError) as err:
        _decode(path)
    assert "quantum_bits" in str(err.value)


@pytest.mark.parametrize("change", [
    lambda h: h["coder"].update(bprec=12),
    lambda h: h["coder"].update(num_particles=0),
    lambda h: h["coder"].update(coder="ZipCoder"),
    lambda h: h.update(drawn=[0]),  # two lanes, one count
    lambda h: h.update(num_images=h["num_images"] + 1),
    lambda h: h.update(num_images=h["num_images"] - 1),
    lambda h: h["coder"].update(seed=h["coder"]["seed"] + 1),
    lambda h: h["coder"].update(whiten_prior=not h["coder"]["whiten_prior"]),
    lambda h: h["coder"].update(lanes=3),
], ids=["bad_bprec", "zero_particles", "unknown_coder", "drawn_per_lane", "one_image_more",
        "one_image_less", "other_seed", "other_whitening", "other_lanes"])
def test_a_sealed_header_with_wrong_parameters_never_gives_wrong_images(tmp_path, images, change):
    # A correct checksum but parameters that differ from the encoder's: a clear error.
    path = tmp_path / "x.mcb"
    _encode(path, images)
    _rewrite_header(path, change)
    with pytest.raises(McbitsError):
        _decode(path)


@pytest.mark.parametrize("change", [
    lambda h: h.pop("drawn"),
    lambda h: h.pop("image_shape"),
    lambda h: h.update(image_shape=[3, 3]),
    lambda h: h.update(coder=None),
], ids=["no_drawn", "no_image_shape", "image_shape_3x3", "coder_null"])
def test_a_sealed_header_missing_fields_is_a_clear_error(tmp_path, images, change):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    _rewrite_header(path, change)
    with pytest.raises(McbitsError):
        _decode(path)


def test_a_header_that_is_not_json_is_a_clear_error(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    header, message = bitstream.unpack(path.read_bytes())
    text = json.dumps(header, sort_keys=True).encode()
    broken = text[:-1] + b"\xff"  # same length, no longer UTF-8 JSON
    body = bitstream.MAGIC + len(broken).to_bytes(4, "little") + broken + message
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(McbitsError) as err:
        _decode(path)
    assert "header" in str(err.value)


def test_another_format_version_is_refused(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    header, message = bitstream.unpack(path.read_bytes())
    data = bytearray(bitstream.pack(header, message))
    data[6:8] = (bitstream.FORMAT_VERSION + 1).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(McbitsError) as err:
        _decode(path)
    assert "version" in str(err.value)


@pytest.mark.parametrize("coder,num", [("BitsBackCoder", 1), ("ISBitsBackCoder", 4), ("CISBitsBackCoder", 3),
                                       ("StochasticCoder", 1)])
def test_a_decoder_whose_arithmetic_differs_reports_it_instead_of_returning_images(tmp_path, images, coder,
                                                                                     num):
    # The same model file, but pixel probabilities that differ by 1e-3 at decode time (as another
    # CPU or torch build could): the images' checksum catches it.
    path = tmp_path / "x.mcb"
    _encode(path, images, coder, num, arithmetic="float")
    drifted = TinyModel(latent_dim=4, num_pixels=64, seed=0, arithmetic="float")
    drifted.perturbation = 1e-3
    with pytest.raises(McbitsError) as err:
        _decode(path, drifted)
    message = str(err.value)
    assert "checksum" in message and "Encoded with" in message and "not portable" in message
    assert bitstream.read_header(path)[0]["portable"] is False
    # a portable (exact) file that does not decode is damage or a bug, and is called so
    exact_path = tmp_path / "exact.mcb"
    _encode(exact_path, images, coder, num)
    assert bitstream.read_header(exact_path)[0]["portable"] is True
    exact_drifted = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    exact_drifted.perturbation = 1e-3
    with pytest.raises(McbitsError, match="exact \\(portable\\) arithmetic|damaged") as err:
        _decode(exact_path, exact_drifted)
    assert "torch/numpy build and CPU" not in str(err.value)  # not blamed on the machine
    # the files themselves are fine
    np.testing.assert_array_equal(_decode(path, TinyModel(latent_dim=4, num_pixels=64, seed=0,
                                                          arithmetic="float")), images)
    np.testing.assert_array_equal(_decode(exact_path), images)
