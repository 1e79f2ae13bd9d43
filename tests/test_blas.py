"""numpy's BLAS called from compiled code (mcbits.coding.blas): found where numpy ships it, exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

from mcbits.coding import blas


def _numpy_ships_openblas64() -> bool:
    return any(info.get("user_api") == "blas" and "scipy_openblas64" in info.get("filepath", "")
               for info in threadpool_info())


def test_numpy_wheels_blas_is_found():
    if not _numpy_ships_openblas64():
        pytest.skip("numpy here is not linked against its wheel's ILP64 OpenBLAS")
    assert blas.dgemm_address() != 0


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 70), n=st.integers(0, 90), seed=st.integers(0, 2**32 - 1))
def test_gemm_equals_numpy_on_integer_matrices(m, k, n, seed):
    address = blas.dgemm_address()
    if not address:
        pytest.skip("no BLAS function reachable from compiled code here")
    rng = np.random.default_rng(seed)
    a = rng.integers(-(1 << 15), 1 << 15, size=(m, k)).astype(np.float64)
    b = rng.integers(-(1 << 15), 1 << 15, size=(k, n)).astype(np.float64)
    c = np.full((m, n), np.nan)
    blas.gemm(address, a, b, c)
    np.testing.assert_array_equal(c, a @ b)


def test_gemm_refuses_mismatched_shapes_and_a_missing_function():
    a, b, c = np.ones((2, 3)), np.ones((4, 5)), np.empty((2, 5))
    with pytest.raises(ValueError, match="no BLAS function"):
        blas.gemm(0, a, np.ones((3, 5)), c)
    if blas.dgemm_address():
        with pytest.raises(ValueError, match="shapes"):
            blas.gemm(blas.dgemm_address(), a, b, c)
