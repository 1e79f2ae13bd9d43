"""A fuzzer in the suite (issue 13): hostile bitstreams of every coder give a clean McbitsError or the
exact original images, each decode within 5 s and 1 GiB of allocations.

Header fields edited with the check recomputed (values on and beyond every limit), header and
message bytes edited and resealed, bytes inserted and deleted in the header, truncations, bit
flips in the message and the check, appended bytes. Deterministic (derandomized) and short here;
`python benchmarks/fuzz.py` runs the long version and prints its counts.
"""

from __future__ import annotations

import pytest
from fuzzing import (
    CODERS,
    FIELDS,
    INTERESTING_INTS,
    OTHER_SHA,
    base_cases,
    decode_verdict,
    header_size,
    repack,
    reseal,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mcbits.coding import bitstream
from mcbits.coding import header as fmt

TIME_LIMIT_S = 5.0
MEMORY_LIMIT = 1 << 30
NAMES = [c[0] for c in CODERS]

def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return {case.name: case for case in base_cases(tmp_path_factory.mktemp("fuzz"))}


def _acceptable(verdict, *, exact_allowed: bool = True) -> None:
    allowed = ("exact", "error") if exact_allowed else ("error",)
    assert verdict.kind in allowed, verdict.detail
    assert verdict.seconds < TIME_LIMIT_S, verdict
    assert verdict.peak_bytes < MEMORY_LIMIT, verdict


def _ints() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(INTERESTING_INTS), st.integers(0, 64), st.integers(0, 2**70 - 1))


def _value(field: str) -> st.SearchStrategy:
    if field == "coder.coder":
        return st.integers(0, 7)
    if field in ("coder.whiten_prior", "portable", "stored"):
        return st.booleans()
    if field == "coder.arithmetic":
        return st.sampled_from(["exact", "float"])
    if field == "padding":  # the writer makes the bytes: keep files small
        return st.one_of(st.integers(0, 300), st.sampled_from([2**16, 2**22]))
    if field.startswith("coder.") or field == "num_images":
        return _ints()
    if field in ("image_shape", "drawn"):
        return st.lists(_ints(), max_size=5)
    if field == "step_slack":
        return st.integers(0, 4).flatmap(
            lambda n: st.fixed_dictionaries({"drawn": st.lists(_ints(), min_size=n, max_size=n),
                                             "words": st.lists(_ints(), min_size=n, max_size=n)}))
    if field == "posterior":
        return st.one_of(st.just({}), st.fixed_dictionaries({"iterative": st.fixed_dictionaries({
            "steps": _ints(), "lr": st.floats(allow_nan=True, allow_infinity=True),
            "num_particles": _ints(), "seed": _ints()})}))
    if field == "names":
        return st.lists(st.text(max_size=300), max_size=8)
    if field == "encoder":
        return st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3)
    if field in ("images_sha256", "model_sha256"):
        return st.text("0123456789abcdef", min_size=16, max_size=16)
    raise KeyError(field)


@fuzz(400)
@given(name=st.sampled_from(NAMES), field=st.sampled_from(FIELDS), data=st.data())
def test_header_field_edits_with_the_check_recomputed(cases, tmp_path, name, field, data):
    case = cases[name]
    edited = repack(case.data, field, data.draw(_value(field)))
    assume(edited is not None)
    _acceptable(decode_verdict(edited, case, tmp_path / "x.mcb"))


@fuzz(150)
@given(name=st.sampled_from(NAMES), edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                              st.integers(0, 255)), min_size=1, max_size=3))
def test_header_byte_edits_with_the_check_recomputed(cases, tmp_path, name, edits):
    case = cases[name]
    head = header_size(case.data)
    data = bytearray(case.data)
    for where, value in edits:
        data[4 + int(where * (head - 4))] = value
    _acceptable(decode_verdict(reseal(bytes(data)), case, tmp_path / "x.mcb"))


@fuzz(80)
@given(name=st.sampled_from(NAMES), where=st.floats(0, 1, exclude_max=True), insert=st.booleans(),
       value=st.integers(0, 255))
def test_header_bytes_inserted_or_deleted_with_the_check_recomputed(cases, tmp_path, name, where, insert,
                                                                    value):
    case = cases[name]
    i = 4 + int(where * (header_size(case.data) - 4))
    data = case.data[:i] + (bytes([value]) if insert else b"") + case.data[i + (0 if insert else 1):]
    _acceptable(decode_verdict(reseal(data), case, tmp_path / "x.mcb"))


@fuzz(80)
@given(name=st.sampled_from(NAMES), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_message_bit_flips_with_the_check_recomputed(cases, tmp_path, name, where, bit):
    case = cases[name]
    head = header_size(case.data)
    data = bytearray(case.data)
    data[head + int(where * (len(data) - fmt.CHECK_BYTES - head))] ^= 1 << bit
    _acceptable(decode_verdict(reseal(bytes(data)), case, tmp_path / "x.mcb"), exact_allowed=False)


@fuzz(40)
@given(name=st.sampled_from(NAMES), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_bit_flips_anywhere_including_the_check_are_corruption(cases, tmp_path, name, where, bit):
    case = cases[name]
    data = bytearray(case.data)
    data[int(where * len(data))] ^= 1 << bit
    verdict = decode_verdict(bytes(data), case, tmp_path / "x.mcb")
    _acceptable(verdict, exact_allowed=False)


@fuzz(40)
@given(name=st.sampled_from(NAMES), keep=st.floats(0, 1, exclude_max=True), resealed=st.booleans())
def test_truncations(cases, tmp_path, name, keep, resealed):
    case = cases[name]
    data = case.data[:int(keep * len(case.data))]
    if resealed and len(data) > 8:
        data = reseal(data + b"\0" * fmt.CHECK_BYTES)
    _acceptable(decode_verdict(data, case, tmp_path / "x.mcb"), exact_allowed=False)


@fuzz(30)
@given(name=st.sampled_from(NAMES), extra=st.binary(min_size=1, max_size=32), resealed=st.booleans())
def test_appended_bytes(cases, tmp_path, name, extra, resealed):
    case = cases[name]
    if resealed:  # more payload than the encoder wrote
        data = reseal(case.data[:-fmt.CHECK_BYTES] + extra + b"\0" * fmt.CHECK_BYTES)
    else:
        data = case.data + extra
    _acceptable(decode_verdict(data, case, tmp_path / "x.mcb"), exact_allowed=False)


def test_the_base_files_decode_and_a_wrong_checkpoint_is_refused(cases, tmp_path):
    for case in cases.values():
        assert decode_verdict(case.data, case, tmp_path / "x.mcb").kind == "exact"
        verdict = decode_verdict(case.data, case, tmp_path / "x.mcb", model_sha256=OTHER_SHA)
        assert verdict.kind == "error" and "encoded with model" in verdict.detail
        assert bitstream.read_header(tmp_path / "x.mcb")[0]["model_sha256"] == "5e" * 8
