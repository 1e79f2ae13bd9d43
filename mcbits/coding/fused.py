"""BB-ELBO's step as one compiled call (exact arithmetic, up to 16 lanes).

With one lane a BB-ELBO step is a few dozen microseconds of arithmetic (a 1-row decoder pass, 784
pixel frequencies, about 900 rANS symbols) and as many again of Python between the kernels that
do it. Here the kernels the step program runs (mcbits.coding.coders.BitsBackCoder.step_ops: pop z
under q(z|x), push x under p(x|z), push z under the whitened prior) are called one after the other
inside one numba function, on the same arrays, in the same order per lane: the message that comes
out is the one the step program makes (tests/test_fused.py checks it byte for byte). The step
program stays the definition of the coder; this is only a faster way to run it.

Decoding needs q(z|x) of the image it has just decoded, which the model computes (the network, or
iterative inference's refinement), so a decode step is two compiled calls around that one.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from mcbits.coding import gaussian
from mcbits.coding.exact import (
    _pixel_freq1,
    _tanh_layer,
    bucket_centres_fixed,
    bucket_edges_fixed,
    tables,
)
from mcbits.coding.gaussian import _pop_gaussian
from mcbits.coding.hashing import _top_bits_grid
from mcbits.coding.network import FixedPointVAE, _few_rows_product
from mcbits.coding.rans import Message, _pop_bernoulli, _pop_table, _push_bernoulli, _push_table

_U64 = np.uint64


@nb.njit(cache=True, nogil=True)
def _decoder_freq1(buckets, decoder, cond_prec):
    # ExactCodingModel.pixel_freq1 for a few rows: bucket centres -> two tanh layers -> logits ->
    # frequencies of a 1, through the same kernels
    centres, w1, b1, s1, w2, b2, s2, w3, b3, s3, tanh_table, sigmoid_table = decoder
    rows = buckets.shape[0]
    z = np.empty(buckets.shape, dtype=np.float64)
    for r in range(rows):
        for d in range(buckets.shape[1]):
            z[r, d] = centres[buckets[r, d]]
    acc1 = np.empty((rows, w1.shape[1]), dtype=np.float64)
    _few_rows_product(z, w1, acc1)
    h1 = np.empty_like(acc1)
    _tanh_layer(acc1, b1, s1, tanh_table, h1)
    acc2 = np.empty((rows, w2.shape[1]), dtype=np.float64)
    _few_rows_product(h1, w2, acc2)
    h2 = np.empty_like(acc2)
    _tanh_layer(acc2, b2, s2, tanh_table, h2)
    acc3 = np.empty((rows, w3.shape[1]), dtype=np.float64)
    _few_rows_product(h2, w3, acc3)
    freq1 = np.empty((rows, w3.shape[1]), dtype=np.int64)
    _pixel_freq1(acc3, b3, s3, cond_prec, sigmoid_table, freq1)
    return freq1


@nb.njit(cache=True, nogil=True)
def _prior_offsets(seed, ids, dim, log_num_bucket, whiten):
    out = np.zeros((ids.shape[0], dim), dtype=np.int64)
    if whiten:
        _top_bits_grid(seed, ids, dim, 64 - log_num_bucket, out)
    return out


@nb.njit(cache=True, nogil=True)
def _encode_step(state, mean16, log_std16, images, ids, settings, posterior, decoder, prior_cdf):
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    seed, log_num_bucket, whiten, prior_prec, prop_prec, cond_prec = settings
    edges16, phi_table, exp2_table, log2e30 = posterior
    # Pop("z", posterior)
    z = np.empty(mean16.shape, dtype=np.int64)
    _pop_gaussian(heads, tails, lens, drawn, seeds, lprec, bprec, mean16, log_std16, z, prop_prec,
                  edges16, phi_table, exp2_table, log2e30)
    # Push("x", pixels("z"))
    freq1 = _decoder_freq1(z, decoder, cond_prec)
    _push_bernoulli(heads, tails, lens, drawn, seeds, lprec, bprec, freq1, images, cond_prec)
    # Push("z", prior): (z + offset) mod K under the uniform prior
    mask = (np.int64(1) << log_num_bucket) - 1
    shifted = (z + _prior_offsets(seed, ids, z.shape[1], log_num_bucket, whiten)) & mask
    rows = np.zeros(z.shape[1], dtype=np.int64)
    _push_table(heads, tails, lens, drawn, seeds, lprec, bprec, prior_cdf, rows, shifted, prior_prec)


@nb.njit(cache=True, nogil=True)
def _decode_pixels(state, lanes, ids, dim, settings, decoder, prior_cdf):
    # the first two operations undone: pop z under the prior, then x under p(x|z)
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    seed, log_num_bucket, whiten, prior_prec, prop_prec, cond_prec = settings
    rows = np.zeros(dim, dtype=np.int64)
    shifted = np.empty((lanes, dim), dtype=np.int64)
    _pop_table(heads, tails, lens, drawn, seeds, lprec, bprec, prior_cdf, rows, shifted, prior_prec)
    mask = (np.int64(1) << log_num_bucket) - 1
    z = (shifted - _prior_offsets(seed, ids, dim, log_num_bucket, whiten)) & mask
    freq1 = _decoder_freq1(z, decoder, cond_prec)
    images = np.empty(freq1.shape, dtype=np.uint8)
    _pop_bernoulli(heads, tails, lens, drawn, seeds, lprec, bprec, freq1, images, cond_prec)
    return z, images


class CompiledELBOStep:
    """BB-ELBO's encode and decode steps over at most `max_lanes` lanes as compiled calls.

    `model` is an exact model (posterior_fixed) whose pixel frequencies are those of `network`'s
    decoder; `config` a validated CoderConfig of BB-ELBO.
    """

    # the decoder's products here are compiled (no BLAS inside numba): past FEW_ROWS rows they are
    # slower than BLAS's, but up to 16 lanes the step still beats the step program with its Python
    # (measured with 10 lanes a group: BB-ELBO with 20 lanes on 2 cores)
    max_lanes = 16

    def __init__(self, model: Any, network: FixedPointVAE, config: Any, prior_cdf: np.ndarray):
        self.model = model
        self.latent_dim = int(model.latent_dim)
        self.num_pixels = int(model.num_pixels)
        cfg = config
        self.settings = (_U64(cfg.seed & (2**64 - 1)), int(cfg.log_num_bucket), bool(cfg.whiten_prior),
                         int(cfg.prior_mprec), int(cfg.prop_mprec), int(cfg.cond_mprec))
        t = tables()
        self.posterior = (bucket_edges_fixed(cfg.log_num_bucket), t["phi"], t["exp2"], int(t["log2e"][0]))
        layers = (network.dec1, network.dec2, network.dec3)
        self.decoder = (bucket_centres_fixed(cfg.log_num_bucket),
                        *[value for layer in layers
                          for value in (layer.weight_t32, layer.bias, int(layer.out_bits))],
                        t["tanh"], t["sigmoid"])
        self.prior_cdf = np.ascontiguousarray(prior_cdf, dtype=np.int64)

    @property
    def precisions(self) -> tuple[int, int, int]:
        """(prior, posterior, pixel) precisions: entries of `settings`."""
        return self.settings[3:6]

    def encode(self, msg: Message, images: np.ndarray, ids: np.ndarray) -> None:
        mean16, log_std16 = self.model.posterior_fixed(images, ids)
        prior, prop, cond = self.precisions
        state = msg.block_state(len(ids), (0, prop), (self.num_pixels, cond), (self.latent_dim, prior))
        _encode_step(state, np.ascontiguousarray(mean16, dtype=np.int64),
                     np.ascontiguousarray(log_std16, dtype=np.int64), np.ascontiguousarray(images, np.uint8),
                     np.ascontiguousarray(ids, dtype=np.int64), self.settings, self.posterior,
                     self.decoder, self.prior_cdf)

    def decode(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        prior, prop, cond = self.precisions
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        state = msg.block_state(len(ids), (0, prior), (0, cond))
        z, images = _decode_pixels(state, len(ids), ids, self.latent_dim, self.settings, self.decoder,
                                   self.prior_cdf)
        mean16, log_std16 = self.model.posterior_fixed(images, ids)
        # the first operation undone: z pushed back under q(z|x)
        gaussian.push(msg, mean16, log_std16, z, self.settings[1], prop)
        return images
