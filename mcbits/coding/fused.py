"""BB-ELBO's, BB-IS's and BB-CIS's steps as a few compiled calls (exact arithmetic, up to 16 lanes).

With one lane a BB-ELBO step is a few dozen microseconds of arithmetic (a 1-row decoder pass, 784
pixel frequencies, about 900 rANS symbols) and as many again of Python between the kernels that
do it. Here the kernels the step program runs (mcbits.coding.coders.BitsBackCoder.step_ops: pop z
under q(z|x), push x under p(x|z), push z under the whitened prior) are called one after the other
inside one numba function, on the same arrays, in the same order per lane: the message that comes
out is the one the step program makes (tests/test_fused.py checks it byte for byte). The step
program stays the definition of the coder; this is only a faster way to run it.

Decoding needs q(z|x) of the image it has just decoded, which the model computes (the network, or
iterative inference's refinement), so a decode step is two compiled calls around that one.

BB-IS(N) (mcbits.coding.coders.ISBitsBackCoder.step_ops) is run the same way around the two things
the model computes: q(z|x)'s tables and the particles' pixel scores (the step's N decoder rows, a
BLAS call on all cores), each by the very call the step program makes. What lies between them (the
importance weights and their categorical, the particle index, splitting off z_j, the pushes of the
others, of j, x and z_j) is one compiled call instead of a dozen small ones. BB-CIS(N)
(CISBitsBackCoder.step_ops) likewise: its base uniform and coupled particles, then after the scores
the index, u_j's offset in z_j's bucket, j, x and z_j.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from mcbits.coding import gaussian
from mcbits.coding.distributions import _table_lookup
from mcbits.coding.exact import (
    _categorical,
    _pixel_freq1,
    _small_log2,
    _table_log2prob,
    _tanh_layer,
    bucket_centres_fixed,
    bucket_edges_fixed,
    tables,
)
from mcbits.coding.gaussian import _pop_gaussian
from mcbits.coding.hashing import _top_bits_grid
from mcbits.coding.network import FixedPointVAE, _few_rows_product
from mcbits.coding.rans import (
    Message,
    _pop_bernoulli,
    _pop_table,
    _pop_uniform,
    _push_bernoulli,
    _push_table,
    _push_uniform,
)
from mcbits.coding.shifts import cis_offset_precision, cis_shift_units

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
def _push_prior(state, z, ids, settings, prior_cdf):
    # Push("z", prior): (z + offset) mod K under the uniform prior
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    seed, log_num_bucket, whiten, prior_prec, prop_prec, cond_prec = settings
    mask = (np.int64(1) << log_num_bucket) - 1
    shifted = (z + _prior_offsets(seed, ids, z.shape[1], log_num_bucket, whiten)) & mask
    rows = np.zeros(z.shape[1], dtype=np.int64)
    _push_table(heads, tails, lens, drawn, seeds, lprec, bprec, prior_cdf, rows, shifted, prior_prec)


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
    _push_prior(state, z, ids, settings, prior_cdf)


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


@nb.njit(cache=True, nogil=True)
def _index_table(q, particles, log_px, prop_prec, mprec, weights):
    # _ImportanceCoder.index_table: log2 w_k = log2 P(x|z_k) - log2 Q(z_k|x) (the uniform prior
    # cancels), quantized to each lane's categorical over its N particles: (b, 1, N + 1)
    log2_table, log2_small, exp2_table = weights
    lanes, num = particles.shape[0], particles.shape[1]
    log_q = np.empty((lanes, num), dtype=np.int64)
    _table_log2prob(q, particles, prop_prec, log2_table, log2_small, log_q)
    log2w = log_px.reshape(lanes, num) - log_q
    table = np.empty((lanes, 1, num + 1), dtype=np.int64)
    _categorical(log2w, mprec, exp2_table, table)
    return table


@nb.njit(cache=True, nogil=True)
def _pop_index(state, q, particles, log_px, prop_prec, mprec, weights):
    # Pop("j", index_by_weight): the particle index (b, 1) under the categorical of the weights
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    table = _index_table(q, particles, log_px, prop_prec, mprec, weights)
    j = np.empty((particles.shape[0], 1), dtype=np.int64)
    _pop_table(heads, tails, lens, drawn, seeds, lprec, bprec, table, np.zeros(1, dtype=np.int64), j,
               mprec)
    return j


@nb.njit(cache=True, nogil=True)
def _push_index(state, q, particles, log_px, j, prop_prec, mprec, weights):
    # Pop("j", index_by_weight) undone
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    table = _index_table(q, particles, log_px, prop_prec, mprec, weights)
    _push_table(heads, tails, lens, drawn, seeds, lprec, bprec, table, np.zeros(1, dtype=np.int64), j,
                mprec)


@nb.njit(cache=True, nogil=True)
def _push_tail(state, j, num, z_j, images, ids, settings, mprec, decoder, prior_cdf):
    # _ImportanceCoder.tail_ops: Push("j", index_uniform), Push("x", pixels("z_j")), Push("z_j", prior)
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    cond_prec = settings[5]
    _push_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, np.full((j.shape[0], 1), num), j, mprec)
    freq1 = _decoder_freq1(z_j, decoder, cond_prec)
    _push_bernoulli(heads, tails, lens, drawn, seeds, lprec, bprec, freq1, images, cond_prec)
    _push_prior(state, z_j, ids, settings, prior_cdf)


@nb.njit(cache=True, nogil=True)
def _pop_tail(state, lanes, ids, dim, num, settings, mprec, decoder, prior_cdf):
    # _push_tail undone (BB-IS's and BB-CIS's decoding): z_j under the prior, x under p(x|z_j), j uniform
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    z_j, images = _decode_pixels(state, lanes, ids, dim, settings, decoder, prior_cdf)
    j = np.empty((lanes, 1), dtype=np.int64)
    _pop_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, np.full((lanes, 1), num), j, mprec)
    return z_j, images, j


@nb.njit(cache=True, nogil=True)
def _is_encode_rest(state, q, particles, log_px, images, ids, settings, mprec, weights, decoder,
                    prior_cdf, others_rows):
    # BB-IS's encoding step after its particles were popped and scored
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    prop_prec = settings[4]
    lanes, num, dim = particles.shape
    j = _pop_index(state, q, particles, log_px, prop_prec, mprec, weights)
    # Transform(_split): z_j, and the others in particle order
    z_j = np.empty((lanes, dim), dtype=np.int64)
    others = np.empty((lanes, (num - 1) * dim), dtype=np.int64)
    for lane in range(lanes):
        kept = 0
        for k in range(num):
            if k == j[lane, 0]:
                z_j[lane] = particles[lane, k]
            else:
                others[lane, kept * dim:(kept + 1) * dim] = particles[lane, k]
                kept += 1
    # Push("others", other_particles)
    if num > 1:
        _push_table(heads, tails, lens, drawn, seeds, lprec, bprec, q, others_rows, others, prop_prec)
    _push_tail(state, j, num, z_j, images, ids, settings, mprec, decoder, prior_cdf)


@nb.njit(cache=True, nogil=True)
def _is_decode_particles(state, q, z_j, j, num, prop_prec, others_rows):
    # Push("others") undone, then Transform(_join): the N particles (b, N, D)
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    lanes, dim = z_j.shape
    others = np.empty((lanes, (num - 1) * dim), dtype=np.int64)
    if num > 1:
        _pop_table(heads, tails, lens, drawn, seeds, lprec, bprec, q, others_rows, others, prop_prec)
    particles = np.empty((lanes, num, dim), dtype=np.int64)
    for lane in range(lanes):
        kept = 0
        for k in range(num):
            if k == j[lane, 0]:
                particles[lane, k] = z_j[lane]
            else:
                particles[lane, k] = others[lane, kept * dim:(kept + 1) * dim]
                kept += 1
    return particles


@nb.njit(cache=True, nogil=True)
def _is_decode_rest(state, q, particles, log_px, j, prop_prec, mprec, weights, particle_rows):
    # Pop("j", index_by_weight) and Pop("particles", all_particles) undone: both pushed back
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    lanes, num, dim = particles.shape
    _push_index(state, q, particles, log_px, j, prop_prec, mprec, weights)
    _push_table(heads, tails, lens, drawn, seeds, lprec, bprec, q, particle_rows,
                particles.reshape(lanes, num * dim), prop_prec)


@nb.njit(cache=True, nogil=True)
def _coupled_particles(q, base, shifts, prop_prec):
    # CISBitsBackCoder.particles_from_base: u_k = (base + shift_k) mod 2^prop_prec, and the bucket
    # of each latent's q(z|x) that holds it: (particles, u), both (b, N, D)
    lanes, dim = base.shape
    num = shifts.shape[0]
    mask = (np.int64(1) << prop_prec) - 1
    u = np.empty((lanes, num, dim), dtype=np.int64)
    for lane in range(lanes):
        for k in range(num):
            for d in range(dim):
                u[lane, k, d] = (base[lane, d] + shifts[k, d]) & mask
    particles = np.empty((lanes, num, dim), dtype=np.int64)
    _table_lookup(q, u, particles)
    return particles, u


@nb.njit(cache=True, nogil=True)
def _cis_encode_particles(state, q, lanes, shifts, prop_prec):
    # Pop("base", base_uniform): u (b, D) over 2^prop_prec units; then the coupled particles
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    widths = np.full((lanes, shifts.shape[1]), np.int64(1) << prop_prec)
    base = np.empty((lanes, shifts.shape[1]), dtype=np.int64)
    _pop_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, widths, base, prop_prec)
    return _coupled_particles(q, base, shifts, prop_prec)


@nb.njit(cache=True, nogil=True)
def _bucket_ranges(q, z_j):
    # CISBitsBackCoder._bucket_range: where z_j's bucket starts in q(z|x)'s table, and its width
    lanes, dim = z_j.shape
    low = np.empty((lanes, dim), dtype=np.int64)
    width = np.empty((lanes, dim), dtype=np.int64)
    for lane in range(lanes):
        for d in range(dim):
            low[lane, d] = q[lane, d, z_j[lane, d]]
            width[lane, d] = q[lane, d, z_j[lane, d] + 1] - low[lane, d]
    return low, width


@nb.njit(cache=True, nogil=True)
def _cis_encode_rest(state, q, particles, u, log_px, images, ids, settings, mprec, weights, decoder,
                     prior_cdf, offset_prec):
    # BB-CIS's encoding step after its particles were scored
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    lanes, num, dim = particles.shape
    j = _pop_index(state, q, particles, log_px, settings[4], mprec, weights)
    # Transform(_choose): z_j, and u_j's offset inside z_j's bucket
    z_j = np.empty((lanes, dim), dtype=np.int64)
    for lane in range(lanes):
        z_j[lane] = particles[lane, j[lane, 0]]
    low, width = _bucket_ranges(q, z_j)
    offset = np.empty((lanes, dim), dtype=np.int64)
    for lane in range(lanes):
        for d in range(dim):
            offset[lane, d] = u[lane, j[lane, 0], d] - low[lane, d]
    # Push("offset", offset_in_bucket); widths are a valid table's (1 <= width <= 2^prop_prec), which
    # cis_offset_precision keeps codable
    _push_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, width, offset, offset_prec)
    _push_tail(state, j, num, z_j, images, ids, settings, mprec, decoder, prior_cdf)


@nb.njit(cache=True, nogil=True)
def _cis_decode_particles(state, q, z_j, j, shifts, prop_prec, offset_prec):
    # Push("offset") undone, then Transform(_rebase): the base uniform and the coupled particles
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    lanes, dim = z_j.shape
    low, width = _bucket_ranges(q, z_j)
    offset = np.empty((lanes, dim), dtype=np.int64)
    _pop_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, width, offset, offset_prec)
    mask = (np.int64(1) << prop_prec) - 1
    base = np.empty((lanes, dim), dtype=np.int64)
    for lane in range(lanes):
        for d in range(dim):
            base[lane, d] = (low[lane, d] + offset[lane, d] - shifts[j[lane, 0], d]) & mask
    particles, _ = _coupled_particles(q, base, shifts, prop_prec)
    return particles, base


@nb.njit(cache=True, nogil=True)
def _cis_decode_rest(state, q, particles, log_px, j, base, prop_prec, mprec, weights):
    # Pop("j", index_by_weight) and Pop("base", base_uniform) undone: both pushed back
    heads, tails, lens, drawn, seeds, lprec, bprec = state
    _push_index(state, q, particles, log_px, j, prop_prec, mprec, weights)
    widths = np.full(base.shape, np.int64(1) << prop_prec)
    _push_uniform(heads, tails, lens, drawn, seeds, lprec, bprec, widths, base, prop_prec)


class CompiledStep:
    """What a compiled step runs with: the coder's settings, the decoder for a few rows, the prior.

    `model` is an exact model whose pixel frequencies are those of `network`'s decoder; `config` a
    validated CoderConfig of the coder.
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
        self.log_num_bucket = int(cfg.log_num_bucket)
        self.settings = (_U64(cfg.seed & (2**64 - 1)), int(cfg.log_num_bucket), bool(cfg.whiten_prior),
                         int(cfg.prior_mprec), int(cfg.prop_mprec), int(cfg.cond_mprec))
        t = tables()
        self.decoder = (bucket_centres_fixed(cfg.log_num_bucket), *network.decoder_arguments(few_rows=True),
                        t["sigmoid"])
        self.prior_cdf = np.ascontiguousarray(prior_cdf, dtype=np.int64)

    @property
    def precisions(self) -> tuple[int, int, int]:
        """(prior, posterior, pixel) precisions: entries of `settings`."""
        return self.settings[3:6]

    def encode(self, msg: Message, images: np.ndarray, ids: np.ndarray, row_threads: int = 1) -> None:
        """The step program's encoding step of `images` (lanes 0..len(ids)-1)."""
        raise NotImplementedError

    def decode(self, msg: Message, ids: np.ndarray, row_threads: int = 1) -> np.ndarray:
        """The step program's decoding step: the images (len(ids), P) uint8."""
        raise NotImplementedError


