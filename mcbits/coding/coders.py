"""The four McBits coders: Stochastic, BB-ELBO, BB-IS(N) and BB-CIS(N).

Each coder codes a sequence of images into one `Message` and decodes it back exactly. Images are
dealt to lanes: image i goes to lane i % lanes at step i // lanes, and a step codes its images on
all its lanes in lock step, so the network sees one batch per step, composed identically when
encoding and decoding (the determinism rule; the network half is in mcbits.vae.adapter). With
lanes=1 a coder is a single rANS stack, as upstream's.

The coders see the model only through `CodingModel`: posterior parameters for images, and pixel
probabilities for latent bucket indices.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from mcbits.coding import distributions as dist
from mcbits.coding import exact
from mcbits.coding.config import CoderConfig
from mcbits.coding.hashing import splitmix64
from mcbits.coding.rans import Message
from mcbits.coding.shifts import cis_shift_units
from mcbits.errors import McbitsError


class DecodeFailure(McbitsError):
    """A message that cannot be decoded: damaged, other parameters, or other arithmetic."""


class CodingModel(Protocol):
    """What a coder needs of a latent-variable model in float arithmetic (`arithmetic = "float"`).

    In exact arithmetic a model instead returns integer tables (see `ExactModel`).
    """

    latent_dim: int
    num_pixels: int

    def posterior(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (B, latent_dim) float64 of q(z|x) for 0/1 images (B, num_pixels).

        image_ids are the images' positions in the coded sequence (for seeded per-image work).
        """
        ...

    def pixel_probs(self, buckets: np.ndarray, log_num_bucket: int) -> np.ndarray:
        """Bernoulli probabilities (B, num_pixels) of p(x|z) for bucket indices (B, latent_dim)."""
        ...


class ExactModel(Protocol):
    """What a coder needs of a model in exact arithmetic (`arithmetic = "exact"`): integer tables
    computed without float rounding (mcbits.coding.network.ExactCodingModel is one)."""

    arithmetic: str  # "exact"
    latent_dim: int
    num_pixels: int

    def posterior_table(
        self, images: np.ndarray, image_ids: np.ndarray, log_num_bucket: int, precision: int
    ) -> np.ndarray:
        """CDF tables int64 (B, latent_dim, 2^log_num_bucket + 1) of q(z|x) at `precision`."""
        ...

    def pixel_freq1(self, buckets: np.ndarray, log_num_bucket: int, precision: int) -> np.ndarray:
        """Frequencies int64 (B, num_pixels) of a 1 under p(x|z) for buckets (B, latent_dim)."""
        ...

    def pixel_log2prob(
        self, buckets: np.ndarray, images: np.ndarray, repeat: int, log_num_bucket: int, precision: int
    ) -> np.ndarray:
        """log2 P(images[r // repeat] | buckets[r]) at 2^-32 from those frequencies: int64 (R,)."""
        ...


ProgressFn = Callable[[int, Message], None]


