"""The four McBits coders: Stochastic, BB-ELBO, BB-IS(N) and BB-CIS(N).

Each coder codes a sequence of images into one `Message` and decodes it back exactly. Images are
dealt to lanes: image i goes to lane i % lanes at step i // lanes, and a step codes its images on
all its lanes in lock step, so the network sees one batch per step, composed identically when
encoding and decoding (the determinism rule; the network half is in mcbits.vae.adapter). With
lanes=1 a coder is a single rANS stack, as upstream's.

The coders see the model only through `ExactModel` (integer tables); a float model
(`CodingModel`) is seen through that interface by mcbits.coding.arithmetic.FloatTables. Each
coder's step is a list of operations on its variables (mcbits.coding.codecs), written once in
encoding order; decoding runs it backwards.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from mcbits.coding import arithmetic, codecs, fused
from mcbits.coding import distributions as dist
from mcbits.coding.codecs import Codec, Op, Pop, Push, Step, Transform
from mcbits.coding.hashing import top_bits_grid
from mcbits.coding.parallel import default_threads
from mcbits.coding.rans import Message
from mcbits.coding.shifts import cis_offset_precision, cis_shift_units
from mcbits.errors import McbitsError

if TYPE_CHECKING:  # config imports the coder table, which imports this module
    from mcbits.coding.config import CoderConfig


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

    def posterior_fixed(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, log std) int64 (B, latent_dim) of q(z|x) at 2^-16 (what its tables are built from)."""
        ...

    def posterior_table(
        self, images: np.ndarray, image_ids: np.ndarray, log_num_bucket: int, precision: int
    ) -> np.ndarray:
        """CDF tables int64 (B, latent_dim, 2^log_num_bucket + 1) of q(z|x) at `precision`."""
        ...

    def pixel_freq1(self, buckets: np.ndarray, log_num_bucket: int, precision: int) -> np.ndarray:
        """Frequencies int64 (B, num_pixels) of a 1 under p(x|z) for buckets (B, latent_dim)."""
        ...

    def pixel_log2prob(
        self, buckets: np.ndarray, images: np.ndarray, repeat: int, log_num_bucket: int, precision: int,
        threads: int = 1,
    ) -> np.ndarray:
        """log2 P(images[r // repeat] | buckets[r]) at 2^-32 from those frequencies: int64 (R,).

        threads: threads that may share the rows (the numbers never depend on it).
        """
        ...


ProgressFn = Callable[[int, Message], None]


