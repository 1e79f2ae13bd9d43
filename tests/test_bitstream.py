"""Bitstream files (format version 3): exact round trips, compact headers, the stored mode, and
every damaged, edited or mismatched file is a clear error of its own kind.

A decode must either return the encoded images or raise McbitsError: never wrong images, never a
crash with a traceback from deep inside, never work before the header is validated.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from coding_doubles import TinyModel

from mcbits.coding import bitstream, limits
from mcbits.coding import header as fmt
from mcbits.coding.coders import make_coder
from mcbits.coding.config import MAX_LANES, CoderConfig
from mcbits.errors import McbitsError

SHA = "ab" * 32
OTHER_SHA = "cd" * 32


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    # (n, 8, 8): the file keeps the original image shape
    return TinyModel(latent_dim=4, num_pixels=64, seed=0).sample_images(6, seed=3).reshape(6, 8, 8)


def _model(**kwargs) -> TinyModel:
    return TinyModel(latent_dim=4, num_pixels=64, seed=0, **kwargs)


def _encode(path, images, coder="CISBitsBackCoder", num=3, lanes=2, stored=False, names=None, **kwargs):
    # stored=False: TinyModel's 64-pixel images code above their 8 raw bytes; keep the message
    model = _model(arithmetic=kwargs.get("arithmetic", "exact"))
    config = CoderConfig(coder=coder, num_particles=num, lanes=lanes, seed=4, **kwargs)
    return bitstream.encode_to_file(path, images, make_coder(model, config), model_sha256=SHA,
                                    stored=stored, names=names)


def _decode(path, model=None):
    return bitstream.decode_from_file(path, model or _model(), model_sha256=SHA)


def _reseal(path, change) -> None:
    """Change the header dict of a valid file and re-seal it with a correct check."""
    header, payload = bitstream.unpack(path.read_bytes())
    change(header)
    path.write_bytes(bitstream.pack(header, payload))


def _reseal_bytes(data: bytes) -> bytes:
    body = data[:-fmt.CHECK_BYTES]
    return body + hashlib.sha256(body).digest()[:fmt.CHECK_BYTES]


@pytest.mark.parametrize("coder,num,lanes", [("StochasticCoder", 1, 1), ("BitsBackCoder", 1, 3),
                                             ("ISBitsBackCoder", 4, 1), ("CISBitsBackCoder", 3, 2)])
def test_round_trip_through_a_file(tmp_path, images, coder, num, lanes):
    path = tmp_path / "x.mcb"
    result = _encode(path, images, coder, num, lanes)
    assert result.stored is False
    decoded = _decode(path)
    assert decoded.shape == images.shape and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)
    # the reported sizes are the real ones
    assert result.file_bytes == path.stat().st_size
    assert result.header_bytes == result.file_bytes - result.message_bits // 8
    assert result.header_bytes <= 48
    assert result.num_images == 6 and result.num_dims == images.size
    # net bits are what the message grew by, less the words it drew (recorded in the header): up
    # to each head's growth, which is under bprec bits a lane
    header = bitstream.read_header(path)[0]
    empty = bitstream.Message(lanes=lanes, seed=4).total_bits
    grown = result.message_bits - empty - 32 * sum(header["drawn"])
    assert abs(result.net_bits - grown) < 32 * lanes
    assert 0 < result.net_bits < 8 * images.size  # the coder compresses these images
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
    assert header["coder"] == CoderConfig(coder="ISBitsBackCoder", num_particles=4, lanes=2, seed=4,
                                          whiten_prior=False).to_dict()
    assert header["model_sha256"] == SHA[:16]
    assert header["num_images"] == 6 and header["image_shape"] == [8, 8]
    assert header["images_sha256"] == bitstream.images_digest(images)
    assert len(header["drawn"]) == 2 and header["posterior"] == {}
    assert header["portable"] is True and header["stored"] is False
    assert "encoder" not in header  # portable: nothing about the machine is needed
    assert payload  # the message bytes
    assert path.read_bytes().startswith(bitstream.MAGIC)
    # a float file records its encoder: a decode elsewhere may differ and must say so
    _encode(tmp_path / "f.mcb", images, "BitsBackCoder", 1, 1, arithmetic="float")
    header = bitstream.read_header(tmp_path / "f.mcb")[0]
    assert header["portable"] is False
    assert {"torch", "numpy", "numba", "mcbits", "machine", "cpu"} <= set(header["encoder"])


def test_the_image_digest_covers_the_shape(images):
    assert bitstream.images_digest(images) != bitstream.images_digest(images.reshape(6, 64))
    assert bitstream.images_digest(images) != bitstream.images_digest(images.reshape(6, 8, 8, 1))
    assert len(bitstream.images_digest(images)) == 16


def test_encoding_over_an_existing_file_replaces_it_atomically(tmp_path, images):
    path = tmp_path / "x.mcb"
    path.write_bytes(b"old contents")
    _encode(path, images)
    np.testing.assert_array_equal(_decode(path), images)


def test_a_failed_encode_leaves_no_file(tmp_path, images):
    model = _model()
    model.fail_after = 3  # the network "fails" part-way through the images
    coder = make_coder(model, CoderConfig(coder="ISBitsBackCoder", num_particles=2))
    with pytest.raises(RuntimeError):
        bitstream.encode_to_file(tmp_path / "x.mcb", images, coder, model_sha256=SHA)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Compact files and the stored mode


def test_the_stored_mode_is_never_larger_than_raw_bits_plus_the_header(tmp_path, images):
    path = tmp_path / "x.mcb"
    result = _encode(path, images, stored=None)  # 64-pixel images: the raw bits are smaller
    assert result.stored is True
    raw = fmt.raw_bytes(6, 64)
    assert result.file_bytes == raw + result.header_bytes and result.header_bytes <= 40
    header = bitstream.read_header(path)[0]
    assert header["stored"] is True and header["portable"] is True and header["drawn"] == []
    decoded = _decode(path)
    assert decoded.shape == images.shape
    np.testing.assert_array_equal(decoded, images)
    # the coded file is the larger one here
    assert _encode(tmp_path / "c.mcb", images).file_bytes > result.file_bytes


def test_a_one_image_file_has_a_header_of_at_most_40_bytes(tmp_path):
    # 784 pixels: 98 raw bytes; default parameters, one lane
    model = TinyModel(latent_dim=8, num_pixels=784, seed=1)
    image = model.sample_images(1, seed=2).reshape(1, 28, 28)
    for coder, num in (("BitsBackCoder", 1), ("ISBitsBackCoder", 5), ("CISBitsBackCoder", 5)):
        for stored in (None, False, True):
            result = bitstream.encode_to_file(
                tmp_path / "one.mcb", image, make_coder(model, CoderConfig(coder=coder, num_particles=num)),
                model_sha256=SHA, stored=stored)
            assert result.header_bytes <= 40, (coder, stored, result)
            if stored is None:
                assert result.file_bytes <= 98 + 40
            np.testing.assert_array_equal(
                bitstream.decode_from_file(tmp_path / "one.mcb", model, model_sha256=SHA), image)


def test_names_round_trip_and_are_checked(tmp_path, images):
    path = tmp_path / "x.mcb"
    names = [f"digit-{i}.png" for i in range(6)]
    _encode(path, images, names=names)
    decoded, got = bitstream.decode_with_names(path, _model(), model_sha256=SHA)
    np.testing.assert_array_equal(decoded, images)
    assert got == names
    assert bitstream.decode_with_names(tmp_path / "x.mcb", _model(), model_sha256=SHA)[1] == names
    _encode(tmp_path / "plain.mcb", images)
    assert bitstream.decode_with_names(tmp_path / "plain.mcb", _model(), model_sha256=SHA)[1] is None
    for bad in (names[:5], ["a/b.png"] + names[1:], [""] + names[1:], ["x" * 300] + names[1:],
                [".."] + names[1:]):
        with pytest.raises(McbitsError, match="cannot encode"):
            _encode(tmp_path / "bad.mcb", images, names=bad)
    assert not (tmp_path / "bad.mcb").exists()


def test_padding_keeps_one_byte_per_image(tmp_path):
    # all-zero images under a model that predicts them: well under 8 bits an image
    model = TinyModel(latent_dim=2, num_pixels=16, seed=0)
    model.bias[:] = -30.0
    zeros = np.zeros((64, 16), np.uint8)
    config = CoderConfig(coder="BitsBackCoder", whiten_prior=False, prop_mprec=9, log_num_bucket=1,
                         prior_mprec=1)
    result = bitstream.encode_to_file(tmp_path / "z.mcb", zeros, make_coder(model, config),
                                      model_sha256=SHA, stored=False)
    header, payload = bitstream.read_header(tmp_path / "z.mcb")
    assert len(payload) < 64 and header["padding"] == 64 - len(payload)
    assert result.file_bytes >= 64
    np.testing.assert_array_equal(bitstream.decode_from_file(tmp_path / "z.mcb", model, model_sha256=SHA),
                                  zeros)


# ---------------------------------------------------------------------------------------------
# Damage: corruption (the check), wrong kinds of files


def _layout(data: bytes) -> dict[str, int]:
    """Offsets of parts of a version-3 file of this test's parameters (36-byte fixed header)."""
    return {"magic": 1, "version": 3, "flags": 4, "precision": 7, "varints": 13, "model_digest": 22,
            "images_digest": 30, "drawn": 34, "message_first": 37, "message_last": len(data) - 5,
            "check": len(data) - 2}


