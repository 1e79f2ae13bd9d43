"""A rANS message: a stack of symbols coded with quantized distributions, vectorized over lanes.

Each lane is an independent rANS stack: a head `x` kept in [2^lprec, 2^(lprec+bprec)) and a tail of
bprec-bit words. A push of symbol s with (start, freq) at precision m maps x to
floor(x / freq) * 2^m + start + x mod freq after moving whole words out of the head until the result
fits; a pop is its exact inverse. Lanes advance in lock step: one call pushes or pops a block of
symbols on each of the first b lanes, so a batch of images in b lanes costs one call.

Below every tail sits an endless virtual stack of pseudo-random words, derived from the message
seed and the lane. A pop that finds the tail empty takes the next virtual word (bits-back coding
needs bits to pop before it has pushed any) and counts it as drawn; a push onto an empty tail of the
word that was drawn last puts it back, so a decode that undoes an encode returns the message to its
initial state exactly: same heads, empty tails, nothing drawn.

The sequential state machine runs in numba-compiled loops; nothing here is per-symbol Python.
"""

from __future__ import annotations

import dataclasses
import math

import numba as nb
import numpy as np

from mcbits.coding.hashing import splitmix64_jit
from mcbits.errors import McbitsError

_U64 = np.uint64
SUPPORTED_BPREC = (8, 16, 32)

@nb.njit(cache=True, nogil=True)
def _mix_py(seed: np.uint64, counter: np.uint64) -> np.uint64:
    return splitmix64_jit(seed, counter)


@nb.njit(cache=True, nogil=True, inline="always")
def _virtual_word(lane_seed: np.uint64, index: np.int64, bprec: np.uint64) -> np.uint64:
    return splitmix64_jit(lane_seed, _U64(index)) >> (_U64(64) - bprec)


@nb.njit(cache=True, nogil=True, inline="always")
def _put_word(lane, word, tails, lens, drawn, seeds, bprec):
    n = lens[lane]
    if n == 0 and drawn[lane] > 0 and word == _virtual_word(seeds[lane], drawn[lane] - 1, bprec):
        drawn[lane] -= 1  # the word is the last one drawn: give it back to the virtual stack
    else:
        tails[lane, n] = np.uint32(word)
        lens[lane] = n + 1


@nb.njit(cache=True, nogil=True, inline="always")
def _take_word(lane, tails, lens, drawn, seeds, bprec):
    n = lens[lane]
    if n > 0:
        lens[lane] = n - 1
        return _U64(tails[lane, n - 1])
    word = _virtual_word(seeds[lane], drawn[lane], bprec)
    drawn[lane] += 1
    return word


# A push is "renormalize, then _encode"; a pop is "_decode, then refill". The two loops are written
# out in each kernel below rather than in a shared inlined helper: numba keeps the reference counts
# of the array arguments of an inlined function that contains a loop, and that made every symbol
# about four times slower (measured: 2,500 table pushes 140 us vs 30 us).

@nb.njit(cache=True, nogil=True, inline="always")
def _encode(x, start, freq, prec):
    # the push of (start, freq) onto a renormalized head: x -> floor(x / freq) 2^prec + start + x mod freq
    q = x // freq
    return (q << prec) + (x - q * freq) + start


@nb.njit(cache=True, nogil=True, inline="always")
def _decode(x, start, freq, cf, prec):
    # the inverse of _encode, before refilling: cf = x mod 2^prec lies in [start, start + freq)
    return freq * (x >> prec) + cf - start


@nb.njit(cache=True, nogil=True, inline="always")
def _check_freq(freq):
    if freq == 0:
        # a zero-width symbol cannot be coded; renormalizing for it would never end
        raise ValueError("push of a symbol with frequency 0")


