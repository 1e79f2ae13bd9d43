"""The fixed-point decoder's row computations resident on a torch device.

A coding step sends a batch of latent rows through the decoder: BB-IS(N) and BB-CIS(N) score
every particle row (log2 P(x|z): three GEMMs, two tanh layers and 784 pixel log-probabilities a
row), and the coders push or pop the images under each row's pixel frequencies. `--device cuda`
used to run only the GEMMs there, sending each layer's operands to the device and its product back,
and did the rest on the CPU. Here the whole row computation runs on the device in int64 and
float64 tensor operations, the weights and tables uploaded once: a step sends its rows' latents
(and images) and gets one integer a row (or the rows' frequencies) back.

The arithmetic is `mcbits.coding.exact`'s, operation for operation (table interpolation, shifts,
clamps; GEMM sums are exact integers below 2^53 in any order), so the numbers are the integers the
CPU's kernels give (tests/test_device_decoder.py runs this on torch's CPU device and compares).
"""

from __future__ import annotations

import numpy as np
import torch

from mcbits.coding import exact
from mcbits.coding.network import FixedPointVAE


def _lookup(x24: torch.Tensor, table: torch.Tensor, first: int, step_bits: int) -> torch.Tensor:
    # exact._lookup elementwise: linear interpolation at x24 2^-24, saturating at the table's ends
    shift = 24 - step_bits
    rel = x24 - (first << 24)
    idx = rel >> shift
    last = table.shape[0] - 1
    inside = idx.clamp(0, last - 1)
    lo = table[inside]
    value = lo + (((table[inside + 1] - lo) * (rel - (inside << shift))) >> shift)
    return torch.where(idx < 0, table[0], torch.where(idx >= last, table[last], value))


def _to_bits(value: torch.Tensor, from_bits: int, to_bits: int) -> torch.Tensor:
    # exact._to_bits: rescale a fixed-point integer, flooring
    if from_bits >= to_bits:
        return value >> (from_bits - to_bits)
    return value << (to_bits - from_bits)


def _log2_fixed(f: torch.Tensor, log2_table: torch.Tensor) -> torch.Tensor:
    # exact._log2_fixed for integers 1 <= f < 2^53: the bit length from frexp (exact for such f)
    n = torch.frexp(f.double()).exponent.long() - 1
    m24 = torch.where(n >= 24, f >> (n - 24).clamp(min=0), f << (24 - n).clamp(min=0)) - (1 << 24)
    return (n << 32) + _lookup(m24, log2_table, 0, 10)


class DeviceDecoder:
    """A FixedPointVAE's decoder rows on `device` (mcbits.coding.network.DeviceDecoder): the
    numbers `FixedPointVAE.log2prob_rows` and `ExactCodingModel.pixel_freq1` compute on the CPU."""

    def __init__(self, network: FixedPointVAE, device: str | torch.device):
        self.device = torch.device(device)
        self.layers = [
            (self._put(layer.weight_t), self._put(layer.bias.astype(np.int64)), int(layer.out_bits))
            for layer in (network.dec1, network.dec2, network.dec3)
        ]
        t = exact.tables()
        self.tanh, self.sigmoid, self.log2 = (self._put(t[name]) for name in ("tanh", "sigmoid", "log2"))
        self._log2_of_freq: dict[int, torch.Tensor] = {}

    def _put(self, values: np.ndarray) -> torch.Tensor:
        values = np.ascontiguousarray(values)
        # torch wants writable memory (the shipped tables are read-only): those are copied, once
        return torch.from_numpy(values if values.flags.writeable else values.copy()).to(self.device)

    def _freq1(self, z: np.ndarray, precision: int) -> torch.Tensor:
        # the frequency of a 1 (R, P) on 2^precision for latent rows z at 2^-LATENT_BITS
        h = self._put(np.asarray(z, dtype=np.float64))
        for weight, bias, frac_bits in self.layers[:2]:
            # exact._tanh_fixed: tanh of acc + bias at 2^-ACT_BITS, as the next GEMM's operand
            x24 = _to_bits((h @ weight).long() + bias, frac_bits, 24)
            v30 = _lookup(x24, self.tanh, -8, 10)
            h = ((v30 + (1 << 14)) >> 15).clamp(-32767, 32767).double()
        weight, bias, frac_bits = self.layers[2]
        x24 = _to_bits((h @ weight).long() + bias, frac_bits, 24)
        # exact._freq1_of: both outcomes at least 1
        freq1 = (_lookup(x24, self.sigmoid, -32, 8) + (1 << (39 - precision))) >> (40 - precision)
        return freq1.clamp(1, (1 << precision) - 1)

    def _pixel_log2(self, f: torch.Tensor, precision: int) -> torch.Tensor:
        # log2 of each frequency: read from the logarithms of every frequency where exact keeps
        # them (as the CPU's kernel does; the same numbers), else computed
        if precision not in self._log2_of_freq:
            self._log2_of_freq[precision] = self._put(exact.scoring_tables(precision)[2])
        every = self._log2_of_freq[precision]
        return every[f] if every.shape[0] > (1 << precision) - 1 else _log2_fixed(f, self.log2)

    def freq1(self, z: np.ndarray, precision: int) -> np.ndarray:
        """Frequencies of a 1, int64 (R, P), for latent rows z (R, D) at 2^-LATENT_BITS."""
        with torch.no_grad():
            return self._freq1(z, precision).cpu().numpy()

    def log2prob(self, z: np.ndarray, images: np.ndarray, repeat: int, precision: int) -> np.ndarray:
        """log2 P(images[r // repeat] | z[r]) at 2^-32, int64 (R,)."""
        with torch.no_grad():
            freq1 = self._freq1(z, precision)
            rows = torch.arange(freq1.shape[0], device=self.device) // int(repeat)
            bits = self._put(np.asarray(images, dtype=np.uint8))[rows].bool()
            log2 = self._pixel_log2(torch.where(bits, freq1, (1 << precision) - freq1), precision)
            return (log2.sum(dim=1) - ((precision * freq1.shape[1]) << 32)).cpu().numpy()