@pytest.mark.parametrize("where", ["magic", "version", "flags", "precision", "varints", "model_digest",
                                   "images_digest", "drawn", "message_first", "message_last", "check"])
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
    if where not in ("magic", "version"):
        assert "corrupt" in str(err.value)


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


@pytest.mark.parametrize("keep", ["nothing", "3_bytes", "magic_and_version", "all_but_one",
                                  "all_but_check", "half"])
def test_a_truncated_file_is_an_error(tmp_path, images, keep):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    data = path.read_bytes()
    cut = {"nothing": 0, "3_bytes": 3, "magic_and_version": 4, "all_but_one": len(data) - 1,
           "all_but_check": len(data) - 4, "half": len(data) // 2}[keep]
    path.write_bytes(data[:cut])
    with pytest.raises(McbitsError):
        _decode(path)


def test_appended_bytes_are_an_error(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(McbitsError, match="corrupt"):
        _decode(path)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(McbitsError) as err:
        _decode(tmp_path / "nope.mcb")
    assert "nope.mcb" in str(err.value)


def test_other_files_are_not_bitstreams(tmp_path, images):
    for data in (b"", b"MC", b"hello world, not a bitstream", np.zeros(100, np.uint8).tobytes()):
        (tmp_path / "x.mcb").write_bytes(data)
        with pytest.raises(McbitsError, match="not an mcbits bitstream"):
            _decode(tmp_path / "x.mcb")


@pytest.mark.parametrize("version", [1, 2])
def test_files_of_earlier_versions_are_an_unsupported_version(tmp_path, version):
    # versions 1 and 2: b"MCBITS" + a 2-byte version, a JSON header
    head = json.dumps({"coder": {}}).encode()
    body = b"MCBITS" + version.to_bytes(2, "little") + len(head).to_bytes(4, "little") + head + b"msg"
    (tmp_path / "old.mcb").write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(McbitsError) as err:
        _decode(tmp_path / "old.mcb")
    assert f"unsupported bitstream format version {version}" in str(err.value)
    assert "reads version 3" in str(err.value)


def test_another_format_version_is_refused(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    data = bytearray(path.read_bytes())
    data[3] = bitstream.FORMAT_VERSION + 1
    path.write_bytes(_reseal_bytes(bytes(data)))
    with pytest.raises(McbitsError, match="unsupported bitstream format version 4"):
        _decode(path)


# ---------------------------------------------------------------------------------------------
# Mismatches: another model, other parameters


def test_another_model_is_refused_before_decoding(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    model = _model()
    with pytest.raises(McbitsError) as err:
        bitstream.decode_from_file(path, model, model_sha256=OTHER_SHA)
    assert "model" in str(err.value) and SHA[:12] in str(err.value)
    assert model.pixel_calls == []  # refused before any decoding work


def test_a_model_for_other_parameters_is_refused_before_decoding(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    for model, needle in ((_model(arithmetic="float"), "float"),
                          (TinyModel(latent_dim=4, num_pixels=49, seed=0), "pixels")):
        with pytest.raises(McbitsError, match=needle):
            _decode(path, model)
        assert model.pixel_calls == [] and model.posterior_calls == []


def test_a_header_naming_iterative_inference_needs_that_posterior(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    settings = {"iterative": {"steps": 3, "lr": 0.05, "num_particles": 2, "seed": 1}}
    _reseal(path, lambda h: h.update(posterior=settings))
    model = _model()
    with pytest.raises(McbitsError, match="other parameters.*iterative"):
        _decode(path, model)
    assert model.pixel_calls == []


def test_unknown_coder_parameters_are_refused():
    header = {"coder": {**CoderConfig().to_dict(), "quantum_bits": 3}}
    with pytest.raises(McbitsError, match="quantum_bits"):
        fmt.validate({**_valid_header(), **header}, b"\0" * 8)


def _valid_header() -> dict:
    return {"format_version": 3, "coder": CoderConfig().to_dict(), "portable": True, "stored": True,
            "posterior": {}, "model_sha256": "0" * 16, "num_images": 1, "image_shape": [64],
            "images_sha256": "0" * 16, "drawn": [], "padding": 0}


@pytest.mark.parametrize("change", [
    lambda h: h["coder"].update(bprec=12),
    lambda h: h["coder"].update(lprec=0),
    lambda h: h["coder"].update(lprec=200),
    lambda h: h["coder"].update(num_particles=0),
    lambda h: h["coder"].update(num_particles=10**6),
    lambda h: h["coder"].update(coder=5),  # an unknown coder id
    lambda h: h.update(drawn=[0]),  # two lanes, one count
    lambda h: h.update(drawn=[2**63, 0]),
    lambda h: h.update(num_images=h["num_images"] + 1),
    lambda h: h.update(num_images=h["num_images"] - 1),
    lambda h: h.update(num_images=10**6),
    lambda h: h.update(num_images=10**12),
    lambda h: h.update(num_images=0),
    lambda h: h["coder"].update(seed=h["coder"]["seed"] + 1),
    lambda h: h["coder"].update(seed=2**64),
    lambda h: h["coder"].update(seed=2**63),
    lambda h: h["coder"].update(whiten_prior=not h["coder"]["whiten_prior"]),
    lambda h: h["coder"].update(lanes=3),
    lambda h: h["coder"].update(lanes=10**8),
    lambda h: h["coder"].update(coder="ISBitsBackCoder", num_particles=4096, lanes=4096),
    lambda h: h.update(image_shape=[64]),
    lambda h: h.update(image_shape=[4, 16]),
    lambda h: h.update(image_shape=[8, 8, 1]),
    lambda h: h.update(image_shape=[3, 3]),
    lambda h: h.update(image_shape=[2**20, 2**20]),
    lambda h: h.update(images_sha256="0" * 16),
    lambda h: h.update(portable=False),  # a harmless flag: the images come back exactly, or an error
    lambda h: h["coder"].update(arithmetic="float"),
    lambda h: h.update(posterior={"iterative": {"steps": 10**9, "lr": 0.1, "num_particles": 1, "seed": 0}}),
    lambda h: h.update(posterior={"iterative": {"steps": 1, "lr": float("nan"), "num_particles": 1,
                                                "seed": 0}}),
    lambda h: h.update(step_slack={"drawn": [10**15, 0], "words": [0, 0]}),
    lambda h: h.update(step_slack={"drawn": [0, 0], "words": [2**40, 0]}),
    lambda h: h.update(padding=5),
    lambda h: h.update(names=["a.png"] * 5),
    lambda h: h.update(encoder={"torch": "1"}),
], ids=["bad_bprec", "lprec_0", "lprec_200", "zero_particles", "million_particles", "unknown_coder",
        "drawn_per_lane", "drawn_2_63", "one_image_more", "one_image_less", "a_million_images",
        "10^12_images", "no_images", "other_seed", "seed_2_64", "seed_2_63", "other_whitening",
        "other_lanes", "10^8_lanes", "huge_particles_and_lanes", "shape_784", "shape_2x392",
        "shape_28x28x1", "shape_3x3", "huge_shape", "other_digest", "not_portable", "float",
        "billion_steps", "nan_lr", "huge_drawn_slack", "huge_word_slack", "padding", "names_count",
        "encoder_in_portable"])
def test_a_sealed_header_with_wrong_values_never_gives_wrong_images(tmp_path, images, change):
    # A correct check but values that differ from the encoder's: a clear error before any work
    # (or, for a flag that changes nothing, the exact images), quickly and without large memory.
    path = tmp_path / "x.mcb"
    _encode(path, images)
    _reseal(path, change)
    model = _model()
    try:
        decoded = _decode(path, model)
    except McbitsError as err:
        assert str(path) in str(err) and err.remedy
    else:
        assert decoded.shape == images.shape and decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, images)


@pytest.mark.parametrize("change", [
    lambda h: h.pop("drawn"),
    lambda h: h.pop("image_shape"),
    lambda h: h.update(coder=None),
    lambda h: h.update(coder={"coder": "BitsBackCoder"}),
    lambda h: h.update(num_images="abc"),
    lambda h: h.update(num_images=None),
    lambda h: h.update(num_images=float("nan")),
    lambda h: h.update(image_shape=[-28, -28]),
    lambda h: h.update(image_shape="28x28"),
    lambda h: h.update(posterior=[1]),
    lambda h: h.update(extra=1),
], ids=["no_drawn", "no_image_shape", "coder_null", "coder_incomplete", "num_abc", "num_null",
        "num_nan", "negative_shape", "shape_str", "posterior_list", "unknown_field"])
def test_a_header_dict_breaking_the_schema_is_a_clear_error(tmp_path, images, change):
    path = tmp_path / "x.mcb"
    _encode(path, images)
    header, payload = bitstream.unpack(path.read_bytes())
    change(header)
    with pytest.raises(fmt.InvalidHeader):
        fmt.validate(header, payload, str(path))


@pytest.mark.parametrize("value", [[1], 42, None, "hello"])
def test_a_header_that_is_not_a_table_is_a_clear_error(value):
    with pytest.raises(fmt.InvalidHeader, match="not a table"):
        fmt.validate(value, b"")


def test_the_field_table_lists_every_field_a_header_has(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images, names=[f"{i}.png" for i in range(6)], arithmetic="float")
    header = bitstream.read_header(path)[0]
    keys = {f.key.split(".")[0] for f in fmt.FIELDS}
    assert set(header) <= keys
    assert keys - set(header) <= {"step_slack"}
    assert set(header["coder"]) == {f.name for f in fmt.FIELDS if f.key.startswith("coder.")}


def test_limits_are_checked_for_encoding_too(tmp_path):
    model = TinyModel(latent_dim=50, num_pixels=784, seed=0)
    config = CoderConfig(coder="ISBitsBackCoder", num_particles=4096, lanes=MAX_LANES, mprec=12)
    images = np.zeros((1000, 784), np.uint8)
    with pytest.raises(McbitsError, match="GiB"):
        bitstream.encode_to_file(tmp_path / "x.mcb", images, make_coder(model, config), model_sha256=SHA)
    assert model.posterior_calls == [] and not (tmp_path / "x.mcb").exists()
    with pytest.raises(McbitsError, match="cannot encode"):
        bitstream.encode_to_file(tmp_path / "x.mcb", np.zeros((0, 784), np.uint8),
                                 make_coder(model, CoderConfig()), model_sha256=SHA)
    with pytest.raises(McbitsError, match="SHA-256"):
        bitstream.encode_to_file(tmp_path / "x.mcb", np.zeros((1, 784), np.uint8),
                                 make_coder(model, CoderConfig()), model_sha256="golden-model")
    assert limits.MAX_IMAGES >= 116_323  # EMNIST byclass, the largest test set


# ---------------------------------------------------------------------------------------------
# A decode that does not reproduce the images: arithmetic, or an inconsistent file


@pytest.mark.parametrize("coder,num", [("BitsBackCoder", 1), ("ISBitsBackCoder", 4), ("CISBitsBackCoder", 3),
                                       ("StochasticCoder", 1)])
def test_a_decoder_whose_arithmetic_differs_reports_it_instead_of_returning_images(tmp_path, images, coder,
                                                                                     num, monkeypatch):
    # The same model file, but pixel probabilities that differ by 1e-3 at decode time (as another
    # CPU or torch build could): the images' checksum catches it.
    path = tmp_path / "x.mcb"
    _encode(path, images, coder, num, arithmetic="float")
    assert bitstream.read_header(path)[0]["portable"] is False
    drifted = _model(arithmetic="float")
    drifted.perturbation = 1e-3
    # on another machine: blamed on the arithmetic, naming what differs
    here = bitstream.environment()
    monkeypatch.setattr(bitstream, "environment", lambda: {**here, "cpu": "another CPU"})
    with pytest.raises(McbitsError) as err:
        _decode(path, drifted)
    message = str(err.value)
    assert "arithmetic differed" in message and "not portable" in message and "another CPU" in message
    # on the encoder's own machine: not the arithmetic, the file
    monkeypatch.setattr(bitstream, "environment", lambda: here)
    with pytest.raises(McbitsError) as err:
        _decode(path, drifted)
    assert "environment is the encoder's" in str(err.value)
    assert "arithmetic differed" not in str(err.value)
    # a portable (exact) file that does not decode is damage or a bug, and is called so
    exact_path = tmp_path / "exact.mcb"
    _encode(exact_path, images, coder, num)
    assert bitstream.read_header(exact_path)[0]["portable"] is True
    exact_drifted = _model()
    exact_drifted.perturbation = 1e-3
    with pytest.raises(McbitsError, match="portable") as err:
        _decode(exact_path, exact_drifted)
    assert "arithmetic differed" not in str(err.value)  # not blamed on the machine
    # the files themselves are fine
    np.testing.assert_array_equal(_decode(path, _model(arithmetic="float")), images)
    np.testing.assert_array_equal(_decode(exact_path), images)


def test_an_edited_message_resealed_is_an_inconsistent_file(tmp_path, images):
    path = tmp_path / "x.mcb"
    _encode(path, images, "BitsBackCoder", 1, 1)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0x01  # the last tail word
    path.write_bytes(_reseal_bytes(bytes(data)))
    with pytest.raises(McbitsError, match="did not reproduce the encoded images") as err:
        _decode(path)
    assert "portable" in str(err.value) and "edited" in str(err.value)


def test_special_files_are_refused_without_reading_them(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.mcb")  # reading it would block forever
    with pytest.raises(McbitsError, match="not a regular file"):
        _decode(tmp_path / "fifo.mcb")


def test_the_posterior_stored_is_the_models(tmp_path, images):
    class Refined(TinyModel):
        def settings(self):
            return {"iterative": {"steps": 2, "lr": 0.1, "num_particles": 1, "seed": 0}}

    model = Refined(latent_dim=4, num_pixels=64, seed=0)
    coder = make_coder(model, CoderConfig(coder="BitsBackCoder"))
    bitstream.encode_to_file(tmp_path / "x.mcb", images, coder, model_sha256=SHA, stored=False)
    assert bitstream.read_header(tmp_path / "x.mcb")[0]["posterior"] == model.settings()
    np.testing.assert_array_equal(bitstream.decode_from_file(tmp_path / "x.mcb", model, model_sha256=SHA),
                                  images)
    with pytest.raises(McbitsError, match="not the model's"):
        bitstream.encode_to_file(tmp_path / "y.mcb", images, coder, model_sha256=SHA, posterior={})