@nb.njit(cache=True, nogil=True)
def _push_table(heads, tails, lens, drawn, seeds, lprec, bprec, cdf, rows, syms, prec):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    shift = lp - pr + bp  # x >> shift >= freq: the push would overflow the head
    word_mask = (_U64(1) << bp) - _U64(1)
    shared = cdf.shape[0] == 1
    for lane in range(syms.shape[0]):
        t = 0 if shared else lane
        x = heads[lane]
        for i in range(syms.shape[1] - 1, -1, -1):
            r = rows[i]
            s = syms[lane, i]
            start = _U64(cdf[t, r, s])
            freq = _U64(cdf[t, r, s + 1]) - start
            _check_freq(freq)
            # comparing x >> shift with freq avoids freq << shift, which can overflow 64 bits
            while (x >> shift) >= freq:
                _put_word(lane, x & word_mask, tails, lens, drawn, seeds, bp)
                x = x >> bp
            x = _encode(x, start, freq, pr)
        heads[lane] = x


GUIDE_USES = 4  # a pop builds guide tables when each CDF row serves this many symbols on average


@nb.njit(cache=True, nogil=True)
def _guide_tables(cdf, guide_bits, prec):
    # guide[t, r, g]: the symbol of row r of table t whose interval holds g 2^(prec - guide_bits)
    guide = np.empty((cdf.shape[0], cdf.shape[1], 1 << guide_bits), dtype=np.int32)
    shift = prec - guide_bits
    last = cdf.shape[2] - 1
    for t in range(cdf.shape[0]):
        for r in range(cdf.shape[1]):
            s = 0
            for g in range(1 << guide_bits):
                point = np.int64(g) << shift
                while s < last - 1 and cdf[t, r, s + 1] <= point:
                    s += 1
                guide[t, r, g] = s
    return guide


@nb.njit(cache=True, nogil=True)
def _pop_table(heads, tails, lens, drawn, seeds, lprec, bprec, cdf, rows, out, prec):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    lower = _U64(1) << lp
    mask = (_U64(1) << pr) - _U64(1)
    shared = cdf.shape[0] == 1
    last = cdf.shape[2] - 1
    # many pops per row (BB-IS's particles): start each search from a guide table, which lands on
    # the symbol or a few before it, instead of a binary search whose branches the data decide
    guided = out.shape[0] * out.shape[1] >= GUIDE_USES * cdf.shape[0] * cdf.shape[1]
    guide_bits = 0
    while (1 << guide_bits) < last and guide_bits < prec:
        guide_bits += 1
    guide = _guide_tables(cdf, guide_bits if guided else 0, prec)
    guide_shift = pr - _U64(guide_bits)
    for lane in range(out.shape[0]):
        t = 0 if shared else lane
        x = heads[lane]
        for i in range(out.shape[1]):
            r = rows[i]
            cf = x & mask
            # the symbol s with cdf[s] <= cf < cdf[s + 1] (unique: zero-width symbols hold no cf)
            if guided:
                lo = np.int64(guide[t, r, cf >> guide_shift])
                while lo < last - 1 and _U64(cdf[t, r, lo + 1]) <= cf:
                    lo += 1
            else:
                lo = 0
                hi = last
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if _U64(cdf[t, r, mid]) <= cf:
                        lo = mid
                    else:
                        hi = mid
            start = _U64(cdf[t, r, lo])
            freq = _U64(cdf[t, r, lo + 1]) - start
            x = _decode(x, start, freq, cf, pr)
            while x < lower:
                x = (x << bp) | _take_word(lane, tails, lens, drawn, seeds, bp)
            out[lane, i] = lo
        heads[lane] = x


@nb.njit(cache=True, nogil=True)
def _push_bernoulli(heads, tails, lens, drawn, seeds, lprec, bprec, freq1, bits, prec):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    shift = lp - pr + bp  # x >> shift >= freq: the push would overflow the head
    word_mask = (_U64(1) << bp) - _U64(1)
    total = _U64(1) << pr
    for lane in range(bits.shape[0]):
        x = heads[lane]
        for i in range(bits.shape[1] - 1, -1, -1):
            f1 = _U64(freq1[lane, i])
            if bits[lane, i]:
                start, freq = total - f1, f1
            else:
                start, freq = _U64(0), total - f1
            _check_freq(freq)
            # comparing x >> shift with freq avoids freq << shift, which can overflow 64 bits
            while (x >> shift) >= freq:
                _put_word(lane, x & word_mask, tails, lens, drawn, seeds, bp)
                x = x >> bp
            x = _encode(x, start, freq, pr)
        heads[lane] = x


