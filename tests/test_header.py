"""The header's field table (mcbits.coding.header.FIELDS): every valid header packs and parses back
to itself, every field out of its bounds is refused by name, and README's table is the table's."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcbits.coding import header as fmt
from mcbits.coding import limits
from mcbits.coding.config import CoderConfig
from mcbits.coding.rans import Message

README = Path(__file__).resolve().parents[1] / "README.md"
HEX = "0123456789abcdef"


def _examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None)


@st.composite
def headers(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A valid (header dict, payload): a stored file, or a rANS file whose message is the initial
    message of its lanes (the header's counts are free within their rules)."""
    coder = draw(st.sampled_from(sorted(fmt.CODER_IDS)))
    many = coder in ("ISBitsBackCoder", "CISBitsBackCoder")
    config = CoderConfig(
        coder=coder, num_particles=draw(st.integers(1, 8)) if many else 1,
        bprec=draw(st.sampled_from([16, 32])), lanes=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2**63 - 1)), whiten_prior=draw(st.booleans()),
        arithmetic=draw(st.sampled_from(["exact", "float"]))).validated()
    num = draw(st.integers(1, 9))
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    stored = draw(st.booleans())
    digest = st.text(HEX, min_size=16, max_size=16)
    header = fmt.new_header(config, num_images=num, image_shape=shape, stored=stored,
                            model_sha256=draw(digest), images_sha256=draw(digest))
    header["portable"] = stored or (config.arithmetic == "exact" and draw(st.booleans()))
    if stored:
        header["drawn"] = []
        payload = bytes(fmt.raw_bytes(num, len(shape) and int(__import__("math").prod(shape))))
    else:
        payload = Message(lanes=config.lanes, lprec=config.lprec, bprec=config.bprec,
                          seed=config.seed).to_bytes()
        busy = [lane < num for lane in range(config.lanes)]
        counts = st.integers(0, 2**40)
        header["drawn"] = [draw(counts) if b else 0 for b in busy]
        header["padding"] = max(0, num - len(payload))
        if draw(st.booleans()):
            header["step_slack"] = {k: [draw(counts) if b else 0 for b in busy] for k in ("drawn", "words")}
    if draw(st.booleans()):
        header["posterior"] = {"iterative": {"steps": draw(st.integers(0, 50)),
                                             "lr": draw(st.floats(1e-6, 1.0)),
                                             "num_particles": draw(st.integers(1, 8)),
                                             "seed": draw(st.integers(0, 2**63 - 1))}}
    if draw(st.booleans()):
        name = st.text(st.characters(blacklist_characters="/\\\0", blacklist_categories=("Cs",)),
                       min_size=1, max_size=20).filter(lambda n: n not in (".", ".."))
        header["names"] = [draw(name) for _ in range(num)]
    if not header["portable"] and draw(st.booleans()):
        header["encoder"] = draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
    return header, payload


@_examples(150)
@given(headers())
def test_a_valid_header_packs_and_parses_back_to_itself(case):
    header, payload = case
    fmt.validate(header, payload)
    data = fmt.pack(header, payload)
    back, back_payload = fmt.parse(data)
    assert back == header and back_payload == payload
    assert fmt.pack(back, back_payload) == data  # one encoding per header: byte-identical files
    assert len(data) >= fmt.MIN_FILE_BYTES
    assert len(data) - len(payload) - fmt.CHECK_BYTES <= fmt.fixed_header_bytes(header["coder"]["lanes"]) \
        + (len(data) if header.get("names") or header.get("encoder") or header["posterior"] else 40)