class Coder:
    """Base class: deals images to lanes and runs each step's operations (`step_ops`, written in
    encoding order) forwards to encode and backwards to decode."""

    def __init__(self, model: CodingModel | ExactModel, config: CoderConfig):
        self.model = model
        self.config = config.validated()
        if self.config.coder != type(self).__name__:
            raise McbitsError(f"{type(self).__name__} built with a {self.config.coder} config")
        cfg = self.config
        model_arithmetic = getattr(model, "arithmetic", "float")
        if model_arithmetic != cfg.arithmetic:
            raise McbitsError(
                f"the coder is configured for {cfg.arithmetic} arithmetic but the model computes in "
                f"{model_arithmetic} arithmetic", where="parameter arithmetic",
                remedy="build the model for the config's arithmetic (mcbits.vae.adapter.coding_model)",
            )
        self.arithmetic = arithmetic.BY_NAME[cfg.arithmetic]
        # the model through the exact interface: integer tables, or a float model's quantized outputs
        self.tables = self.arithmetic.tables(model)
        self.latent_dim = int(model.latent_dim)
        self.num_pixels = int(model.num_pixels)
        self.num_buckets = 1 << cfg.log_num_bucket
        self.prior_cdf = dist.uniform_prior_table(cfg.log_num_bucket, cfg.prior_mprec)
        self.latent_rows = np.arange(self.latent_dim, dtype=np.int64)
        self.prior_rows = np.zeros(self.latent_dim, dtype=np.int64)  # one shared row

    # -- the step: written once, in encoding order --------------------------------------------
    def step_ops(self) -> list[Op]:
        """The operations of one step in encoding order (decoding runs them backwards)."""
        raise NotImplementedError

    def derived(self) -> dict[str, Callable[[Step], Any]]:
        """Values of a step computed from its variables on first use: q(z|x) from the images."""
        return {"q": lambda s: self.posterior_table(s["x"], s.ids)}

    @functools.cached_property
    def ops(self) -> list[Op]:
        # built on first use: a subclass's __init__ sets what its operations read
        return self.step_ops()

    # a faster way to run the step program over a few lanes (mcbits.coding.fused), where the model
    # is exact with a fixed-point decoder; tests compare its bytes with the program's
    compiled_step_class: type[fused.CompiledStep] | None = None

    @functools.cached_property
    def compiled_step(self) -> fused.CompiledStep | None:
        network = getattr(self.tables, "pixel_network", None) if self.config.arithmetic == "exact" else None
        if self.compiled_step_class is None or network is None:
            return None
        return self.compiled_step_class(self.tables, network, self.config, self.prior_cdf)

    def _compiled_for(self, lanes: int) -> fused.CompiledStep | None:
        compiled = self.compiled_step
        return compiled if compiled is not None and lanes <= compiled.max_lanes else None

    def encode_step(self, msg: Message, images: np.ndarray, ids: np.ndarray, row_threads: int = 1) -> None:
        compiled = self._compiled_for(len(ids))
        if compiled is not None:
            compiled.encode(msg, images, ids, row_threads)
            return
        codecs.encode_ops(self.ops, msg, Step(ids, self.derived(), row_threads=row_threads, x=images))

    def decode_step(self, msg: Message, ids: np.ndarray, row_threads: int = 1) -> np.ndarray:
        compiled = self._compiled_for(len(ids))
        if compiled is not None:
            return compiled.decode(msg, ids, row_threads)
        step = Step(ids, self.derived(), row_threads=row_threads)
        codecs.decode_ops(self.ops, msg, step)
        return step["x"]

    def pops_per_image(self) -> int:
        """Symbols an image's encoding step pops (see registry.CoderSpec.pops_per_step)."""
        return codecs.pops_per_image(self.ops)

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
        row_threads = self.row_threads(threads)

        def run(part: Message, lanes: range) -> None:
            for step in range(self._num_steps(n)):
                ids = self._group_ids(step, lanes, n)
                if not len(ids):
                    break
                self.encode_step(part, images[ids], ids, row_threads)
                if progress is not None:
                    progress(len(ids), part)

        # a model that can compute every image's posterior in advance, identically (exact iterative
        # inference), does so in large batches: the encoder knows all its images
        prepared = getattr(self.tables, "prepared_posteriors", None)
        with prepared(images) if prepared is not None else contextlib.nullcontext():
            self._in_lane_groups(msg, run, threads)
        return msg
    def decode(
        self, message: Message, num_images: int, progress: ProgressFn | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """Decode `num_images` images from `message` (consumed in place): uint8 (n, num_pixels)."""
        out = np.empty((num_images, self.num_pixels), dtype=np.uint8)
        row_threads = self.row_threads(threads)

        def run(part: Message, lanes: range) -> None:
            for step in reversed(range(self._num_steps(num_images))):
                ids = self._group_ids(step, lanes, num_images)
                if not len(ids):
                    continue
                out[ids] = self.decode_step(part, ids, row_threads)
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
            threads = default_threads()
        if not getattr(self.tables, "portable", True):
            # float results (the float path, iterative inference's refinement) depend on batch
            # composition: one batch per step, as the decoder will use
            threads = 1
        threads = max(1, min(int(threads), lanes))
        bounds = [lanes * g // threads for g in range(threads + 1)]
        return [range(bounds[g], bounds[g + 1]) for g in range(threads)]

    def row_threads(self, threads: int | None = None) -> int:
        """Threads that share each network call's rows inside one lane group's step: the cores left
        over by the lane groups (1 in float arithmetic, whose bits depend on batch composition)."""
        total = default_threads() if threads is None else max(1, int(threads))
        if not getattr(self.tables, "portable", True):
            return 1
        return max(1, total // len(self.lane_groups(threads)))

    def _in_lane_groups(self, msg: Message, run: Callable[[Message, range], None],
                        threads: int | None) -> None:
        groups = self.lane_groups(threads)
        portable = getattr(self.tables, "portable", True)
        # exact arithmetic: one BLAS thread per coding thread, since lane groups and row chunks
        # already fill the cores (BLAS's own threads only add waiting on a step's small GEMMs)
        limits = threadpool_limits(1, user_api="blas") if portable else contextlib.nullcontext()
        with limits:
            if len(groups) == 1:
                run(msg, groups[0])
                return
            parts = [msg.take_lanes(g.start, g.stop) for g in groups]
            with ThreadPoolExecutor(len(groups)) as pool:
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
        return self.tables.posterior_table(images, ids, cfg.log_num_bucket, cfg.prop_mprec)

    def pixel_freq1(self, buckets: np.ndarray) -> np.ndarray:
        cfg = self.config
        return self.tables.pixel_freq1(buckets, cfg.log_num_bucket, cfg.cond_mprec)

    def prior_offsets(self, ids: np.ndarray) -> np.ndarray:
        """Seeded offsets (b, D) in [0, K) for the images `ids`, rebuilt by the decoder.

        The next image's posterior pops the bits that this image's latents were pushed with. When
        the model's aggregate posterior is far from the prior those bits are far from uniform, and
        bits-back pays for it ("dirty bits": +5% on the published N=1 MNIST model). Coding
        (z + offset) mod K instead costs the same under the uniform prior and leaves uniform bits.
        """
        return top_bits_grid(self.config.seed, ids, self.latent_dim, self.config.log_num_bucket)

    # codecs of the step's variables (each built from the step when its operation runs)
    def prior(self, step: Step) -> Codec:
        """Latent buckets (b, D) under the uniform prior p(z), whitened by the seeded offsets."""
        cfg = self.config
        plain = codecs.table(self.prior_cdf, self.prior_rows, cfg.prior_mprec, step.lanes)
        if not cfg.whiten_prior:
            return plain
        return codecs.shifted(plain, self.prior_offsets(step.ids), self.num_buckets)

    def posterior(self, step: Step) -> Codec:
        """Latent buckets (b, D) under q(z|x), one per latent (no table built in exact arithmetic)."""
        cfg = self.config
        return self.arithmetic.posterior_codec(self.tables, step["x"], step.ids, cfg.log_num_bucket,
                                               cfg.prop_mprec)

    def pixels(self, latent: str) -> Callable[[Step], Codec]:
        """The images (b, P) under p(x|z) for the latents named `latent`: one network call of b rows,
        the same call at encode and decode time."""
        return lambda step: codecs.bernoulli(self.pixel_freq1(step[latent]), self.config.cond_mprec)


def _given_back_nowhere(step: Step) -> None:
    """Decoding a sample drawn without bits back: the latents came from the prior's pop."""


class StochasticCoder(Coder):
    """z ~ q(z|x) from a seeded generator (no bits back); push x with p(x|z), z with p(z)."""

    def step_ops(self) -> list[Op]:
        return [Transform(self._draw, _given_back_nowhere), Push("x", self.pixels("z")),
                Push("z", self.prior)]

    def _draw(self, step: Step) -> None:
        step["z"] = self._sample(step["q"], step.ids)

    def _sample(self, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
        top = 1 << self.config.prop_mprec
        u = np.stack([
            np.random.Generator(np.random.PCG64([self.config.seed, int(i)])).integers(
                0, top, size=self.latent_dim
            )
            for i in ids
        ])
        return dist.table_lookup(table, u[:, None, :])[:, 0, :]


class BitsBackCoder(Coder):
    """BB-ELBO: pop z with q(z|x); push x with p(x|z); push z with p(z).

    In exact arithmetic, with a model whose pixels come from a fixed-point network, steps of a few
    lanes run the same operations as one compiled call (mcbits.coding.fused), the same bits.
    """

    compiled_step_class = fused.CompiledELBOStep

    def step_ops(self) -> list[Op]:
        return [Pop("z", self.posterior, pops=self.latent_dim), Push("x", self.pixels("z")),
                Push("z", self.prior)]


class _ImportanceCoder(Coder):
    """Shared by BB-IS and BB-CIS: quantized importance weights and the particle index codecs."""

    def log2_weights(self, images: np.ndarray, q: np.ndarray, particles: np.ndarray,
                     row_threads: int = 1) -> np.ndarray:
        """log2 w_k = log2 P(x|z_k) + log2 P(z_k) - log2 Q(z_k|x), all quantized: (b, N).

        The N particles of all lanes go through the network in one call of b*N rows, built the
        same way on both sides, so the weights are bit-identical at encode and decode time.
        """
        cfg = self.config
        b, n, d = particles.shape
        # the prior is uniform over buckets: the same for every particle, so it cancels
        log_px = self.tables.pixel_log2prob(particles.reshape(b * n, d), images, n, cfg.log_num_bucket,
                                            cfg.cond_mprec, threads=row_threads)
        return log_px.reshape(b, n) - self.arithmetic.table_log2prob(q, particles, cfg.prop_mprec)

    def index_table(self, images: np.ndarray, q: np.ndarray, particles: np.ndarray,
                    row_threads: int = 1) -> np.ndarray:
        return self.arithmetic.categorical(self.log2_weights(images, q, particles, row_threads),
                                           self.config.mprec)

    def index_by_weight(self, step: Step) -> Codec:
        """The particle index j (b,) under Cat(w) of the step's particles."""
        table = self.index_table(step["x"], step["q"], step["particles"], step.row_threads)
        return codecs.categorical(table, self.config.mprec, step.lanes)

    def index_uniform(self, step: Step) -> Codec:
        """The particle index j (b,) uniform over the N particles."""
        return codecs.uniform_index(self.config.num_particles, self.config.mprec, step.lanes)

    def tail_ops(self) -> list[Op]:
        """The common end of a step: j uniform, x with p(x|z_j), z_j with p(z)."""
        return [Push("j", self.index_uniform), Push("x", self.pixels("z_j")), Push("z_j", self.prior)]


class ISBitsBackCoder(_ImportanceCoder):
    """BB-IS(N): pop N particles with q, pop j with Cat(w), push back the others, then code
    j, x and z_j; the net rate approaches -IWAE_N. Steps of a few lanes run compiled as BB-ELBO's."""

    compiled_step_class = fused.CompiledISStep

    def __init__(self, model: CodingModel | ExactModel, config: CoderConfig):
        super().__init__(model, config)
        n = self.config.num_particles
        self.block_rows = np.tile(self.latent_rows, n)
        self.others_rows = np.tile(self.latent_rows, n - 1)

    def step_ops(self) -> list[Op]:
        n, d = self.config.num_particles, self.latent_dim
        ops: list[Op] = [Pop("particles", self.all_particles, pops=n * d),
                         Pop("j", self.index_by_weight, pops=1), Transform(self._split, self._join)]
        if n > 1:
            ops.append(Push("others", self.other_particles))
        return ops + self.tail_ops()

    def all_particles(self, step: Step) -> Codec:
        """N particles (b, N, D), each under q(z|x)."""
        shape = (step.lanes, self.config.num_particles, self.latent_dim)
        flat = codecs.table(step["q"], self.block_rows, self.config.prop_mprec, step.lanes)
        return codecs.reshaped(flat, shape)

    def other_particles(self, step: Step) -> Codec:
        """The N - 1 particles other than z_j, (b, (N - 1) D), each under q(z|x)."""
        return codecs.table(step["q"], self.others_rows, self.config.prop_mprec, step.lanes)

    def _others(self, j: np.ndarray) -> np.ndarray:
        keep = np.ones((len(j), self.config.num_particles), dtype=bool)
        keep[np.arange(len(j)), j] = False
        return keep

    def _split(self, step: Step) -> None:
        # particles (b, N, D) and j -> z_j and the others (in particle order)
        particles, j, b = step["particles"], step["j"], step.lanes
        step["others"] = particles[self._others(j)].reshape(b, -1)
        step["z_j"] = particles[np.arange(b), j]

    def _join(self, step: Step) -> None:
        n, d, b, j = self.config.num_particles, self.latent_dim, step.lanes, step["j"]
        particles = np.empty((b, n, d), dtype=np.int64)
        if n > 1:
            particles[self._others(j)] = step["others"].reshape(b * (n - 1), d)
        particles[np.arange(b), j] = step["z_j"]
        step["particles"] = particles


class CISBitsBackCoder(_ImportanceCoder):
    """BB-CIS(N): one base uniform u is popped; particle k uses (u + shift_k) mod 2^prop_mprec,
    so giving back u_j's offset inside z_j's range returns almost all of u's bits. Steps of a few
    lanes run compiled as BB-IS's."""

    compiled_step_class = fused.CompiledCISStep

    def __init__(self, model: CodingModel | ExactModel, config: CoderConfig):
        super().__init__(model, config)
        cfg = self.config
        self.shifts = cis_shift_units(cfg.num_particles, self.latent_dim, cfg.seed, cfg.prop_mprec)
        self.base_widths = np.full((cfg.lanes, self.latent_dim), 1 << cfg.prop_mprec, np.int64)
        self.offset_prec = cis_offset_precision(cfg.lprec, cfg.prop_mprec)

    def step_ops(self) -> list[Op]:
        return [Pop("base", self.base_uniform, pops=self.latent_dim), Pop("j", self.index_by_weight, pops=1),
                Transform(self._choose, self._rebase), Push("offset", self.offset_in_bucket),
                *self.tail_ops()]

    def derived(self) -> dict[str, Callable[[Step], Any]]:
        return {
            **super().derived(),
            "coupled": lambda s: self.particles_from_base(s["q"], s["base"]),  # (particles, u)
            "particles": lambda s: s["coupled"][0],
            "z_j_range": lambda s: self._bucket_range(s["q"], s["z_j"]),  # (low, width)
        }

    def base_uniform(self, step: Step) -> Codec:
        """The base uniform u (b, D) over 2^prop_mprec units."""
        return codecs.uniform(self.base_widths[:step.lanes], self.config.prop_mprec)

    def offset_in_bucket(self, step: Step) -> Codec:
        """u_j's offset (b, D) inside z_j's bucket, uniform over the bucket's width."""
        return codecs.uniform(step["z_j_range"][1], self.offset_prec)

    def _choose(self, step: Step) -> None:
        # (base, j) -> z_j and u_j's offset inside z_j's bucket
        particles, u = step["coupled"]
        lanes, j = np.arange(step.lanes), step["j"]
        step["z_j"] = particles[lanes, j]
        step["offset"] = u[lanes, j] - step["z_j_range"][0]

    def _rebase(self, step: Step) -> None:
        u_j = step["z_j_range"][0] + step["offset"]
        step["base"] = (u_j - self.shifts[step["j"]]) & ((1 << self.config.prop_mprec) - 1)

    def particles_from_base(self, q: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = (1 << self.config.prop_mprec) - 1
        u = (base[:, None, :] + self.shifts[None, :, :]) & mask
        return dist.table_lookup(q, u), u

    def _bucket_range(self, q: np.ndarray, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low = np.take_along_axis(q, buckets[:, :, None], axis=2)[:, :, 0]
        high = np.take_along_axis(q, buckets[:, :, None] + 1, axis=2)[:, :, 0]
        return low, high - low


def make_coder(model: CodingModel | ExactModel, config: CoderConfig) -> Coder:
    """Build the coder `config.coder` names (any accepted spelling) over `model`."""
    from mcbits.coding.registry import coder_spec  # the coder table imports this module's classes

    config = config.validated()
    return coder_spec(config.coder).cls(model, config)