@nb.njit(cache=True, nogil=True)
def _pop_bernoulli(heads, tails, lens, drawn, seeds, lprec, bprec, freq1, out, prec):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    lower = _U64(1) << lp
    total = _U64(1) << pr
    mask = total - _U64(1)
    for lane in range(out.shape[0]):
        x = heads[lane]
        for i in range(out.shape[1]):
            f1 = _U64(freq1[lane, i])
            cf = x & mask
            if cf >= total - f1:
                start, freq = total - f1, f1
                out[lane, i] = 1
            else:
                start, freq = _U64(0), total - f1
                out[lane, i] = 0
            x = _decode(x, start, freq, cf, pr)
            while x < lower:
                x = (x << bp) | _take_word(lane, tails, lens, drawn, seeds, bp)
        heads[lane] = x


@nb.njit(cache=True, nogil=True, inline="always")
def _uniform_start(value, width, prec):
    # value v of a uniform over `width` values takes [floor(v 2^prec / width), floor((v+1) 2^prec / width))
    return (value << prec) // width


@nb.njit(cache=True, nogil=True)
def _push_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, widths, values, prec):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    shift = lp - pr + bp  # x >> shift >= freq: the push would overflow the head
    word_mask = (_U64(1) << bp) - _U64(1)
    for lane in range(values.shape[0]):
        x = heads[lane]
        for i in range(values.shape[1] - 1, -1, -1):
            width = _U64(widths[lane, i])
            v = _U64(values[lane, i])
            start = _uniform_start(v, width, pr)
            freq = _uniform_start(v + _U64(1), width, pr) - start
            _check_freq(freq)
            # comparing x >> shift with freq avoids freq << shift, which can overflow 64 bits
            while (x >> shift) >= freq:
                _put_word(lane, x & word_mask, tails, lens, drawn, seeds, bp)
                x = x >> bp
            x = _encode(x, start, freq, pr)
        heads[lane] = x


@nb.njit(cache=True, nogil=True)
def _pop_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, widths, out, prec):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    lower = _U64(1) << lp
    mask = (_U64(1) << pr) - _U64(1)
    for lane in range(out.shape[0]):
        x = heads[lane]
        for i in range(out.shape[1]):
            width = _U64(widths[lane, i])
            cf = x & mask
            # the largest v with start(v) <= cf: v = floor(((cf + 1) * width - 1) / 2^pr)
            v = (((cf + _U64(1)) * width) - _U64(1)) >> pr
            start = _uniform_start(v, width, pr)
            freq = _uniform_start(v + _U64(1), width, pr) - start
            x = _decode(x, start, freq, cf, pr)
            while x < lower:
                x = (x << bp) | _take_word(lane, tails, lens, drawn, seeds, bp)
            out[lane, i] = v
        heads[lane] = x


def validate_precisions(lprec: int, bprec: int) -> None:
    """Raise McbitsError unless (lprec, bprec) can run: heads fit 64 bits, words are whole bytes."""
    if bprec not in SUPPORTED_BPREC:
        raise McbitsError(
            f"bprec={bprec} is not supported",
            where="parameter bprec",
            remedy=f"use one of {', '.join(map(str, SUPPORTED_BPREC))} (upstream default 32)",
        )
    if not 1 <= lprec or lprec + bprec > 64:
        raise McbitsError(
            f"lprec={lprec} with bprec={bprec} does not fit a 64-bit head "
            "(need 1 <= lprec, lprec + bprec <= 64)",
            where="parameter lprec",
            remedy="use lprec=32 with bprec=32 (upstream default), or lprec <= 64 - bprec",
        )


class LayoutError(ValueError):
    """Bytes that are not a message of the given lanes and precisions; str() says what is wrong."""


