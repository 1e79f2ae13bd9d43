"""The two coding arithmetics behind one interface, so the coders never branch on which one runs.

- exact: the model already gives integer tables (`ExactModel`); importance weights are integer
  log2-probabilities at 2^-32 (mcbits.coding.exact).
- float: `FloatTables` wraps a float model (`CodingModel`: posterior mean and std, pixel
  probabilities) in the exact model's interface by quantizing its outputs with
  mcbits.coding.distributions; importance weights are float log2-probabilities.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mcbits.coding import codecs, exact
from mcbits.coding import distributions as dist


class FloatTables:
    """A float model seen through the exact model's interface (posterior_table, pixel_freq1,
    pixel_log2prob). Its bits depend on the float kernels' rounding, so it is not portable."""

    arithmetic = "float"
    portable = False

    def __init__(self, model: Any):
        self.model = model
        self.latent_dim = int(model.latent_dim)
        self.num_pixels = int(model.num_pixels)
        self.latent_rows = np.arange(self.latent_dim)  # a posterior table's row of each latent

    def posterior_table(self, images: np.ndarray, image_ids: np.ndarray, log_num_bucket: int,
                        precision: int) -> np.ndarray:
        mean, std = self.model.posterior(images, image_ids)
        return dist.gaussian_cdf_table(mean, std, log_num_bucket, precision)

    def pixel_freq1(self, buckets: np.ndarray, log_num_bucket: int, precision: int) -> np.ndarray:
        return dist.bernoulli_freq1(self.model.pixel_probs(buckets, log_num_bucket), precision)

    def pixel_log2prob(self, buckets: np.ndarray, images: np.ndarray, repeat: int, log_num_bucket: int,
                       precision: int, threads: int = 1) -> np.ndarray:
        """log2 P(images[r // repeat] | buckets[r]) in bits (float64, (R,)), in one call whatever
        `threads` says (float results depend on batch composition)."""
        freq1 = self.pixel_freq1(buckets, log_num_bucket, precision)
        return dist.bernoulli_log2prob(freq1, np.repeat(images, repeat, axis=0), precision)


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """What differs between the arithmetics, for the coders.

    tables: the model seen through the exact model's interface.
    table_log2prob: log2 Q of symbols under CDF tables, in the unit of pixel_log2prob.
    categorical: categorical tables (B, 1, N + 1) at a precision from log2-weights (B, N) in that unit.
    posterior_codec: the codec of one bucket per latent (B, D) under q(z|x), from the tables, images,
        their ids, log_num_bucket and the precision (exact: each CDF value computed where a push or
        pop needs it; float: the posterior tables).
    """

    name: str
    tables: Callable[[Any], Any]
    table_log2prob: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    categorical: Callable[[np.ndarray, int], np.ndarray]
    posterior_codec: Callable[[Any, np.ndarray, np.ndarray, int, int], codecs.Codec]


def _float_categorical(log2_weights: np.ndarray, precision: int) -> np.ndarray:
    return dist.categorical_table(log2_weights * math.log(2), precision)


def _exact_posterior_codec(model: Any, images: np.ndarray, ids: np.ndarray, log_num_bucket: int,
                           precision: int) -> codecs.Codec:
    return codecs.gaussian_posterior(*model.posterior_fixed(images, ids), log_num_bucket, precision)


def _float_posterior_codec(tables: FloatTables, images: np.ndarray, ids: np.ndarray, log_num_bucket: int,
                           precision: int) -> codecs.Codec:
    cdf = tables.posterior_table(images, ids, log_num_bucket, precision)
    return codecs.table(cdf, tables.latent_rows, precision, len(ids))


EXACT = Arithmetic("exact", lambda model: model, exact.table_log2prob, exact.categorical_table,
                   _exact_posterior_codec)
FLOAT = Arithmetic("float", FloatTables, dist.table_log2prob, _float_categorical, _float_posterior_codec)
BY_NAME: dict[str, Arithmetic] = {a.name: a for a in (EXACT, FLOAT)}
