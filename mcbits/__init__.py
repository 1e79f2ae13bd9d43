"""mcbits: lossless compression with latent-variable models by Monte Carlo bits-back coding.

The library knows nothing of DVC or of the pipeline's folder layout; `stages/` wires it up.
"""

from mcbits.errors import McbitsError

__all__ = ["McbitsError", "__version__"]
__version__ = "0.2.0"
