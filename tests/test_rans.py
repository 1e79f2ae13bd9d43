"""The rANS Message: exact undo of random push/pop sequences, bit accounting, serialization, errors.

The property tests drive Message with random blocks of table, Bernoulli and uniform symbols at
random precisions, lane counts and (lprec, bprec), in three orders: push then pop (plain ANS),
pop then push (bits-back: pops from an empty tail draw virtual words that the pushes give back)
and a random interleaving. Undoing every block in reverse order must give back every symbol and
a message identical (==, is_initial) to the initial one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from coding_doubles import rans_rounding_bound
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mcbits.coding import rans
from mcbits.coding.rans import SUPPORTED_BPREC, Message
from mcbits.errors import McbitsError

U64_MAX = (1 << 64) - 1
PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ---------------------------------------------------------------------------------------------
# Random blocks of symbols


def _distinct_sorted(rng: np.random.Generator, low: int, high: int, k: int) -> np.ndarray:
    """k distinct integers in [low, high), sorted."""
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if high - low <= 4096:
        return np.sort(rng.permutation(np.arange(low, high, dtype=np.int64))[:k])
    found = np.zeros(0, dtype=np.int64)
    while found.size < k:
        found = np.unique(np.concatenate([found, rng.integers(low, high, size=k, dtype=np.int64)]))
    return np.sort(rng.choice(found, size=k, replace=False))


def random_cdf(rng: np.random.Generator, lead: tuple[int, ...], k: int, prec: int, mode: str) -> np.ndarray:
    """CDF tables (*lead, k + 1) rising strictly from 0 to 2^prec.

    mode "first"/"last" put all but k - 1 units on the first/last symbol (the others get
    frequency 1: the extreme case for the coder); "random" cuts at random points.
    """
    total = 1 << prec
    rows = []
    for _ in range(int(np.prod(lead))):
        if mode == "first":
            cuts = np.arange(total - k + 1, total, dtype=np.int64)
        elif mode == "last":
            cuts = np.arange(1, k, dtype=np.int64)
        else:
            cuts = _distinct_sorted(rng, 1, total, k - 1)
        rows.append(np.concatenate(([0], cuts, [total])))
    return np.array(rows, dtype=np.int64).reshape(*lead, k + 1)


def max_uniform_width(prec: int) -> int:
    """The widest uniform the property tests use at `prec`.

    The documented domain is width <= 2^prec, but the coder's integer arithmetic also needs
    width * 2^prec < 2^64 (see test_uniform_wide_ranges_round_trip_or_are_refused).
    """
    return min(1 << prec, U64_MAX >> prec)


@dataclasses.dataclass
class Block:
    """One push/pop block: a kind of distribution, its precision and parameters, its lanes."""

    kind: str
    prec: int
    lanes: int
    length: int
    cdf: np.ndarray | None = None
    rows: np.ndarray | None = None
    freq1: np.ndarray | None = None
    widths: np.ndarray | None = None

    def random_symbols(self, rng: np.random.Generator) -> np.ndarray:
        shape = (self.lanes, self.length)
        if self.kind == "table":
            return rng.integers(0, self.cdf.shape[-1] - 1, size=shape, dtype=np.int64)
        if self.kind == "bernoulli":
            return rng.integers(0, 2, size=shape).astype(np.uint8)
        return rng.integers(0, self.widths, dtype=np.int64)

    def push(self, msg: Message, symbols: np.ndarray) -> None:
        if self.kind == "table":
            msg.push_table(self.cdf, self.rows, symbols, self.prec)
        elif self.kind == "bernoulli":
            msg.push_bernoulli(self.freq1, symbols, self.prec)
        else:
            msg.push_uniform(self.widths, symbols, self.prec)

    def pop(self, msg: Message) -> np.ndarray:
        if self.kind == "table":
            return msg.pop_table(self.cdf, self.rows, self.lanes, self.prec)
        if self.kind == "bernoulli":
            return msg.pop_bernoulli(self.freq1, self.prec)
        return msg.pop_uniform(self.widths, self.prec)

    def check_symbols(self, symbols: np.ndarray) -> None:
        assert symbols.shape == (self.lanes, self.length)
        if self.kind == "table":
            assert ((symbols >= 0) & (symbols < self.cdf.shape[-1] - 1)).all()
        elif self.kind == "bernoulli":
            assert ((symbols == 0) | (symbols == 1)).all()
        else:
            assert ((symbols >= 0) & (symbols < self.widths)).all()


@st.composite
def message_setups(draw) -> tuple[int, int, int, int]:
    """(lprec, bprec, lanes, seed) over every valid combination."""
    bprec = draw(st.sampled_from(SUPPORTED_BPREC))
    lprec = draw(st.one_of(st.just(32 if bprec == 32 else 64 - bprec), st.integers(1, 64 - bprec)))
    lanes = draw(st.integers(1, 4))
    seed = draw(st.integers(0, U64_MAX))
    return lprec, bprec, lanes, seed


@st.composite
def blocks(draw, lprec: int, lanes: int) -> Block:
    """A random block of symbols valid for a message with this lprec and lane count."""
    kind = draw(st.sampled_from(["table", "bernoulli", "uniform"]))
    prec = draw(st.integers(1, lprec))
    used = draw(st.integers(1, lanes))
    length = draw(st.integers(0, 40))
    mode = draw(st.sampled_from(["random", "first", "last"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    total = 1 << prec
    block = Block(kind, prec, used, length)
    if kind == "table":
        k = draw(st.integers(1, min(total, 40)))
        num_rows = draw(st.integers(1, 3))
        shared = draw(st.booleans())
        block.cdf = random_cdf(rng, (1 if shared else used, num_rows), k, prec, mode)
        block.rows = rng.integers(0, num_rows, size=length, dtype=np.int64)
    elif kind == "bernoulli":
        if mode == "first":
            freq1 = np.ones((used, length), dtype=np.int64)
        elif mode == "last":
            freq1 = np.full((used, length), total - 1, dtype=np.int64)
        else:
            freq1 = rng.integers(1, max(total - 1, 1), size=(used, length), dtype=np.int64, endpoint=True)
        block.freq1 = freq1
    else:
        top = max_uniform_width(prec)
        if mode == "first":
            widths = np.ones((used, length), dtype=np.int64)
        elif mode == "last":
            widths = np.full((used, length), top, dtype=np.int64)
        else:
            widths = rng.integers(1, top, size=(used, length), dtype=np.int64, endpoint=True)
        block.widths = widths
    return block


def assert_heads_in_range(msg: Message) -> None:
    heads = [int(h) for h in msg.heads]
    assert all((1 << msg.lprec) <= h < (1 << (msg.lprec + msg.bprec)) for h in heads), heads


def assert_round_trips_through_bytes(msg: Message) -> Message:
    """to_bytes/from_bytes give an identical message; total_bits is the serialized size."""
    data = msg.to_bytes()
    assert msg.total_bits == 8 * len(data)
    back = Message.from_bytes(
        data, lanes=msg.lanes, lprec=msg.lprec, bprec=msg.bprec, seed=msg.seed, drawn=msg.drawn
    )
    assert back == msg
    assert back.to_bytes() == data
    assert back.net_bits == msg.net_bits
    return back


# ---------------------------------------------------------------------------------------------
# Properties: exact undo, identity, serialization


@pytest.mark.parametrize("order", ["push_then_pop", "pop_then_push", "interleaved"])
@PROPERTY_SETTINGS
@given(setup=message_setups(), data=st.data())
def test_undoing_random_blocks_restores_the_initial_message(order, setup, data):
    lprec, bprec, lanes, seed = setup
    msg = Message(lanes=lanes, lprec=lprec, bprec=bprec, seed=seed)
    initial = msg.copy()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    num_blocks = data.draw(st.integers(1, 6))
    done: list[tuple[bool, Block, np.ndarray]] = []
    for _ in range(num_blocks):
        block = data.draw(blocks(lprec, lanes))
        if order == "push_then_pop":
            is_push = True
        elif order == "pop_then_push":
            is_push = False
        else:
            is_push = data.draw(st.booleans())
        untouched = (msg.heads[block.lanes :].copy(), msg.lens[block.lanes :].copy(),
                     msg.drawn[block.lanes :].copy())
        if is_push:
            symbols = block.random_symbols(rng)
            block.push(msg, symbols)
        else:
            symbols = block.pop(msg)
            block.check_symbols(symbols)
        # a block on the first b lanes leaves the other lanes alone
        assert np.array_equal(msg.heads[block.lanes :], untouched[0])
        assert np.array_equal(msg.lens[block.lanes :], untouched[1])
        assert np.array_equal(msg.drawn[block.lanes :], untouched[2])
        assert_heads_in_range(msg)
        done.append((is_push, block, symbols))

    event("words drawn" if msg.drawn.any() else "nothing drawn")
    event("tail holds words" if msg.lens.any() else "tail empty")
    # Continue on the deserialized copy: it must behave exactly like the original.
    msg = assert_round_trips_through_bytes(msg)

    for is_push, block, symbols in reversed(done):
        if is_push:
            back = block.pop(msg)
            assert np.array_equal(back, symbols)
        else:
            block.push(msg, symbols)
        assert_heads_in_range(msg)
    assert msg == initial
    assert msg.is_initial
    assert msg.net_bits == 0.0
    assert msg.total_bits == 8 * len(initial.to_bytes())


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), prec=st.integers(1, 32), k=st.integers(1, 300),
       lanes=st.integers(1, 3), uses=st.integers(4, 60), empties=st.floats(0.0, 0.9))
def test_guided_pops_equal_binary_search_pops(seed, prec, k, lanes, uses, empties):
    """A pop that serves many symbols per CDF row starts from a guide table (rans.GUIDE_USES); the
    symbols and the message must be those of the binary search used for one symbol per row, with
    zero-width symbols (which no value can land in) among them."""
    rng = np.random.default_rng(seed)
    k = min(k, 1 << prec)
    cdf = np.zeros((lanes, 1, k + 1), dtype=np.int64)
    for lane in range(lanes):
        cuts = np.sort(rng.integers(0, (1 << prec) + 1, size=k - 1))
        widths = np.diff(np.concatenate(([0], cuts, [1 << prec])))
        # some symbols get zero width: move their width onto a neighbour
        for s in np.flatnonzero(rng.random(k) < empties):
            target = (s + 1) % k
            widths[target] += widths[s]
            widths[s] = 0
        if widths.max() == 0 or widths.sum() != 1 << prec:
            widths[:] = 0
            widths[0] = 1 << prec
        cdf[lane, 0] = np.concatenate(([0], np.cumsum(widths)))
    length = uses
    assert length >= rans.GUIDE_USES  # the guided path (one row, many symbols)
    guided = Message(lanes=lanes, seed=seed)
    plain = guided.copy()
    got = guided.pop_table(cdf, np.zeros(length, np.int64), lanes, prec)
    # the same rows repeated as separate rows: one symbol per row, so the binary search
    expected = plain.pop_table(np.repeat(cdf, length, axis=1), np.arange(length), lanes, prec)
    assert np.array_equal(got, expected)
    assert guided == plain
    widths_of = np.take_along_axis(np.diff(cdf[:, 0], axis=1), got, axis=1)
    assert (widths_of > 0).all()


def test_pops_from_a_fresh_message_draw_words_and_pushes_give_them_back():
    # 3 lanes, 500 symbols of 8 bits per lane: far more than a head holds, so words are drawn.
    msg = Message(lanes=3, lprec=32, bprec=32, seed=11)
    initial = msg.copy()
    cdf = np.arange(257, dtype=np.int64).reshape(1, 1, 257)
    rows = np.zeros(500, dtype=np.int64)
    symbols = msg.pop_table(cdf, rows, 3, 8)
    assert (msg.drawn > 100).all()  # 4000 bits per lane came out of ~64-bit heads
    assert not msg.lens.any()
    assert not msg.is_initial
    mid = assert_round_trips_through_bytes(msg)
    assert mid.total_bits == 3 * 64 + 3 * 32  # three heads and the lane table: no tail words
    mid.push_table(cdf, rows, symbols, 8)
    assert mid == initial and mid.is_initial


def test_pops_that_find_pushed_words_use_them_before_drawing():
    msg = Message(lanes=1, lprec=32, bprec=32, seed=2)
    rng = np.random.default_rng(0)
    freq1 = rng.integers(1, 1 << 16, size=(1, 300))
    bits = rng.integers(0, 2, size=(1, 300))
    msg.push_bernoulli(freq1, bits, 16)
    assert msg.lens[0] > 0 and msg.drawn[0] == 0
    pushed = msg.copy()
    # Popping a uniform block shorter than what was pushed reads pushed words only.
    widths = np.full((1, 4), 1 << 8)
    values = msg.pop_uniform(widths, 8)
    assert msg.drawn[0] == 0
    msg.push_uniform(widths, values, 8)
    assert msg == pushed


def test_copy_is_independent_and_equality_sees_every_difference():
    msg = Message(lanes=2, seed=5)
    snap = msg.copy()
    msg.push_bernoulli(np.full((1, 3), 100), np.ones((1, 3)), 16)
    assert msg != snap and snap.is_initial
    assert Message(lanes=2, seed=5) == snap
    assert Message(lanes=2, seed=6) != snap  # another seed: other initial heads and virtual words
    assert Message(lanes=3, seed=5) != snap
    assert Message(lanes=2, lprec=24, bprec=32, seed=5) != snap


def test_one_lane_serializes_as_a_plain_stack():
    # One lane costs what upstream's single stack costs: the head and the words, no lane table.
    msg = Message(lanes=1, lprec=32, bprec=32, seed=0)
    msg.push_uniform(np.full((1, 40), 1 << 16), np.arange(40).reshape(1, 40), 16)
    words = int(msg.lens[0])
    assert words > 0
    assert len(msg.to_bytes()) == 8 + 4 * words
    assert msg.total_bits == 64 + 32 * words


# ---------------------------------------------------------------------------------------------
# Bit accounting


def test_net_bits_of_a_hand_checked_sequence():
    # Frequencies 1, 3, 12 of 16: costs 4, log2(16/3) = 2.415 and log2(16/12) = 0.415 bits.
    cdf = np.array([[[0, 1, 4, 16]]], dtype=np.int64)
    counts = (10, 30, 60)
    symbols = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], counts))[None, :]
    ideal = counts[0] * 4.0 + counts[1] * math.log2(16 / 3) + counts[2] * math.log2(16 / 12)
    assert ideal == pytest.approx(137.35, abs=0.01)  # 40 + 72.45 + 24.90, by hand
    for lprec, bprec in ((32, 32), (8, 8), (16, 16), (56, 8)):
        msg = Message(lanes=1, lprec=lprec, bprec=bprec, seed=3)
        msg.push_table(cdf, np.zeros(symbols.shape[1], dtype=np.int64), symbols, 4)
        assert msg.drawn[0] == 0
        bound = rans_rounding_bound(symbols.shape[1], 1, lprec, 4)
        assert abs(msg.net_bits - ideal) <= bound, (lprec, bprec, msg.net_bits, ideal, bound)
        # total = the head bytes and the words; net = their growth over the initial head
        head_bits = 8 * ((lprec + bprec + 7) // 8)
        assert msg.total_bits == head_bits + bprec * int(msg.lens[0])
    # at upstream's precisions the rounding is negligible
    assert rans_rounding_bound(100, 1, 32, 4) < 1e-5


@PROPERTY_SETTINGS
@given(data=st.data())
def test_net_bits_track_the_information_pushed_and_popped(data):
    bprec = data.draw(st.sampled_from(SUPPORTED_BPREC))
    lprec = data.draw(st.integers(2, 64 - bprec))  # a precision below lprec bounds the rounding
    lanes = data.draw(st.integers(1, 4))
    seed = data.draw(st.integers(0, U64_MAX))
    prec = data.draw(st.integers(1, lprec - 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    k = data.draw(st.integers(1, min(1 << prec, 30)))
    mode = data.draw(st.sampled_from(["random", "first", "last"]))
    cdf = random_cdf(rng, (1, 1), k, prec, mode)
    freqs = np.diff(cdf[0, 0])
    msg = Message(lanes=lanes, lprec=lprec, bprec=bprec, seed=seed)
    words_per_symbol = -(-prec // bprec)

    # Pop first (bits-back style): the drawn words are excluded, so net goes negative.
    n_pop = data.draw(st.integers(0, 60))
    popped = msg.pop_table(cdf, np.zeros(n_pop, dtype=np.int64), lanes, prec)
    info_popped = float(np.sum(prec - np.log2(freqs[popped])))
    bound = rans_rounding_bound(lanes * n_pop, words_per_symbol, lprec, prec)
    assert abs(msg.net_bits - (-info_popped)) <= bound + 1e-9
    assert not msg.lens.any()  # nothing was pushed, so every word that came in was drawn
    assert msg.bprec * int(msg.drawn.sum()) >= info_popped - lanes * (lprec + bprec) - bound

    # Then push other symbols: net = what was pushed minus what was popped.
    n_push = data.draw(st.integers(0, 60))
    pushed = rng.integers(0, k, size=(lanes, n_push))
    msg.push_table(cdf, np.zeros(n_push, dtype=np.int64), pushed, prec)
    info_pushed = float(np.sum(prec - np.log2(freqs[pushed])))
    bound += rans_rounding_bound(lanes * n_push, words_per_symbol, lprec, prec)
    assert abs(msg.net_bits - (info_pushed - info_popped)) <= bound + 1e-9
    assert msg.total_bits == 8 * len(msg.to_bytes())


def test_drawn_words_count_bprec_each_against_net_bits():
    # Pop 64 bits' worth from each of 2 lanes of a fresh message, then push exactly the same
    # amount of information back as *other* symbols: net is then ~0, while the message holds
    # words, because the drawn words (bprec bits each) are not counted as content.
    msg = Message(lanes=2, lprec=32, bprec=32, seed=9)
    uniform16 = np.full((2, 16), 1 << 16)
    msg.pop_uniform(uniform16, 16)  # 256 bits per lane
    assert (msg.drawn >= 6).all()
    msg.push_uniform(uniform16, np.zeros((2, 16), dtype=np.int64), 16)
    assert abs(msg.net_bits) <= rans_rounding_bound(64, 1, 32, 16) + 1e-9
    words = int(msg.lens.sum())
    assert words >= 12  # the words are really there ...
    assert msg.total_bits == 2 * 64 + 2 * 32 + 32 * words  # ... and in the serialized size
    assert msg.initial_bits >= 32 * int(msg.drawn.sum())  # the drawn words are initial bits


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("bprec", [0, 4, 12, 24, 64])
def test_unsupported_bprec_is_refused(bprec):
    with pytest.raises(McbitsError) as err:
        Message(lprec=8, bprec=bprec)
    assert err.value.where == "parameter bprec"
    assert "bprec" in str(err.value)


@pytest.mark.parametrize("lprec,bprec", [(33, 32), (49, 16), (57, 8), (0, 32), (-1, 8)])
def test_heads_that_do_not_fit_64_bits_are_refused(lprec, bprec):
    with pytest.raises(McbitsError) as err:
        Message(lprec=lprec, bprec=bprec)
    assert err.value.where == "parameter lprec"
    assert err.value.remedy


@pytest.mark.parametrize("lprec,bprec", [(32, 32), (56, 8), (48, 16), (1, 8), (1, 32)])
def test_boundary_precisions_are_accepted(lprec, bprec):
    msg = Message(lprec=lprec, bprec=bprec)
    widths = np.full((1, 20), max_uniform_width(lprec))
    values = msg.pop_uniform(widths, lprec)
    msg.push_uniform(widths, values, lprec)
    assert msg.is_initial


def test_zero_lanes_are_refused():
    with pytest.raises(McbitsError) as err:
        Message(lanes=0)
    assert "lanes" in str(err.value)


@pytest.mark.parametrize("operation", ["push_table", "pop_table", "push_bernoulli", "pop_bernoulli",
                                       "push_uniform", "pop_uniform"])
@pytest.mark.parametrize("prec", [17, 0])
def test_distribution_precision_outside_1_to_lprec_is_refused(operation, prec):
    msg = Message(lprec=16, bprec=16)
    cdf = np.array([[[0, 1, 1 << 16]]], dtype=np.int64)
    ones = np.ones((1, 2), dtype=np.int64)
    calls = {
        "push_table": lambda: msg.push_table(cdf, np.zeros(2), ones, prec),
        "pop_table": lambda: msg.pop_table(cdf, np.zeros(2), 1, prec),
        "push_bernoulli": lambda: msg.push_bernoulli(ones, ones, prec),
        "pop_bernoulli": lambda: msg.pop_bernoulli(ones, prec),
        "push_uniform": lambda: msg.push_uniform(ones * 2, ones, prec),
        "pop_uniform": lambda: msg.pop_uniform(ones * 2, prec),
    }
    with pytest.raises(McbitsError) as err:
        calls[operation]()
    assert "lprec" in str(err.value)
    assert msg.is_initial  # refused before touching the message


@pytest.mark.parametrize(
    "lprec,bprec,prec,width,codes",
    [
        # the widest uniforms that fit (width <= 2^prec and width * 2^prec < 2^64): coded exactly
        (32, 32, 32, (1 << 32) - 1, True),
        (56, 8, 40, (1 << 24) - 1, True),
        # one step wider: width * 2^prec would wrap 64 bits, so the push must refuse
        (32, 32, 32, 1 << 32, False),
        (56, 8, 40, 1 << 24, False),
    ],
)
def test_uniform_wide_ranges_round_trip_or_are_refused(lprec, bprec, prec, width, codes):
    msg = Message(lprec=lprec, bprec=bprec, seed=1)
    initial = msg.copy()
    widths = np.full((1, 3), width, dtype=np.int64)
    values = np.array([[width - 1, 0, width // 2]], dtype=np.int64)
    if not codes:
        with pytest.raises(McbitsError, match="cannot be coded"):
            msg.push_uniform(widths, values, prec)
        assert msg == initial  # refused before touching the message
        return
    msg.push_uniform(widths, values, prec)
    assert not msg.is_initial
    assert np.array_equal(msg.pop_uniform(widths, prec), values)
    assert msg == initial


# ---------------------------------------------------------------------------------------------
# Deserialization errors


def _message_with_words(lanes: int) -> Message:
    msg = Message(lanes=lanes, lprec=32, bprec=32, seed=4)
    msg.push_uniform(np.full((lanes, 30), 1 << 16), np.ones((lanes, 30), dtype=np.int64), 16)
    assert msg.lens.all()
    return msg


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("cut", ["empty", "inside_first_head", "one_byte_short", "three_bytes_short"])
def test_truncated_message_bytes_are_refused(lanes, cut):
    data = _message_with_words(lanes).to_bytes()
    truncated = {
        "empty": b"",
        "inside_first_head": data[:5],
        "one_byte_short": data[:-1],  # a partial word
        "three_bytes_short": data[:-3],
    }[cut]
    with pytest.raises(McbitsError):
        Message.from_bytes(truncated, lanes=lanes, lprec=32, bprec=32, seed=4, drawn=[0] * lanes)


def test_head_out_of_range_is_refused():
    data = bytearray(_message_with_words(1).to_bytes())
    data[:8] = bytes(8)  # a zero head is below 2^lprec
    with pytest.raises(McbitsError) as err:
        Message.from_bytes(bytes(data), lanes=1, lprec=32, bprec=32, seed=4, drawn=[0])
    assert "head" in str(err.value)


@pytest.mark.parametrize("drawn", [[0, 0], [0, 0, 0, 0], [0, -1, 0]])
def test_drawn_counts_must_match_the_lanes(drawn):
    data = _message_with_words(3).to_bytes()
    with pytest.raises(McbitsError):
        Message.from_bytes(data, lanes=3, lprec=32, bprec=32, seed=4, drawn=drawn)


def test_lane_table_inconsistent_with_length_is_refused():
    data = bytearray(_message_with_words(2).to_bytes())
    lens_at = 2 * 8
    data[lens_at] += 1  # lane 0 claims one more word than the bytes hold
    with pytest.raises(McbitsError):
        Message.from_bytes(bytes(data), lanes=2, lprec=32, bprec=32, seed=4, drawn=[0, 0])