class Coder:
    """Base class: deals images to lanes and runs encode/decode steps in the right order."""

    name: ClassVar[str] = ""

    def __init__(self, model: CodingModel, config: CoderConfig):
        self.model = model
        self.config = config.validated()
        if self.config.coder != self.name:
            raise McbitsError(f"{type(self).__name__} built with a {self.config.coder} config")
        cfg = self.config
        model_arithmetic = getattr(model, "arithmetic", "float")
        if model_arithmetic != cfg.arithmetic:
            raise McbitsError(
                f"the coder is configured for {cfg.arithmetic} arithmetic but the model computes in "
                f"{model_arithmetic} arithmetic", where="parameter arithmetic",
                remedy="build the model for the config's arithmetic (mcbits.vae.adapter.coding_model)",
            )
        self.exact = cfg.arithmetic == "exact"
        self.latent_dim = int(model.latent_dim)
        self.num_pixels = int(model.num_pixels)
        self.num_buckets = 1 << cfg.log_num_bucket
        self.prior_cdf = dist.uniform_prior_table(cfg.log_num_bucket, cfg.prior_mprec)
        self.latent_rows = np.arange(self.latent_dim, dtype=np.int64)
        self.prior_rows = np.zeros(self.latent_dim, dtype=np.int64)  # one shared row

    # -- sequence level ----------------------------------------------------------------------
    def new_message(self) -> Message:
        cfg = self.config
        return Message(lanes=cfg.lanes, lprec=cfg.lprec, bprec=cfg.bprec, seed=cfg.seed)

    def encode(
        self, images: np.ndarray, message: Message | None = None, progress: ProgressFn | None = None,
        threads: int | None = None,
    ) -> Message:
        """Code 0/1 images (n, num_pixels) into `message` (a new one by default) and return it.

        threads: lane groups coded in parallel (default: one per core in exact arithmetic, one in
        float arithmetic, whose bits depend on batch composition). The bits never depend on it.
        """
        images = self._check_images(images)
        msg = self.new_message() if message is None else message
        n = images.shape[0]

        def run(part: Message, lanes: range) -> None:
            for step in range(self._num_steps(n)):
                ids = self._group_ids(step, lanes, n)
                if not len(ids):
                    break
                self.encode_step(part, images[ids], ids)
                if progress is not None:
                    progress(len(ids), part)

        # a model that can compute every image's posterior in advance, identically (exact iterative
        # inference), does so in large batches: the encoder knows all its images
        prepared = getattr(self.model, "prepared_posteriors", None)
        with prepared(images) if prepared is not None and self.exact else contextlib.nullcontext():
            self._in_lane_groups(msg, run, threads)
        return msg

    def decode(
        self, message: Message, num_images: int, progress: ProgressFn | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """Decode `num_images` images from `message` (consumed in place): uint8 (n, num_pixels)."""
        out = np.empty((num_images, self.num_pixels), dtype=np.uint8)

        def run(part: Message, lanes: range) -> None:
            for step in reversed(range(self._num_steps(num_images))):
                ids = self._group_ids(step, lanes, num_images)
                if not len(ids):
                    continue
                out[ids] = self.decode_step(part, ids)
                if progress is not None:
                    progress(len(ids), part)

        try:
            self._in_lane_groups(message, run, threads)
        except (McbitsError, ValueError) as err:
            # a symbol outside its distribution (zero width, bad uniform): only a damaged message, other
            # parameters or a decoder whose arithmetic differs from the encoder's get here
            raise DecodeFailure(
                f"the message cannot be decoded with this model and these parameters ({err}): it is "
                "damaged, was encoded with other parameters or model, or (float arithmetic only) "
                "the decoder's arithmetic differs from the encoder's",
                where="decode",
                remedy="check the file and the checkpoint; re-encode the images if the file is damaged",
            ) from err
        return out

    # -- lanes, steps and lane groups --------------------------------------------------------
    def _num_steps(self, num_images: int) -> int:
        return -(-num_images // self.config.lanes)

    def _group_ids(self, step: int, lanes: range, num_images: int) -> np.ndarray:
        """The images of `step` on `lanes` (image i is on lane i % L at step i // L)."""
        first = step * self.config.lanes
        return np.arange(first + lanes.start, min(first + lanes.stop, num_images))

    def lane_groups(self, threads: int | None = None) -> list[range]:
        """Contiguous lane ranges coded in parallel threads."""
        lanes = self.config.lanes
        if threads is None:
            threads = (os.cpu_count() or 1) if self.exact else 1
        if not self.exact or not getattr(self.model, "portable", True):
            # float results (the float path, iterative inference's refinement) depend on batch
            # composition: one batch per step, as the decoder will use
            threads = 1
        threads = max(1, min(int(threads), lanes))
        bounds = [lanes * g // threads for g in range(threads + 1)]
        return [range(bounds[g], bounds[g + 1]) for g in range(threads)]

    def _in_lane_groups(self, msg: Message, run: Callable[[Message, range], None],
                        threads: int | None) -> None:
        groups = self.lane_groups(threads)
        if len(groups) == 1:
            run(msg, groups[0])
            return
        parts = [msg.take_lanes(g.start, g.stop) for g in groups]
        # one BLAS thread per coding thread: the threads already fill the cores
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(len(groups)) as pool:
            futures = [pool.submit(run, part, g) for part, g in zip(parts, groups, strict=True)]
            for future in futures:
                future.result()
        for part, g in zip(parts, groups, strict=True):
            msg.put_lanes(g.start, part)

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 2 or images.shape[1] != self.num_pixels:
            raise McbitsError(
                f"images have shape {images.shape}, the model codes (n, {self.num_pixels})",
                remedy="pass 0/1 images shaped (n, 784) or (n, 28, 28)",
            )
        if images.size and (images.min() < 0 or images.max() > 1):
            raise McbitsError(
                "images must be binary (0/1 pixels)",
                remedy="binarize them first (the prepare stage stores 0/1 test sets)",
            )
        return np.ascontiguousarray(images, dtype=np.uint8)

    # -- shared pieces -----------------------------------------------------------------------
    def posterior_table(self, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
        cfg = self.config
        if self.exact:
            return self.model.posterior_table(images, ids, cfg.log_num_bucket, cfg.prop_mprec)
        mean, std = self.model.posterior(images, ids)
        return dist.gaussian_cdf_table(mean, std, cfg.log_num_bucket, cfg.prop_mprec)

    def pixel_freq1(self, buckets: np.ndarray) -> np.ndarray:
        cfg = self.config
        if self.exact:
            return self.model.pixel_freq1(buckets, cfg.log_num_bucket, cfg.cond_mprec)
        probs = self.model.pixel_probs(buckets, cfg.log_num_bucket)
        return dist.bernoulli_freq1(probs, cfg.cond_mprec)

    def prior_offsets(self, ids: np.ndarray) -> np.ndarray:
        """Seeded offsets (b, D) in [0, K) for the images `ids`, rebuilt by the decoder.

        The next image's posterior pops the bits that this image's latents were pushed with. When
        the model's aggregate posterior is far from the prior those bits are far from uniform, and
        bits-back pays for it ("dirty bits": +5% on the published N=1 MNIST model). Coding
        (z + offset) mod K instead costs the same under the uniform prior and leaves uniform bits.
        """
        ids = np.asarray(ids, dtype=np.uint64)[:, None]
        dims = np.arange(self.latent_dim, dtype=np.uint64)[None, :]
        with np.errstate(over="ignore"):
            h = splitmix64(np.uint64(self.config.seed), ids * np.uint64(self.latent_dim) + dims)
        return (h >> np.uint64(64 - self.config.log_num_bucket)).astype(np.int64)

    def push_prior(self, msg: Message, buckets: np.ndarray, ids: np.ndarray) -> None:
        if self.config.whiten_prior:
            buckets = (buckets + self.prior_offsets(ids)) & (self.num_buckets - 1)
        msg.push_table(self.prior_cdf, self.prior_rows, buckets, self.config.prior_mprec)

    def pop_prior(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        buckets = msg.pop_table(self.prior_cdf, self.prior_rows, len(ids), self.config.prior_mprec)
        if self.config.whiten_prior:
            buckets = (buckets - self.prior_offsets(ids)) & (self.num_buckets - 1)
        return buckets

    def encode_step(self, msg: Message, images: np.ndarray, ids: np.ndarray) -> None:
        raise NotImplementedError

    def decode_step(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class StochasticCoder(Coder):
    """z ~ q(z|x) from a seeded generator (no bits back); push x with p(x|z), z with p(z)."""

    name = "StochasticCoder"

    def _sample(self, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
        top = 1 << self.config.prop_mprec
        u = np.stack([
            np.random.Generator(np.random.PCG64([self.config.seed, int(i)])).integers(
                0, top, size=self.latent_dim
            )
            for i in ids
        ])
        return dist.table_lookup(table, u[:, None, :])[:, 0, :]

    def encode_step(self, msg: Message, images: np.ndarray, ids: np.ndarray) -> None:
        z = self._sample(self.posterior_table(images, ids), ids)
        msg.push_bernoulli(self.pixel_freq1(z), images, self.config.cond_mprec)
        self.push_prior(msg, z, ids)

    def decode_step(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        z = self.pop_prior(msg, ids)
        return msg.pop_bernoulli(self.pixel_freq1(z), self.config.cond_mprec)


class BitsBackCoder(Coder):
    """BB-ELBO: pop z with q(z|x); push x with p(x|z); push z with p(z)."""

    name = "BitsBackCoder"

    def encode_step(self, msg: Message, images: np.ndarray, ids: np.ndarray) -> None:
        cfg = self.config
        q = self.posterior_table(images, ids)
        z = msg.pop_table(q, self.latent_rows, len(ids), cfg.prop_mprec)
        msg.push_bernoulli(self.pixel_freq1(z), images, cfg.cond_mprec)
        self.push_prior(msg, z, ids)

    def decode_step(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        cfg = self.config
        z = self.pop_prior(msg, ids)
        images = msg.pop_bernoulli(self.pixel_freq1(z), cfg.cond_mprec)
        q = self.posterior_table(images, ids)
        msg.push_table(q, self.latent_rows, z, cfg.prop_mprec)
        return images


class _ImportanceCoder(Coder):
    """Shared by BB-IS and BB-CIS: quantized importance weights and the particle index codecs."""

    def __init__(self, model: CodingModel, config: CoderConfig):
        super().__init__(model, config)
        n = self.config.num_particles
        self.index_widths_1 = np.full((1, 1), n, dtype=np.int64)
        self.block_rows = np.tile(self.latent_rows, n)
        self.others_rows = np.tile(self.latent_rows, n - 1)

    def log2_weights(self, images: np.ndarray, q: np.ndarray, particles: np.ndarray) -> np.ndarray:
        """log2 w_k = log2 P(x|z_k) + log2 P(z_k) - log2 Q(z_k|x), all quantized: (b, N).

        The N particles of all lanes go through the network in one call of b*N rows, built the
        same way on both sides, so the weights are bit-identical at encode and decode time.
        """
        cfg = self.config
        b, n, d = particles.shape
        # the prior is uniform over buckets: the same for every particle, so it cancels
        if self.exact:  # integers at 2^-32
            log_px = self.model.pixel_log2prob(particles.reshape(b * n, d), images, n,
                                               cfg.log_num_bucket, cfg.cond_mprec)
            return log_px.reshape(b, n) - exact.table_log2prob(q, particles, cfg.prop_mprec)
        freq1 = self.pixel_freq1(particles.reshape(b * n, d))
        log_px = dist.bernoulli_log2prob(freq1, np.repeat(images, n, axis=0), cfg.cond_mprec)
        log_q = dist.table_log2prob(q, particles, cfg.prop_mprec)
        return log_px.reshape(b, n) - log_q

    def index_table(self, images: np.ndarray, q: np.ndarray, particles: np.ndarray) -> np.ndarray:
        log2_weights = self.log2_weights(images, q, particles)
        if self.exact:
            return exact.categorical_table(log2_weights, self.config.mprec)
        return dist.categorical_table(log2_weights * math.log(2), self.config.mprec)

    def push_index(self, msg: Message, j: np.ndarray) -> None:
        widths = np.broadcast_to(self.index_widths_1, (len(j), 1))
        msg.push_uniform(widths, j.reshape(-1, 1), self.config.mprec)

    def pop_index(self, msg: Message, lanes: int) -> np.ndarray:
        widths = np.broadcast_to(self.index_widths_1, (lanes, 1))
        return msg.pop_uniform(widths, self.config.mprec)[:, 0]

    def encode_tail(
        self, msg: Message, images: np.ndarray, ids: np.ndarray, z_j: np.ndarray, j: np.ndarray
    ) -> None:
        """The common end of an encode step: j uniform, x with p(x|z_j), z_j with p(z)."""
        self.push_index(msg, j)
        # p(x|z_j) in a call of its own (b rows), the same call the decoder makes
        msg.push_bernoulli(self.pixel_freq1(z_j), images, self.config.cond_mprec)
        self.push_prior(msg, z_j, ids)

    def decode_head(self, msg: Message, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lanes = len(ids)
        z_j = self.pop_prior(msg, ids)
        images = msg.pop_bernoulli(self.pixel_freq1(z_j), self.config.cond_mprec)
        j = self.pop_index(msg, lanes)
        return images, z_j, j


class ISBitsBackCoder(_ImportanceCoder):
    """BB-IS(N): pop N particles with q, pop j with Cat(w), push back the others, then code
    j, x and z_j; the net rate approaches -IWAE_N."""

    name = "ISBitsBackCoder"

    def encode_step(self, msg: Message, images: np.ndarray, ids: np.ndarray) -> None:
        cfg = self.config
        b, n, d = len(ids), cfg.num_particles, self.latent_dim
        q = self.posterior_table(images, ids)
        particles = msg.pop_table(q, self.block_rows, b, cfg.prop_mprec).reshape(b, n, d)
        j = msg.pop_table(self.index_table(images, q, particles), np.zeros(1, np.int64), b,
                          cfg.mprec)[:, 0]
        keep = np.ones((b, n), dtype=bool)
        keep[np.arange(b), j] = False
        others = particles[keep].reshape(b, (n - 1) * d)
        if n > 1:
            msg.push_table(q, self.others_rows, others, cfg.prop_mprec)
        self.encode_tail(msg, images, ids, particles[np.arange(b), j], j)

    def decode_step(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        cfg = self.config
        b, n, d = len(ids), cfg.num_particles, self.latent_dim
        images, z_j, j = self.decode_head(msg, ids)
        q = self.posterior_table(images, ids)
        particles = np.empty((b, n, d), dtype=np.int64)
        if n > 1:
            others = msg.pop_table(q, self.others_rows, b, cfg.prop_mprec)
            keep = np.ones((b, n), dtype=bool)
            keep[np.arange(b), j] = False
            particles[keep] = others.reshape(b * (n - 1), d)
        particles[np.arange(b), j] = z_j
        msg.push_table(self.index_table(images, q, particles), np.zeros(1, np.int64), j[:, None],
                       cfg.mprec)
        msg.push_table(q, self.block_rows, particles.reshape(b, n * d), cfg.prop_mprec)
        return images


class CISBitsBackCoder(_ImportanceCoder):
    """BB-CIS(N): one base uniform u is popped; particle k uses (u + shift_k) mod 2^prop_mprec,
    so giving back u_j's offset inside z_j's range returns almost all of u's bits."""

    name = "CISBitsBackCoder"

    def __init__(self, model: CodingModel, config: CoderConfig):
        super().__init__(model, config)
        cfg = self.config
        self.shifts = cis_shift_units(cfg.num_particles, self.latent_dim, cfg.seed, cfg.prop_mprec)
        self.base_widths = np.full((cfg.lanes, self.latent_dim), 1 << cfg.prop_mprec, np.int64)
        # the offset inside a bucket is uniform over its width (not a power of two): quantize it
        # finely; the cost is a relative error below 2^-(offset_prec - prop_mprec) per latent
        self.offset_prec = min(cfg.lprec, 63 - cfg.prop_mprec)

    def particles_from_base(self, q: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = (1 << self.config.prop_mprec) - 1
        u = (base[:, None, :] + self.shifts[None, :, :]) & mask
        return dist.table_lookup(q, u), u

    def encode_step(self, msg: Message, images: np.ndarray, ids: np.ndarray) -> None:
        cfg = self.config
        b = len(ids)
        q = self.posterior_table(images, ids)
        base = msg.pop_uniform(self.base_widths[:b], cfg.prop_mprec)
        particles, u = self.particles_from_base(q, base)
        j = msg.pop_table(self.index_table(images, q, particles), np.zeros(1, np.int64), b,
                          cfg.mprec)[:, 0]
        lanes = np.arange(b)
        z_j, u_j = particles[lanes, j], u[lanes, j]
        low, width = self._bucket_range(q, z_j)
        msg.push_uniform(width, u_j - low, self.offset_prec)
        self.encode_tail(msg, images, ids, z_j, j)

    def decode_step(self, msg: Message, ids: np.ndarray) -> np.ndarray:
        cfg = self.config
        b = len(ids)
        images, z_j, j = self.decode_head(msg, ids)
        q = self.posterior_table(images, ids)
        low, width = self._bucket_range(q, z_j)
        u_j = low + msg.pop_uniform(width, self.offset_prec)
        base = (u_j - self.shifts[j]) & ((1 << cfg.prop_mprec) - 1)
        particles, _ = self.particles_from_base(q, base)
        msg.push_table(self.index_table(images, q, particles), np.zeros(1, np.int64), j[:, None],
                       cfg.mprec)
        msg.push_uniform(self.base_widths[:b], base, cfg.prop_mprec)
        return images

    def _bucket_range(self, q: np.ndarray, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low = np.take_along_axis(q, buckets[:, :, None], axis=2)[:, :, 0]
        high = np.take_along_axis(q, buckets[:, :, None] + 1, axis=2)[:, :, 0]
        return low, high - low


CODERS: dict[str, type[Coder]] = {
    cls.name: cls for cls in (StochasticCoder, BitsBackCoder, ISBitsBackCoder, CISBitsBackCoder)
}


def make_coder(model: CodingModel, config: CoderConfig) -> Coder:
    """Build the coder `config.coder` names (any accepted spelling) over `model`."""
    config = config.validated()
    return CODERS[config.coder](model, config)
