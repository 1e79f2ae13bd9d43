"""The pieces a coder's step is built from: codecs (a push and its pop) and the operations that
apply them to the variables of one step.

A coder writes its step once, in encoding order, as a list of operations on named variables
("x" the images, "z" latents, "j" a particle index, ...). Decoding runs the same list backwards
with each operation inverted, so the decoder's order is derived, never written by hand:

- Push(var, codec): encoding pushes var; decoding pops it.
- Pop(var, codec): encoding pops var from the message (bits back); decoding pushes it back.
- Transform(forward, backward): a deterministic rewrite of variables (e.g. split N particles into
  the chosen one and the others); encoding runs forward, decoding backward.

A codec's distribution may depend on other variables of the step (p(x|z) on z, q(z|x) on x), so
an operation holds a function that builds the codec from the step when the operation runs: by
then, in either direction, the variables it reads are known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from mcbits.coding import gaussian
from mcbits.coding.rans import Message


@dataclasses.dataclass(frozen=True)
class Codec:
    """push(msg, symbols) and its inverse pop(msg) -> symbols, for the step's lanes."""

    push: Callable[[Message, np.ndarray], None]
    pop: Callable[[Message], np.ndarray]


class Step:
    """The variables of one coding step over some lanes. Values named in `derive` are computed
    from the others on first use (e.g. q(z|x) once x is known) and kept for the step.

    row_threads: threads that may share the rows of the step's network calls (the bits never
    depend on it; see mcbits.coding.parallel).
    """

    def __init__(self, ids: np.ndarray, derive: Mapping[str, Callable[[Step], Any]], *,
                 row_threads: int = 1, **values: Any):
        self.ids = ids
        self.lanes = len(ids)
        self.row_threads = row_threads
        self._derive = derive
        self._values: dict[str, Any] = dict(values)

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            self._values[name] = self._derive[name](self)
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)


CodecOf = Callable[[Step], Codec]


class Op(Protocol):
    """One operation of a step: `encode` runs it, `decode` undoes it."""

    pops: int  # symbols per image this operation pops from the message while encoding

    def encode(self, msg: Message, step: Step) -> None: ...

    def decode(self, msg: Message, step: Step) -> None: ...


@dataclasses.dataclass(frozen=True)
class Push:
    """Encoding pushes `var` with the codec; decoding pops it."""

    var: str
    codec: CodecOf
    pops: ClassVar[int] = 0

    def encode(self, msg: Message, step: Step) -> None:
        self.codec(step).push(msg, step[self.var])

    def decode(self, msg: Message, step: Step) -> None:
        step[self.var] = self.codec(step).pop(msg)


@dataclasses.dataclass(frozen=True)
class Pop:
    """Encoding pops `var` with the codec (`pops` symbols an image: bits back); decoding pushes it."""

    var: str
    codec: CodecOf
    pops: int

    def encode(self, msg: Message, step: Step) -> None:
        step[self.var] = self.codec(step).pop(msg)

    def decode(self, msg: Message, step: Step) -> None:
        self.codec(step).push(msg, step[self.var])


@dataclasses.dataclass(frozen=True)
class Transform:
    """A deterministic rewrite of the step's variables: forward when encoding, backward when decoding."""

    forward: Callable[[Step], None]
    backward: Callable[[Step], None]
    pops: ClassVar[int] = 0

    def encode(self, msg: Message, step: Step) -> None:
        self.forward(step)

    def decode(self, msg: Message, step: Step) -> None:
        self.backward(step)


def encode_ops(ops: Sequence[Op], msg: Message, step: Step) -> None:
    for op in ops:
        op.encode(msg, step)


def decode_ops(ops: Sequence[Op], msg: Message, step: Step) -> None:
    # rANS is a stack: the last thing encoded is the first decoded
    for op in reversed(ops):
        op.decode(msg, step)


def pops_per_image(ops: Sequence[Op]) -> int:
    """The symbols an image's encoding step pops (the bound behind limits.max_drawn_words)."""
    return sum(op.pops for op in ops)



# -- codecs of the distributions the coders use ------------------------------------------------

def table(cdf: np.ndarray, rows: np.ndarray, precision: int, lanes: int) -> Codec:
    """Symbols (lanes, len(rows)), symbol i coded with row rows[i] of each lane's CDF table."""
    return Codec(push=lambda msg, symbols: msg.push_table(cdf, rows, symbols, precision),
                 pop=lambda msg: msg.pop_table(cdf, rows, lanes, precision))


def gaussian_posterior(mean16: np.ndarray, log_std16: np.ndarray, log_num_bucket: int,
                       precision: int) -> Codec:
    """Latent buckets (lanes, D) under exact discretized Gaussians (mean, log std at 2^-16, (lanes,
    D)): the bits of `table` with their posterior tables, each CDF value computed only where needed."""
    return Codec(
        push=lambda msg, buckets: gaussian.push(msg, mean16, log_std16, buckets, log_num_bucket, precision),
        pop=lambda msg: gaussian.pop(msg, mean16, log_std16, log_num_bucket, precision),
    )


def reshaped(codec: Codec, shape: tuple[int, ...]) -> Codec:
    """The codec of symbols shaped `shape` (e.g. (b, N, D)) that `codec` codes flattened to (b, -1)."""
    return Codec(push=lambda msg, symbols: codec.push(msg, symbols.reshape(shape[0], -1)),
                 pop=lambda msg: codec.pop(msg).reshape(shape))


def categorical(cdf: np.ndarray, precision: int, lanes: int) -> Codec:
    """One symbol (lanes,) per lane from categorical tables (lanes, 1, N + 1)."""
    inner = table(cdf, np.zeros(1, np.int64), precision, lanes)
    return Codec(push=lambda msg, symbols: inner.push(msg, symbols[:, None]),
                 pop=lambda msg: inner.pop(msg)[:, 0])


def bernoulli(freq1: np.ndarray, precision: int) -> Codec:
    """0/1 symbols (lanes, P); a 1 has frequency freq1 (lanes, P) out of 2^precision."""
    return Codec(push=lambda msg, bits: msg.push_bernoulli(freq1, bits, precision),
                 pop=lambda msg: msg.pop_bernoulli(freq1, precision))


def uniform(widths: np.ndarray, precision: int) -> Codec:
    """Symbols (lanes, n), each uniform over range(widths[l, i]), quantized at 2^precision."""
    return Codec(push=lambda msg, values: msg.push_uniform(widths, values, precision),
                 pop=lambda msg: msg.pop_uniform(widths, precision))


def uniform_index(num: int, precision: int, lanes: int) -> Codec:
    """One symbol (lanes,) per lane, uniform over range(num)."""
    inner = uniform(np.full((lanes, 1), num, dtype=np.int64), precision)
    return Codec(push=lambda msg, j: inner.push(msg, j.reshape(-1, 1)),
                 pop=lambda msg: inner.pop(msg)[:, 0])


def shifted(codec: Codec, offsets: np.ndarray, modulus: int) -> Codec:
    """Codes (s + offsets) mod modulus with `codec` (modulus a power of two): a bijection."""
    mask = modulus - 1
    return Codec(push=lambda msg, symbols: codec.push(msg, (symbols + offsets) & mask),
                 pop=lambda msg: (codec.pop(msg) - offsets) & mask)