# Values just outside each field's bounds, and values of the wrong kind: (field, value).
_INTEGER_FIELDS = [f for f in fmt.FIELDS if f.bounds]
_OUT_OF_BOUNDS = [(f.key, v) for f in _INTEGER_FIELDS for v in (f.bounds[0] - 1, f.bounds[1] + 1)] + [
    ("coder.num_particles", 0), ("coder.num_particles", 4097), ("coder.seed", 2**63),
    ("coder.lprec", 0), ("coder.bprec", 12), ("coder.log_num_bucket", 17), ("coder.arithmetic", "fast"),
    ("coder.coder", "NoCoder"), ("coder.whiten_prior", 1),
    ("portable", 1), ("stored", "yes"), ("num_images", "3"), ("image_shape", []),
    ("image_shape", [0]), ("image_shape", [1] * (limits.MAX_DIMS + 1)), ("model_sha256", "ABCDEF0123456789"),
    ("images_sha256", "00"), ("drawn", [2**62]), ("drawn", []), ("padding", -1),
    ("posterior", {"iterative": {"steps": 10**6, "lr": 0.1, "num_particles": 1, "seed": 0}}),
    ("posterior", {"other": 1}), ("step_slack", {"drawn": [0], "words": [-1]}),
    ("names", ["a/b"]), ("names", []), ("encoder", {"torch": "1"}),
]


def _set(header: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    header = copy.deepcopy(header)
    if key.startswith("coder."):
        header["coder"][key[6:]] = value
    else:
        header[key] = value
    return header


def _base() -> tuple[dict[str, Any], bytes]:
    config = CoderConfig(lanes=1)
    payload = Message(lanes=1, seed=0).to_bytes()
    header = fmt.new_header(config, portable=True, num_images=1, image_shape=[8, 8],
                            model_sha256="0" * 16, images_sha256="1" * 16)
    header["padding"] = max(0, 1 - len(payload))
    return header, payload


@pytest.mark.parametrize("key,value", _OUT_OF_BOUNDS, ids=[f"{k}={v!r}"[:40] for k, v in _OUT_OF_BOUNDS])
def test_a_field_out_of_its_bounds_is_refused_by_name(key, value):
    header, payload = _base()
    fmt.validate(header, payload)
    with pytest.raises(fmt.InvalidHeader) as err:
        fmt.validate(_set(header, key, value), payload, "x.mcb")
    name = key.rsplit(".", 1)[-1]
    words = {"coder": "coder", "encoder": "encoder", "names": "name", "stored": "stored"}
    assert words.get(name, name) in err.value.detail, err.value.detail
    assert err.value.where == "x.mcb" and err.value.remedy


@_examples(60)
# pack always writes FORMAT_VERSION; a foreign version byte is refused before any field (test_bitstream)
@given(st.sampled_from([f for f in _INTEGER_FIELDS if f.key != "format_version"]), st.booleans(),
       st.integers(1, 2**40))
def test_an_out_of_bounds_integer_in_a_file_is_refused_by_name(field, above, distance):
    # through the bytes: what a faulty or hostile writer seals
    header, payload = _base()
    low, high = field.bounds
    value = high + distance if above else low - distance
    if value < 0:
        value = high + distance
    try:
        data = fmt.pack(_set(header, field.key, value), payload)
    except ValueError:  # the layout cannot hold it (a byte field above 255)
        return
    with pytest.raises(fmt.InvalidHeader) as err:
        fmt.parse(data, "x.mcb")
    assert field.name in err.value.detail


def test_the_table_names_every_coder_parameter_once():
    keys = [f.key for f in fmt.FIELDS]
    assert len(keys) == len(set(keys))
    assert [k[6:] for k in keys if k.startswith("coder.")] == sorted(
        (k for k in CoderConfig().to_dict()), key=[k[6:] for k in keys if k.startswith("coder.")].index)
    assert {k[6:] for k in keys if k.startswith("coder.")} == set(CoderConfig().to_dict())
    assert sorted(fmt.EXTENSIONS) == [fmt.EXT_ITERATIVE, fmt.EXT_ENCODER, fmt.EXT_NAMES,
                                      fmt.EXT_STEP_SLACK, fmt.EXT_PADDING]


def test_a_default_one_image_file_has_the_documented_header_size():
    header, payload = _base()
    data = fmt.pack(header, payload)
    assert len(data) - len(payload) - fmt.CHECK_BYTES == 36  # header.py's docstring, README


def test_the_readme_table_is_the_field_table():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- header-fields:start -->\n(.*?)<!-- header-fields:end -->", text, re.S)
    assert found, "README.md lacks the header-fields markers in its file-format section"
    assert found.group(1) == fmt.fields_table(), (
        "README's header table differs from mcbits.coding.header.fields_table(): paste its output "
        "between the header-fields markers")
