"""The coding layer: bits-back coders over a narrow model interface, no neural-network library.

`rans` is the rANS message (numba loops over lanes), `distributions` quantizes Gaussians,
Bernoullis and categoricals into integer tables, `coders` holds the four McBits coders
(Stochastic, BB-ELBO, BB-IS, BB-CIS) built from a `config.CoderConfig` and the coder table in
`registry`, and `bitstream` writes and reads the self-describing file format (its byte layout
and schema in `header`, its resource limits in `limits`). `hashing` and
`shifts` hold the seeded values that encoder and decoder rebuild. Nothing here imports torch
(tests/test_layers.py enforces it): a model reaches the coders only through `coders.CodingModel`.
"""

from mcbits.coding import kernel_cache

# before any kernel of the package is compiled: cached kernels must go stale with any source here
kernel_cache.install()
