"""A step's rows split over threads (mcbits.coding.parallel): the same bits for any thread count."""

from __future__ import annotations

import os

import numpy as np
import pytest
from coding_doubles import exact_vae_model

from mcbits.coding import blas, exact, network, parallel
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig


def _exact_model(seed: int = 3) -> network.ExactCodingModel:
    # a small random BinaryVAE in fixed point: 8 latents, 24 hidden units, 784 pixels
    return exact_vae_model(8, 24, seed)


@pytest.mark.parametrize("rows,threads", [(0, 2), (1, 4), (7, 2), (16, 2), (50, 2), (50, 3), (1000, 16)])
def test_row_chunks_cover_the_rows_once_in_order(rows, threads):
    chunks = parallel.row_chunks(rows, threads)
    assert chunks[0][0] == 0 and chunks[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert len(chunks) <= threads
    assert len(chunks) == 1 or min(stop - start for start, stop in chunks) >= parallel.MIN_ROWS


def test_run_rows_calls_every_chunk_and_reraises():
    seen = np.zeros(40, dtype=np.int64)

    def work(start: int, stop: int) -> None:
        seen[start:stop] += 1

    parallel.run_rows(work, 40, 3)
    assert (seen == 1).all()

    def fail(start: int, stop: int) -> None:
        if start:
            raise ValueError("chunk failed")

    with pytest.raises(ValueError, match="chunk failed"):
        parallel.run_rows(fail, 40, 3)


def test_a_larger_pool_replaces_and_shuts_down_the_old_one():
    seen = np.zeros(400, dtype=np.int64)

    def work(start: int, stop: int) -> None:
        seen[start:stop] += 1

    parallel.run_rows(work, 400, 2)
    old = parallel._pool
    more = parallel.default_threads() + 3  # more chunks than the old pool has workers
    parallel.run_rows(work, 400, more)
    assert (seen == 2).all()
    assert parallel._pool is not old and parallel._pool_size >= more - 1
    with pytest.raises(RuntimeError):  # shut down: its threads end once idle
        old.submit(work, 0, 0)


@pytest.mark.parametrize("compiled", [True, False])
def test_pixel_log2prob_is_the_same_in_any_row_chunking(compiled, monkeypatch):
    # compiled: each chunk one compiled call (BLAS through its address); else numpy's GEMMs per chunk
    if compiled and not blas.dgemm_address():
        pytest.skip("no BLAS function reachable from compiled code here")
    if not compiled:
        monkeypatch.setattr(network.blas, "dgemm_address", lambda: 0)
    model = _exact_model()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 2, size=(3, 784)).astype(np.uint8)
    buckets = rng.integers(0, 256, size=(3 * 20, 8))
    results = []
    for threads in (1, 2, 3, 7):
        results.append(model.pixel_log2prob(buckets, images, 20, 8, 16, threads=threads))
    # one row at a time, each scored on its own: what a chunk of any size must reproduce
    product, bias, bits = model.network.logits_fixed(exact.bucket_centres_fixed(8)[buckets])
    single = np.concatenate([exact.logits_log2prob(product[r:r + 1], bits, images[r // 20:r // 20 + 1], 1, 16,
                                                   bias) for r in range(buckets.shape[0])])
    for result in results:
        np.testing.assert_array_equal(result, single)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("coder,num,lanes", [("ISBitsBackCoder", 24, 1), ("ISBitsBackCoder", 16, 2),
                                             ("CISBitsBackCoder", 24, 1)])
def test_encoding_with_one_or_more_threads_gives_identical_bytes(coder, num, lanes, compiled, monkeypatch):
    # one lane: the step's N particle rows are split over the threads (not the lanes); the bytes
    # must not depend on how many threads share them, and any thread count decodes them
    model = _exact_model()
    images = np.random.default_rng(2).integers(0, 2, size=(5, 784)).astype(np.uint8)
    c = make_coder(model, CoderConfig(coder=coder, num_particles=num, lanes=lanes, seed=7))
    sizes: list[int] = []  # the most rows one thread scored in one call
    if compiled:
        if not blas.dgemm_address():
            pytest.skip("no BLAS function reachable from compiled code here")
        score_parts, score_chunk = network._score_parts, network._score_chunk

        def parts_recording(address, z, parts, *rest):
            sizes.append(-(-z.shape[0] // parts))
            return score_parts(address, z, parts, *rest)

        def chunk_recording(address, z, *rest):
            sizes.append(z.shape[0])
            return score_chunk(address, z, *rest)

        monkeypatch.setattr(network, "_score_parts", parts_recording)
        monkeypatch.setattr(network, "_score_chunk", chunk_recording)
    else:
        monkeypatch.setattr(network.blas, "dgemm_address", lambda: 0)
        logits_fixed = model.network.logits_fixed

        def recording(z: np.ndarray):
            sizes.append(z.shape[0])
            return logits_fixed(z)

        monkeypatch.setattr(model.network, "logits_fixed", recording)
    reference = c.encode(images, threads=1).to_bytes()
    assert max(sizes) == lanes * num  # one thread: a step's rows of all lanes in one call
    for threads in (2, 3, 4):
        sizes.clear()
        assert c.row_threads(threads) == threads // len(c.lane_groups(threads))
        msg = c.encode(images, threads=threads)
        assert max(sizes) < lanes * num  # the step's work was really split (rows, or lanes and rows)
        if lanes == 1:
            assert max(sizes) <= -(-num // min(threads, num // parallel.MIN_ROWS))
        assert msg.to_bytes() == reference
        for decode_threads in (1, threads):
            again = msg.copy()
            np.testing.assert_array_equal(c.decode(again, images.shape[0], threads=decode_threads), images)
            assert again.is_initial


@pytest.fixture
def scoring_case():
    """(score, expected): a step's 60 particle rows of two images scored on two threads, and their
    scores by the numpy path (needs a BLAS function reachable from compiled code)."""
    if not blas.dgemm_address():
        pytest.skip("no BLAS function reachable from compiled code here")
    model = _exact_model()
    rng = np.random.default_rng(4)
    images = rng.integers(0, 2, size=(2, 784)).astype(np.uint8)
    buckets = rng.integers(0, 256, size=(2 * 30, 8))
    product, bias, bits = model.network.logits_fixed(exact.bucket_centres_fixed(8)[buckets])
    expected = exact.logits_log2prob(product, bits, images, 30, 16, bias)
    return (lambda: model.pixel_log2prob(buckets, images, 30, 8, 16, threads=2)), expected


def test_a_busy_parallel_scorer_scores_the_rows_alone(scoring_case):
    # another lane group inside the parallel scorer: this call scores its rows on its own thread
    score, expected = scoring_case
    np.testing.assert_array_equal(score(), expected)
    with network._parallel_scorer:
        np.testing.assert_array_equal(score(), expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_scores_its_rows_alone(scoring_case):
    # after the parent started numba's threads, a forked child must not start a parallel region
    # (GNU OpenMP's threads do not survive a fork): it scores alone, the same numbers
    score, expected = scoring_case
    np.testing.assert_array_equal(score(), expected)  # starts the threads
    assert network._parallel_pid == [os.getpid()]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: score, report, leave without running the parent's cleanup
        ok = np.array_equal(score(), expected) and not network._may_run_parallel()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and os.waitstatus_to_exitcode(status) == 0
