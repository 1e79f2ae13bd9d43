"""Work inside one coding step split over cores: contiguous row chunks on a shared thread pool.

A step's rows (one per particle of each lane) are independent: row r's logits, frequencies and
log-probabilities depend on row r alone, and every number is an exact integer (the GEMMs are
exact float64 products of integers, the kernels integer arithmetic). So computing the rows in
chunks on several threads, each with one BLAS thread, gives exactly the numbers of one call, for
any thread count and any chunking; nothing is reduced across chunks. The numba kernels and
BLAS release the GIL, so the chunks run in parallel. (Where numpy's BLAS can be called from compiled
code, mcbits.coding.network scores a step's rows as one compiled call per chunk on numba's threads
instead, with these chunks' bounds: no GIL between a chunk's GEMMs.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

MIN_ROWS = 8  # smaller chunks would spend more on dispatch than the GEMM they split

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def default_threads() -> int:
    """One thread per core (what `threads=None` means for the coders)."""
    return os.cpu_count() or 1


def _submit_all(work: Callable[[int, int], None], chunks: list[tuple[int, int]]) -> list[Future]:
    # one pool for the process (creating threads per step would cost more than a step), replaced by
    # a larger one on demand; submitting under the lock means no caller can hold a replaced pool, so
    # it is shut down at once (its queued chunks still run, then its threads end)
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < len(chunks):
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = max(len(chunks), default_threads())
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="mcbits-rows")
        return [_pool.submit(work, start, stop) for start, stop in chunks]


def row_chunks(rows: int, threads: int, min_rows: int = MIN_ROWS) -> list[tuple[int, int]]:
    """Contiguous (start, stop) chunks covering range(rows): at most `threads`, each at least
    `min_rows` rows unless there is a single chunk."""
    parts = max(1, min(int(threads), rows // max(1, min_rows)))
    bounds = [rows * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def run_rows(work: Callable[[int, int], None], rows: int, threads: int, min_rows: int = MIN_ROWS) -> None:
    """Call work(start, stop) over contiguous chunks of range(rows), in parallel when `threads` > 1.

    `work` must write only its own rows of its outputs; the calling thread runs the first chunk.
    """
    chunks = row_chunks(rows, threads, min_rows)
    if len(chunks) == 1:
        work(0, rows)
        return
    futures = _submit_all(work, chunks[1:])
    try:
        work(*chunks[0])
    finally:
        for future in futures:
            future.result()