class CompiledELBOStep(CompiledStep):
    """BB-ELBO's encode and decode steps over at most `max_lanes` lanes as compiled calls."""

    def __init__(self, model: Any, network: FixedPointVAE, config: Any, prior_cdf: np.ndarray):
        super().__init__(model, network, config, prior_cdf)
        t = tables()
        self.posterior = (bucket_edges_fixed(config.log_num_bucket), t["phi"], t["exp2"],
                          int(t["log2e"][0]))

    def encode(self, msg: Message, images: np.ndarray, ids: np.ndarray, row_threads: int = 1) -> None:
        mean16, log_std16 = self.model.posterior_fixed(images, ids)
        prior, prop, cond = self.precisions
        state = msg.block_state(len(ids), (0, prop), (self.num_pixels, cond), (self.latent_dim, prior))
        _encode_step(state, np.ascontiguousarray(mean16, dtype=np.int64),
                     np.ascontiguousarray(log_std16, dtype=np.int64), np.ascontiguousarray(images, np.uint8),
                     np.ascontiguousarray(ids, dtype=np.int64), self.settings, self.posterior,
                     self.decoder, self.prior_cdf)

    def decode(self, msg: Message, ids: np.ndarray, row_threads: int = 1) -> np.ndarray:
        prior, prop, cond = self.precisions
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        state = msg.block_state(len(ids), (0, prior), (0, cond))
        z, images = _decode_pixels(state, len(ids), ids, self.latent_dim, self.settings, self.decoder,
                                   self.prior_cdf)
        mean16, log_std16 = self.model.posterior_fixed(images, ids)
        # the first operation undone: z pushed back under q(z|x)
        gaussian.push(msg, mean16, log_std16, z, self.settings[1], prop)
        return images


