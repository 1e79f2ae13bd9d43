"""BB-CIS's fixed per-particle shifts, shared by the coder and by the coupled bound, and the precision
of its offsets (numpy only)."""

from __future__ import annotations

import numpy as np


def cis_shifts(num_particles: int, latent_dim: int, seed: int) -> np.ndarray:
    """Fixed per-particle shifts of BB-CIS: (N, D) float64 in [0, 1), row 0 all zeros.

    Drawn from numpy's PCG64 seeded with `seed`, which gives the same numbers on every platform,
    so an encoder and a decoder that know (N, D, seed) rebuild identical shifts. Each value is a
    multiple of 2**-53, so scaling by 2**p (p <= 53) and flooring gives exact integer shifts.
    """
    if num_particles < 1 or latent_dim < 1:
        raise ValueError(
            f"need num_particles >= 1 and latent_dim >= 1, got {num_particles}, {latent_dim}"
        )
    shifts = np.zeros((num_particles, latent_dim), dtype=np.float64)
    if num_particles > 1:
        shifts[1:] = np.random.default_rng(seed).random((num_particles - 1, latent_dim))
    return shifts


def cis_shift_units(num_particles: int, latent_dim: int, seed: int, precision: int) -> np.ndarray:
    """BB-CIS's fixed per-particle shifts in units of 2^-precision: int64 (N, D), row 0 zero.

    The same shifts as the coupled bound's (`cis_shifts`), floored onto the grid.
    """
    return np.floor(cis_shifts(num_particles, latent_dim, seed) * (1 << precision)).astype(np.int64)


def cis_offset_precision(lprec: int, prop_mprec: int) -> int:
    """The precision BB-CIS codes u_j's offset inside z_j's bucket at.

    The offset is uniform over the bucket's width, not a power of two, so it is quantized finely:
    the cost is a relative error below 2^-(precision - prop_mprec) per latent. A uniform push needs
    width * 2^precision < 2^64 (widths are at most 2^prop_mprec) and precision <= lprec.
    """
    return min(lprec, 63 - prop_mprec)