@dataclasses.dataclass(frozen=True)
class MessageLayout:
    """The byte layout of a serialized message (`Message.to_bytes`), known here alone.

    lanes heads of ceil((lprec + bprec) / 8) bytes (little-endian), then for lanes > 1 one uint32
    word count per lane (the lane table), then each lane's tail words of bprec bits, lane by lane.
    One lane has no table: its tail is the rest of the bytes.
    """

    lanes: int
    lprec: int
    bprec: int

    @property
    def head_bytes(self) -> int:
        return (self.lprec + self.bprec + 7) // 8

    @property
    def word_bytes(self) -> int:
        return self.bprec // 8

    @property
    def table_bytes(self) -> int:
        return 4 * self.lanes if self.lanes > 1 else 0

    @property
    def front_bytes(self) -> int:
        """Heads and lane table: every byte before the first tail word."""
        return self.lanes * self.head_bytes + self.table_bytes

    def num_bytes(self, words: int) -> int:
        """The size of a message holding `words` tail words in all."""
        return self.front_bytes + words * self.word_bytes

    def heads(self, data: bytes) -> list[int]:
        """Each lane's head, checked in [2^lprec, 2^(lprec + bprec)); data holds the front."""
        size = self.head_bytes
        heads = [int.from_bytes(data[i * size:(i + 1) * size], "little") for i in range(self.lanes)]
        low, high = 1 << self.lprec, 1 << (self.lprec + self.bprec)
        for lane, head in enumerate(heads):
            if not low <= head < high:
                raise LayoutError(f"lane {lane}'s head is outside [2^lprec, 2^(lprec + bprec))")
        return heads

    def lane_words(self, data: bytes) -> np.ndarray:
        """Each lane's tail length in words (int64), with the heads checked; LayoutError unless
        `data` is exactly such a message."""
        if len(data) < self.front_bytes:
            raise LayoutError(f"the message has {len(data)} bytes, fewer than the {self.front_bytes} "
                              f"its {self.lanes} lanes' heads need")
        self.heads(data)
        rest = len(data) - self.front_bytes
        if self.lanes > 1:
            words = np.frombuffer(data, dtype="<u4", count=self.lanes,
                                  offset=self.lanes * self.head_bytes).astype(np.int64)
        elif rest % self.word_bytes:
            raise LayoutError(f"the message's tail ({rest} bytes) is not whole {self.bprec}-bit words")
        else:
            words = np.array([rest // self.word_bytes], dtype=np.int64)
        if int(words.sum()) * self.word_bytes != rest:
            raise LayoutError(f"the message's lane table counts {int(words.sum()) * self.word_bytes} "
                              f"tail bytes, the message holds {rest}")
        return words

    def table_words(self, size: int, front: bytes) -> np.ndarray | None:
        """Each lane's tail words from a message's size and its first bytes (`front`, holding at
        least the heads and lane table), before the rest is read; None when they do not add up."""
        rest = size - self.front_bytes
        if rest < 0 or self.bprec not in SUPPORTED_BPREC or len(front) < self.front_bytes:
            return None
        if self.lanes == 1:
            return np.array([rest // self.word_bytes], np.int64) if rest % self.word_bytes == 0 else None
        counts = np.frombuffer(front, dtype="<u4", count=self.lanes,
                               offset=self.lanes * self.head_bytes).astype(np.int64)
        return counts if int(counts.sum()) * self.word_bytes == rest else None

    def longest_tail(self, size: int, front: bytes) -> int:
        """An upper bound on the longest lane's tail in words, for parameters not validated yet:
        the lane table's largest count when it adds up, else the whole tail."""
        words = self.table_words(size, front)
        if words is not None:
            return int(words.max())
        return max(0, size - self.front_bytes) // (self.word_bytes if self.bprec in SUPPORTED_BPREC else 1)


class Message:
    """A rANS message of `lanes` independent stacks (lanes=1 is one plain rANS stack).

    A message is a value: coding operations mutate it in place, `copy()` snapshots it, `==` compares
    heads, tails and draw counts, and `to_bytes`/`from_bytes` serialize it exactly.
    """

    def __init__(self, lanes: int = 1, lprec: int = 32, bprec: int = 32, seed: int = 0):
        validate_precisions(lprec, bprec)
        if lanes < 1:
            raise McbitsError(f"lanes={lanes} must be at least 1", where="parameter lanes")
        self.lanes = int(lanes)
        self.lprec = int(lprec)
        self.bprec = int(bprec)
        self.seed = int(seed) & (2**64 - 1)
        self.lane_seeds = np.array(
            [_mix_py(_U64(self.seed), _U64(lane)) for lane in range(self.lanes)], dtype=np.uint64
        )
        self.initial_heads = np.array(
            [self._initial_head(s) for s in self.lane_seeds], dtype=np.uint64
        )
        self.heads = self.initial_heads.copy()
        self.tails = np.zeros((self.lanes, 256), dtype=np.uint32)
        self.lens = np.zeros(self.lanes, dtype=np.int64)
        self.drawn = np.zeros(self.lanes, dtype=np.int64)

    def _initial_head(self, lane_seed: np.uint64) -> int:
        # A pseudo-random head (not 2^lprec) so that the first pop is not pinned to cf = 0.
        low = 1 << self.lprec
        span = (1 << (self.lprec + self.bprec)) - low
        return low + int(_mix_py(lane_seed, _U64(2**63))) % span

    # -- state -------------------------------------------------------------------------------
    def copy(self) -> Message:
        other = object.__new__(Message)
        other.__dict__.update(self.__dict__)
        for name in ("heads", "tails", "lens", "drawn", "lane_seeds", "initial_heads"):
            setattr(other, name, getattr(self, name).copy())
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        if (self.lanes, self.lprec, self.bprec, self.seed) != (
            other.lanes,
            other.lprec,
            other.bprec,
            other.seed,
        ):
            return False
        if not (np.array_equal(self.heads, other.heads) and np.array_equal(self.lens, other.lens)):
            return False
        if not np.array_equal(self.drawn, other.drawn):
            return False
        return all(
            np.array_equal(self.tails[i, : self.lens[i]], other.tails[i, : other.lens[i]])
            for i in range(self.lanes)
        )

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return (
            f"Message(lanes={self.lanes}, lprec={self.lprec}, bprec={self.bprec}, "
            f"words={int(self.lens.sum())}, drawn={int(self.drawn.sum())})"
        )

    @property
    def is_initial(self) -> bool:
        """True when every lane is back at its initial head with an empty tail and nothing drawn."""
        return bool(
            np.array_equal(self.heads, self.initial_heads)
            and not self.lens.any()
            and not self.drawn.any()
        )

    # -- bit accounting ----------------------------------------------------------------------
    @property
    def total_bits(self) -> int:
        """The real size of the serialized message in bits."""
        return 8 * self.num_bytes

    @property
    def num_bytes(self) -> int:
        return self.layout.num_bytes(int(self.lens.sum()))

    @property
    def layout(self) -> MessageLayout:
        return MessageLayout(self.lanes, self.lprec, self.bprec)

    @property
    def net_bits(self) -> float:
        """Bits the coded data added: the growth of heads and tails, minus every word drawn."""
        words = int(self.lens.sum()) - int(self.drawn.sum())
        head_growth = sum(
            math.log2(int(h)) - math.log2(int(h0))
            for h, h0 in zip(self.heads, self.initial_heads, strict=True)
        )
        return self.bprec * words + head_growth

    @property
    def initial_bits(self) -> float:
        """total_bits - net_bits: the initial state, the drawn words, the head's unused bits."""
        return self.total_bits - self.net_bits

    # -- serialization -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        layout = self.layout
        word_dtype = np.dtype(f"<u{layout.word_bytes}")
        parts = [int(h).to_bytes(layout.head_bytes, "little") for h in self.heads]
        if layout.table_bytes:
            parts.append(self.lens.astype("<u4").tobytes())
        for lane in range(self.lanes):
            parts.append(self.tails[lane, : self.lens[lane]].astype(word_dtype).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        lanes: int,
        lprec: int,
        bprec: int,
        seed: int,
        drawn: list[int] | np.ndarray,
    ) -> Message:
        """Rebuild a message from `to_bytes` output and the parameters stored beside it."""
        msg = cls(lanes=lanes, lprec=lprec, bprec=bprec, seed=seed)
        layout = msg.layout
        try:
            lens = layout.lane_words(data)
            heads = layout.heads(data)
        except LayoutError as err:
            raise McbitsError(f"the message is damaged: {err}",
                              remedy="the file is damaged or was written with other lanes or "
                              "lprec/bprec; encode the images again") from None
        msg.heads = np.array(heads, dtype=np.uint64)
        msg._reserve(int(lens.max()) + 1)
        pos = layout.front_bytes
        for lane in range(lanes):
            n = int(lens[lane])
            words = np.frombuffer(data, dtype=f"<u{layout.word_bytes}", count=n, offset=pos)
            msg.tails[lane, :n] = words
            pos += n * layout.word_bytes
        msg.lens = lens.copy()
        drawn = np.asarray(drawn, dtype=np.int64)
        if drawn.shape != (lanes,) or (drawn < 0).any():
            raise McbitsError("drawn-word counts do not match the lanes", remedy="encode the images again")
        msg.drawn = drawn.copy()
        return msg

    # -- lane groups ---------------------------------------------------------------------------
    def take_lanes(self, start: int, stop: int) -> Message:
        """A message of lanes start..stop-1 alone (copies): lanes are independent stacks, so coding
        it and `put_lanes` back gives the same state as coding those lanes in this message."""
        other = object.__new__(Message)
        other.__dict__.update(self.__dict__)
        other.lanes = stop - start
        for name in ("heads", "lens", "drawn", "lane_seeds", "initial_heads"):
            setattr(other, name, getattr(self, name)[start:stop].copy())
        other.tails = self.tails[start:stop].copy()
        return other

    def put_lanes(self, start: int, part: Message) -> None:
        """Write a `take_lanes` message back into lanes start..start+part.lanes-1."""
        stop = start + part.lanes
        self.heads[start:stop] = part.heads
        self.lens[start:stop] = part.lens
        self.drawn[start:stop] = part.drawn
        if part.tails.shape[1] > self.tails.shape[1]:
            grown = np.zeros((self.lanes, part.tails.shape[1]), dtype=np.uint32)
            grown[:, : self.tails.shape[1]] = self.tails
            self.tails = grown
        self.tails[start:stop] = 0
        self.tails[start:stop, : part.tails.shape[1]] = part.tails

    # -- coding operations -------------------------------------------------------------------
    def _reserve(self, extra_words: int) -> None:
        needed = int(self.lens.max()) + extra_words
        if needed > self.tails.shape[1]:
            grown = np.zeros((self.lanes, max(needed, 2 * self.tails.shape[1])), dtype=np.uint32)
            grown[:, : self.tails.shape[1]] = self.tails
            self.tails = grown

    def _check(self, lanes_used: int, prec: int) -> None:
        if not 1 <= lanes_used <= self.lanes:
            raise ValueError(f"a block for {lanes_used} lanes on a message of {self.lanes}")
        if not 1 <= prec <= self.lprec:
            raise McbitsError(
                f"distribution precision {prec} is outside 1..lprec={self.lprec}",
                where="coder precisions",
                remedy="keep every *_mprec at most lprec",
            )

    def _state(self):
        return self.heads, self.tails, self.lens, self.drawn, self.lane_seeds, self.lprec, self.bprec

    def block_state(self, lanes: int, *blocks: tuple[int, int]) -> tuple:
        """What every push and pop kernel starts with (here and in mcbits.coding.gaussian, .fused):
        check blocks of symbols on lanes 0..lanes-1, each (symbols pushed a lane, precision; 0 for
        a pop), make room for all their pushes, and return the state the kernels work on in place
        (heads, tails, lens, drawn, lane seeds, lprec, bprec)."""
        words = 0
        for pushes, prec in blocks:
            self._check(lanes, prec)
            words += pushes * -(-prec // self.bprec)
        if words:
            self._reserve(words)
        return self._state()

    def push_table(self, cdf: np.ndarray, rows: np.ndarray, symbols: np.ndarray, prec: int) -> None:
        """Push symbols[l, i] with the distribution of row rows[i] of lane l's CDF table.

        cdf: int64 (lanes or 1, R, K + 1), each row increasing from 0 to 2^prec with no empty
        symbol; rows: (n,); symbols: (b, n) for lanes 0..b-1. Popping the same block returns the
        symbols in the same order.
        """
        symbols = np.ascontiguousarray(symbols, dtype=np.int64)
        _push_table(*self.block_state(symbols.shape[0], (symbols.shape[1], prec)),
                    np.ascontiguousarray(cdf, dtype=np.int64),
                    np.ascontiguousarray(rows, dtype=np.int64), symbols, prec)

    def pop_table(self, cdf: np.ndarray, rows: np.ndarray, lanes: int, prec: int) -> np.ndarray:
        """Pop a block pushed by push_table; returns int64 (lanes, n)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        state = self.block_state(lanes, (0, prec))
        out = np.empty((lanes, rows.shape[0]), dtype=np.int64)
        _pop_table(*state, np.ascontiguousarray(cdf, dtype=np.int64), rows, out, prec)
        return out

    def push_bernoulli(self, freq1: np.ndarray, bits: np.ndarray, prec: int) -> None:
        """Push 0/1 symbols bits[l, i]; outcome 1 has frequency freq1[l, i] out of 2^prec."""
        bits = np.ascontiguousarray(bits, dtype=np.uint8)
        _push_bernoulli(*self.block_state(bits.shape[0], (bits.shape[1], prec)),
                        np.ascontiguousarray(freq1, dtype=np.int64), bits, prec)

    def pop_bernoulli(self, freq1: np.ndarray, prec: int) -> np.ndarray:
        """Pop a block pushed by push_bernoulli; returns uint8 (lanes, n)."""
        freq1 = np.ascontiguousarray(freq1, dtype=np.int64)
        state = self.block_state(freq1.shape[0], (0, prec))
        out = np.empty(freq1.shape, dtype=np.uint8)
        _pop_bernoulli(*state, freq1, out, prec)
        return out

    def _check_widths(self, widths: np.ndarray, prec: int) -> None:
        # every value needs a nonzero frequency (width <= 2^prec), and width * 2^prec must fit 64 bits
        if widths.size and (widths.min() < 1 or int(widths.max()) > min(1 << prec, (1 << (64 - prec)) - 1)):
            raise McbitsError(
                f"a uniform over widths {int(widths.min())}..{int(widths.max())} cannot be coded at "
                f"precision {prec}",
                where="coder precisions",
                remedy="keep widths in 1..2^prec with prec + log2(width) < 64 (for BB-CIS: prop_mprec <= 31)",
            )

    def push_uniform(self, widths: np.ndarray, values: np.ndarray, prec: int) -> None:
        """Push values[l, i] uniform over range(widths[l, i]), quantized at 2^prec.

        Needs 1 <= width <= 2^prec and width * 2^prec < 2^64.
        """
        values = np.ascontiguousarray(values, dtype=np.int64)
        widths = np.ascontiguousarray(widths, dtype=np.int64)
        state = self.block_state(values.shape[0], (values.shape[1], prec))
        self._check_widths(widths, prec)
        _push_uniform(*state, widths, values, prec)

    def pop_uniform(self, widths: np.ndarray, prec: int) -> np.ndarray:
        """Pop a block pushed by push_uniform; returns int64 (lanes, n)."""
        widths = np.ascontiguousarray(widths, dtype=np.int64)
        state = self.block_state(widths.shape[0], (0, prec))
        self._check_widths(widths, prec)
        out = np.empty(widths.shape, dtype=np.int64)
        _pop_uniform(*state, widths, out, prec)
        return out