class CompiledImportanceStep(CompiledStep):
    """What BB-IS's and BB-CIS's compiled steps share (as _ImportanceCoder does for their step
    programs): the particle count, the index's precision and weights tables, the model's calls for
    q(z|x) and the particles' scores, and the decoding of the common tail."""

    def __init__(self, model: Any, network: FixedPointVAE, config: Any, prior_cdf: np.ndarray):
        super().__init__(model, network, config, prior_cdf)
        self.num_particles = int(config.num_particles)
        self.mprec = int(config.mprec)
        # (a validated config keeps N <= 2^mprec and mprec within the exact categorical's limit)
        t = tables()
        self.weights = (t["log2"], _small_log2(int(config.prop_mprec)), t["exp2"])

    def _posterior_table(self, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
        # q(z|x)'s tables: the step program's call (Coder.posterior_table)
        table = self.model.posterior_table(images, ids, self.log_num_bucket, self.precisions[1])
        return np.ascontiguousarray(table, dtype=np.int64)

    def _scores(self, particles: np.ndarray, images: np.ndarray, row_threads: int) -> np.ndarray:
        # log2 P(x|z_k) of every lane's particles: the step program's call (log2_weights)
        lanes, num, dim = particles.shape
        prior, prop, cond = self.precisions
        scores = self.model.pixel_log2prob(particles.reshape(lanes * num, dim), images, num,
                                           self.log_num_bucket, cond, threads=row_threads)
        return np.ascontiguousarray(scores, dtype=np.int64)

    def _decode_tail(self, msg: Message, ids: np.ndarray) -> tuple[np.ndarray, ...]:
        # the kernel _pop_tail (z_j under the prior, x under p(x|z_j), j uniform), then q(z|x)'s
        # tables of the decoded images: (z_j, images, j, q)
        prior, prop, cond = self.precisions
        state = msg.block_state(len(ids), (0, prior), (0, cond), (0, self.mprec))
        z_j, images, j = _pop_tail(state, len(ids), ids, self.latent_dim, self.num_particles,
                                   self.settings, self.mprec, self.decoder, self.prior_cdf)
        return z_j, images, j, self._posterior_table(images, ids)


class CompiledISStep(CompiledImportanceStep):
    """BB-IS(N)'s encode and decode steps over at most `max_lanes` lanes: compiled calls around the
    model's q(z|x) tables and particle scores, which are the step program's own calls."""

    def __init__(self, model: Any, network: FixedPointVAE, config: Any, prior_cdf: np.ndarray):
        super().__init__(model, network, config, prior_cdf)
        # each particle symbol's row of q(z|x)'s table (latent i mod D), as the step program's codecs
        # (ISBitsBackCoder.block_rows); the others' rows are their first (N - 1) D
        self.particle_rows = np.tile(np.arange(self.latent_dim, dtype=np.int64), self.num_particles)
        self.others_rows = self.particle_rows[:(self.num_particles - 1) * self.latent_dim]

    def encode(self, msg: Message, images: np.ndarray, ids: np.ndarray, row_threads: int = 1) -> None:
        lanes, num, dim = len(ids), self.num_particles, self.latent_dim
        prior, prop, cond = self.precisions
        images = np.ascontiguousarray(images, dtype=np.uint8)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        q = self._posterior_table(images, ids)
        # Pop("particles", all_particles)
        particles = msg.pop_table(q, self.particle_rows, lanes, prop).reshape(lanes, num, dim)
        log_px = self._scores(particles, images, row_threads)
        state = msg.block_state(lanes, (0, self.mprec), ((num - 1) * dim, prop), (1, self.mprec),
                                (self.num_pixels, cond), (dim, prior))
        _is_encode_rest(state, q, particles, log_px, images, ids, self.settings, self.mprec, self.weights,
                        self.decoder, self.prior_cdf, self.others_rows)

    def decode(self, msg: Message, ids: np.ndarray, row_threads: int = 1) -> np.ndarray:
        lanes, num, dim = len(ids), self.num_particles, self.latent_dim
        prior, prop, cond = self.precisions
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        z_j, images, j, q = self._decode_tail(msg, ids)
        particles = _is_decode_particles(msg.block_state(lanes, (0, prop)), q, z_j, j, num, prop,
                                         self.others_rows)
        log_px = self._scores(particles, images, row_threads)
        state = msg.block_state(lanes, (1, self.mprec), (num * dim, prop))
        _is_decode_rest(state, q, particles, log_px, j, prop, self.mprec, self.weights, self.particle_rows)
        return images


class CompiledCISStep(CompiledImportanceStep):
    """BB-CIS(N)'s encode and decode steps over at most `max_lanes` lanes: compiled calls around the
    model's q(z|x) tables and particle scores (the step program's own calls, as BB-IS's)."""

    def __init__(self, model: Any, network: FixedPointVAE, config: Any, prior_cdf: np.ndarray):
        super().__init__(model, network, config, prior_cdf)
        prop = int(config.prop_mprec)
        self.shifts = cis_shift_units(self.num_particles, self.latent_dim, config.seed, prop)
        self.offset_prec = cis_offset_precision(int(config.lprec), prop)

    def encode(self, msg: Message, images: np.ndarray, ids: np.ndarray, row_threads: int = 1) -> None:
        lanes, dim = len(ids), self.latent_dim
        prior, prop, cond = self.precisions
        images = np.ascontiguousarray(images, dtype=np.uint8)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        q = self._posterior_table(images, ids)
        particles, u = _cis_encode_particles(msg.block_state(lanes, (0, prop)), q, lanes, self.shifts, prop)
        log_px = self._scores(particles, images, row_threads)
        state = msg.block_state(lanes, (0, self.mprec), (dim, self.offset_prec), (1, self.mprec),
                                (self.num_pixels, cond), (dim, prior))
        _cis_encode_rest(state, q, particles, u, log_px, images, ids, self.settings, self.mprec, self.weights,
                         self.decoder, self.prior_cdf, self.offset_prec)

    def decode(self, msg: Message, ids: np.ndarray, row_threads: int = 1) -> np.ndarray:
        lanes, dim = len(ids), self.latent_dim
        prior, prop, cond = self.precisions
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        z_j, images, j, q = self._decode_tail(msg, ids)
        particles, base = _cis_decode_particles(msg.block_state(lanes, (0, self.offset_prec)), q, z_j, j,
                                                self.shifts, prop, self.offset_prec)
        log_px = self._scores(particles, images, row_threads)
        state = msg.block_state(lanes, (1, self.mprec), (dim, prop))
        _cis_decode_rest(state, q, particles, log_px, j, base, prop, self.mprec, self.weights)
        return images
