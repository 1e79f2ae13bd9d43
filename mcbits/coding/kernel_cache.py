"""numba's on-disk cache of this package's kernels, kept fresh across files.

numba decides that a cached kernel is stale from the source of the file that defines it alone.
The kernels here call and inline kernels of other files (the compiled BB-ELBO step runs rANS,
posterior, network and hashing kernels), so after an edit to, say, exact.py a cached fused.py
kernel would still run the old arithmetic: bits that no longer match the code. Every kernel of
this package is therefore stamped with a digest of all its sources, so an edit anywhere in it
recompiles every kernel (where the cache lives is numba's usual choice: NUMBA_CACHE_DIR, else
__pycache__ beside the source, else the user's cache folder).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

PACKAGE = Path(__file__).resolve().parent


def sources_digest(folder: Path = PACKAGE) -> bytes:
    """SHA-256 over the names and contents of the package's Python sources (sorted by name)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.digest()


@functools.lru_cache(maxsize=1)
def _package_stamp() -> bytes:
    return sources_digest()


def _in_package(py_file: str) -> bool:
    try:
        return Path(py_file).resolve().parent == PACKAGE
    except OSError:
        return False


def _package_stamped(locator: type) -> type:
    # numba's locator, for this package's files only, with the package's digest as the stamp
    class PackageStamped(locator):
        @classmethod
        def from_function(cls, py_func, py_file):
            if not _in_package(py_file):
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return (super().get_source_stamp(), _package_stamp())

    PackageStamped.__name__ = f"PackageStamped{locator.__name__}"
    return PackageStamped


STAMPED_LOCATORS = tuple(
    _package_stamped(locator)
    for locator in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                    caching.UserWideCacheLocator)
)


def install() -> None:
    """Put the stamped locators first in numba's list (once); other packages' kernels are untouched."""
    classes = caching.CacheImpl._locator_classes
    if not any(cls in classes for cls in STAMPED_LOCATORS):
        classes[:0] = STAMPED_LOCATORS
