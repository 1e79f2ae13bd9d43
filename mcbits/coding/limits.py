"""Resource limits of the coders and the file format, and the memory estimate behind them.

Every limit is checked from the parameters alone, before the work that needs the memory or the
time starts: by the encoder on its parameters and by the decoder on a file's header, so that an
encoder never writes a file that a decoder refuses, and no file, however it was made, can make a
decoder allocate more than MEMORY_LIMIT or run for longer than its own size allows.

- MAX_IMAGES images per file (the largest EMNIST test set, byclass, has 116,323).
- MAX_PIXELS pixels per image, MAX_DIMS dimensions in an image's shape.
- MAX_FILE_BYTES: the largest file a decoder reads (a file of MAX_IMAGES stored 784-pixel
  images is about 103 MB).
- MEMORY_LIMIT: the estimate of `coding_memory` (the per-step arrays of the coder, the message's
  tails, the output images, the file's bytes) must stay below it. A decoder checks the part it
  knows from the file's size and fixed header (`read_memory`: the file, the message's tails, the
  images) before it reads the payload, and the whole estimate before it decodes.
- DEFAULT_MAX_WORK, DEFAULT_MAX_WORK_PER_IMAGE: the work of a decode, in decoder-network rows
  (`decode_work`), a decoder does unless its caller sets a budget (mcbits decode --max-work):
  by default the smaller of 2^25 and 8,192 rows per image.
- Image count against message length (rANS files): at least one byte of message (or of the
  header's padding) per image, so a file's decode does at most one coding step per byte it holds.
  Images that compress below 8 bits each get the padding they lack (see bitstream.encode_to_file).
- Iterative inference: at most MAX_ITERATIVE_STEPS steps, steps x particles at most
  MAX_ITERATIVE_WORK per image (`IterativeSettings`, the one check of these settings).
- Per lane, the drawn-word count is at most the number of words the lane's images can pop
  (`max_drawn_words`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from mcbits.coding.config import MAX_PARTICLES
from mcbits.coding.registry import coder_spec
from mcbits.errors import McbitsError

MAX_IMAGES = 1 << 20
MAX_PIXELS = 1 << 16
MAX_DIMS = 4
MAX_FILE_BYTES = 1 << 30
MEMORY_LIMIT = 1 << 30  # bytes
MAX_ITERATIVE_STEPS = 10_000
MAX_ITERATIVE_WORK = 1 << 16  # steps x particles per image
# The default work budget of a decode, in decoder-network rows (decode_work): 2^25, about 33.5
# million. The pipeline's largest file, 10,000 images of BB-IS(50) with 50 steps of iterative
# inference on 50 particles, is 10,000 x (50 + 1 + 50 x 50) = 25.5 million; `mcbits encode` at its
# defaults (BB-ELBO, N = 1) writes at most MAX_IMAGES x 2 = 2.1 million.
DEFAULT_MAX_WORK = 1 << 25
# ... and at most 8,192 rows per image: BB-IS at the largest N (4,096) is 4,097, the pipeline's
# iterative inference (50 steps x 50 particles) 2,551; a forged extension of 10,000 steps x 6
# particles (60,007 a image) is refused however few images the file holds.
DEFAULT_MAX_WORK_PER_IMAGE = 1 << 13
MAX_NAME_BYTES = 255  # an original file name, UTF-8
MAX_ENCODER_BYTES = 4096  # the encoder's environment, UTF-8 JSON


def images_in_lane(num_images: int, lanes: int, lane: int) -> int:
    """How many images lane `lane` codes: image i goes to lane i % lanes."""
    return num_images // lanes + (1 if lane < num_images % lanes else 0)


def max_drawn_words(config: Any, latent_dim: int, images: int) -> int:
    """The most virtual words `images` images of one lane can draw while encoding.

    An image's encode step pops at most the coder's pops_per_step(N, D) symbols (the coder table:
    e.g. BB-IS's N D particles and its index), each at a precision of at most lprec, and a pop
    takes at most ceil(lprec / bprec) words (its head stays at least 2^(lprec - precision)).
    """
    words_per_pop = -(-config.lprec // config.bprec)
    pops = coder_spec(config.coder).pops_per_step(int(config.num_particles), int(latent_dim))
    return images * pops * words_per_pop


def coding_memory(
    config: Any,
    *,
    latent_dim: int,
    num_pixels: int,
    num_images: int,
    tail_words: int = 0,
    iterative: dict[str, Any] | None = None,
    file_bytes: int = 0,
) -> dict[str, int]:
    """An upper estimate, in bytes, of what coding `num_images` images with `config` allocates.

    step: the arrays of one coding step over b = min(lanes, num_images) images, 8-byte values:
        3 D (K + 1) for the posterior's CDF tables and their intermediates, N (6 P + 2 D) for
        each particle's latents, pixel frequencies, log-probabilities and network activations
        (hidden layers are assumed no wider than P), plus iterative inference's noise and
        activations (b N_it (16 steps D + 48 P) bytes: its noise for every step, two 8-byte
        copies, and one step's network rows), plus the coder's own state (its spec's state_bytes:
        BB-CIS's shifts and base widths).
    message: lanes x (the longest tail in words, with room to double, at least 256) 4-byte words.
    images: the images, twice (the output and its packed copy for the digest).
    file: the file's bytes, held while the message is rebuilt from them (0 before a file exists).
    """
    b = max(1, min(int(config.lanes), int(num_images)))
    n = int(config.num_particles)
    k = 1 << int(config.log_num_bucket)
    d, p = int(latent_dim), int(num_pixels)
    step = 8 * b * (3 * d * (k + 1) + n * (6 * p + 2 * d))
    step += coder_spec(config.coder).state_bytes(n, d, int(config.lanes))
    if iterative:
        step += b * int(iterative["num_particles"]) * (16 * int(iterative["steps"]) * d + 48 * p)
    message = 4 * int(config.lanes) * max(256, 2 * int(tail_words) + 2) + 48 * int(config.lanes)
    images = 2 * int(num_images) * p
    estimate = {"step": step, "message": message, "images": images}
    if file_bytes:
        estimate["file"] = int(file_bytes)
    return estimate


def read_memory(*, file_bytes: int, lanes: int, tail_words: int, num_images: int,
                num_pixels: int) -> dict[str, int]:
    """The part of `coding_memory` a decoder knows from a file's size and its fixed header alone,
    before it reads the payload: the file's bytes, the message's tails (lanes x the longest tail in
    words), the output images. A model adds only its per-step arrays to it."""
    message = 4 * int(lanes) * max(256, 2 * int(tail_words) + 2) + 48 * int(lanes)
    return {"file": int(file_bytes), "message": message, "images": 2 * int(num_images) * int(num_pixels)}


def decode_work(header: dict[str, Any]) -> int:
    """The work of decoding a file, in decoder-network rows: one row is one latent sample through
    the model's networks (a particle of a coding step, or of one step of iterative inference, its
    gradient included). Per image: num_particles + 1 rows (the particles and the posterior) plus
    steps x num_particles of iterative inference. A stored file takes none."""
    if header.get("stored"):
        return 0
    rows = int(header["coder"]["num_particles"]) + 1
    it = (header.get("posterior") or {}).get("iterative")
    if it:
        rows += int(it["steps"]) * int(it["num_particles"])
    return int(header["num_images"]) * rows


def default_work_budget(num_images: int) -> int:
    """The default budget of a file of `num_images` images: DEFAULT_MAX_WORK_PER_IMAGE rows per
    image, at most DEFAULT_MAX_WORK in all."""
    return min(DEFAULT_MAX_WORK, DEFAULT_MAX_WORK_PER_IMAGE * max(int(num_images), 1))


def check_work(header: dict[str, Any], max_work: int | None, *, where: str) -> None:
    """Raise McbitsError when a file's decode_work exceeds max_work (None: the default budget)."""
    budget = default_work_budget(header["num_images"]) if max_work is None else int(max_work)
    work = decode_work(header)
    if work > budget:
        it = (header.get("posterior") or {}).get("iterative")
        per_image = f"{int(header['coder']['num_particles'])} particles + 1"
        if it:
            per_image += f" + {it['steps']} iterative-inference steps x {it['num_particles']} particles"
        raise McbitsError(
            f"decoding this file would take {work:,} decoder-network rows ({header['num_images']:,} "
            f"images x ({per_image})), above the work budget of {budget:,}",
            where=where,
            remedy=f"if you trust the file, raise the budget: mcbits decode --max-work {work} (or "
            "max_work= in decode_from_file)",
        )


class MemoryLimitError(McbitsError):
    """An estimate of coding_memory or read_memory above MEMORY_LIMIT."""


def check_memory(estimate: dict[str, int], *, where: str, remedy: str, what: str = "coding these "
                 "parameters") -> None:
    """Raise MemoryLimitError when an estimate of `coding_memory` exceeds MEMORY_LIMIT."""
    total = sum(estimate.values())
    if total > MEMORY_LIMIT:
        parts = ", ".join(f"{name} {value / 2**20:.1f} MiB" for name, value in estimate.items())
        raise MemoryLimitError(
            f"{what} would need about {total / 2**30:.2f} GiB ({parts}), above the "
            f"limit of {MEMORY_LIMIT / 2**30:.0f} GiB",
            where=where,
            remedy=remedy,
        )


@dataclasses.dataclass(frozen=True)
class IterativeSettings:
    """Iterative inference's settings: what shapes the refined posteriors, so what a decoder needs
    to rebuild them (a bitstream header stores exactly these fields).

    steps: Adam steps per image; lr: its learning rate; num_particles: the bound's particles (the
    coder's N); seed: the refinement noise's seed (the coder's seed).

    Constructing one validates it against this module's limits (McbitsError naming the bad value,
    where=`where`): the encoder, the decoder and the header check the same rule.
    """

    steps: int
    lr: float
    num_particles: int
    seed: int
    where: dataclasses.InitVar[str] = "parameters iterative"

    def __post_init__(self, where: str) -> None:
        problem = iterative_problem(self.to_dict())
        if problem:
            raise McbitsError(problem, where=where,
                              remedy=f"use 0 <= steps <= {MAX_ITERATIVE_STEPS}, 0 < lr <= 1, "
                              f"1 <= num_particles <= {MAX_PARTICLES}, steps x num_particles <= "
                              f"{MAX_ITERATIVE_WORK}, 0 <= seed < 2^63")
        object.__setattr__(self, "lr", float(self.lr))

    def to_dict(self) -> dict[str, Any]:
        """{steps, lr, num_particles, seed}: the header's posterior["iterative"]."""
        return {"steps": self.steps, "lr": self.lr, "num_particles": self.num_particles, "seed": self.seed}

    @classmethod
    def from_dict(cls, values: Any, where: str = "parameters iterative") -> IterativeSettings:
        """Settings from a table of exactly {steps, lr, num_particles, seed}, validated."""
        problem = iterative_problem(values)
        if problem:
            raise McbitsError(problem, where=where)
        return cls(**values, where=where)


def iterative_problem(settings: Any) -> str | None:
    """Why iterative-inference settings {steps, lr, num_particles, seed} are invalid, or None.
    The one rule behind IterativeSettings (and the header's check)."""
    if not isinstance(settings, dict):
        return f"iterative settings must be a table, got {type(settings).__name__}"
    keys = {"steps", "lr", "num_particles", "seed"}
    if set(settings) != keys:
        return f"iterative settings need exactly the keys {sorted(keys)}, got {sorted(settings)}"
    for name in ("steps", "num_particles", "seed"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int):
            return f"iterative {name}={value!r} must be an integer"
    lr = settings["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= 1:
        return f"iterative lr={lr!r} must be a number in (0, 1]"
    if not 0 <= settings["steps"] <= MAX_ITERATIVE_STEPS:
        return f"iterative steps={settings['steps']} must be in 0..{MAX_ITERATIVE_STEPS}"
    if not 1 <= settings["num_particles"] <= MAX_PARTICLES:
        return f"iterative num_particles={settings['num_particles']} must be in 1..{MAX_PARTICLES}"
    if settings["steps"] * settings["num_particles"] > MAX_ITERATIVE_WORK:
        return (f"iterative steps x num_particles = {settings['steps'] * settings['num_particles']} is "
                f"above the limit of {MAX_ITERATIVE_WORK} per image")
    if not 0 <= settings["seed"] < 1 << 63:
        return f"iterative seed={settings['seed']} must be in 0..2^63 - 1"
    return None
