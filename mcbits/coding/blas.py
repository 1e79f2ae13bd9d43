"""numpy's float64 GEMM called from compiled code, so that a chunk of a step's rows (its GEMMs, tanh
layers and scores) is one compiled call that never needs the GIL.

The function is the CBLAS `dgemm` of the BLAS library numpy is linked against, found at run time
(threadpoolctl names the library's file) and called through its address, an ordinary argument of
the kernels, so they stay cacheable. Only symbols whose integer width is certain are used: the
64-bit-integer ("ILP64") entry points of numpy's own OpenBLAS builds. Anything else (another BLAS,
a build without the symbol) means no address, and callers keep their numpy path: the integers are
the same either way, since every product and sum is exact.
"""

from __future__ import annotations

import ctypes
import functools

import numba as nb
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# ILP64 CBLAS dgemm entry points (numpy's wheels: scipy-openblas64; OpenBLAS built with a suffix)
ILP64_SYMBOLS = ("scipy_cblas_dgemm64_", "cblas_dgemm64_")
_ROW_MAJOR, _NO_TRANS = 101, 111


@functools.lru_cache(maxsize=1)
def dgemm_address() -> int:
    """The address of numpy's BLAS's ILP64 cblas_dgemm, or 0 where there is none to call."""
    try:
        from threadpoolctl import threadpool_info

        paths = [info["filepath"] for info in threadpool_info() if info.get("user_api") == "blas"]
    except Exception:  # noqa: BLE001 - no BLAS information means the numpy path, not an error
        return 0
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ILP64_SYMBOLS:
            function = getattr(library, name, None)
            if function is not None:
                _keep_loaded.append(library)
                return int(ctypes.cast(function, ctypes.c_void_p).value or 0)
    return 0


_keep_loaded: list[ctypes.CDLL] = []


@intrinsic
def _call_dgemm(typingctx, address, a, b, c):
    # c = a @ b for C-contiguous float64 matrices, through cblas_dgemm(RowMajor, NoTrans, NoTrans,
    # m, n, k, 1, a, k, b, n, 0, c, n) at `address` (ILP64: the sizes are 64-bit integers)
    if address != types.int64 or not all(
            isinstance(x, types.Array) and x.dtype == types.float64 and x.ndim == 2 for x in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        fn_address, a_value, b_value, c_value = args
        a_array = context.make_array(signature.args[1])(context, builder, a_value)
        b_array = context.make_array(signature.args[2])(context, builder, b_value)
        c_array = context.make_array(signature.args[3])(context, builder, c_value)
        i32, i64, f64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f64, f64.as_pointer(), i64,
                                               f64.as_pointer(), i64, f64, f64.as_pointer(), i64])
        fn = builder.inttoptr(fn_address, fnty.as_pointer())
        m, k = cgutils.unpack_tuple(builder, a_array.shape, 2)
        n = cgutils.unpack_tuple(builder, b_array.shape, 2)[1]
        order, no_trans = ir.Constant(i32, _ROW_MAJOR), ir.Constant(i32, _NO_TRANS)
        one, zero = ir.Constant(f64, 1.0), ir.Constant(f64, 0.0)
        builder.call(fn, [order, no_trans, no_trans, m, n, k, one, a_array.data, k, b_array.data, n,
                          zero, c_array.data, n])
        return context.get_dummy_value()

    return types.void(address, a, b, c), codegen


@nb.njit(cache=True, nogil=True)
def gemm(address, a, b, c):
    """c = a @ b (C-contiguous float64, shapes checked) with the BLAS function at `address`."""
    if address == 0:
        raise ValueError("gemm: no BLAS function to call (dgemm_address() found none)")
    if a.shape[1] != b.shape[0] or c.shape[0] != a.shape[0] or c.shape[1] != b.shape[1]:
        raise ValueError("gemm: the shapes do not match")
    if a.shape[0] == 0 or b.shape[1] == 0:
        return
    if a.shape[1] == 0:
        c[:] = 0.0
        return
    _call_dgemm(address, a, b, c)
