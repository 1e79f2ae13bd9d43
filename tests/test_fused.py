"""The compiled steps of BB-ELBO, BB-IS and BB-CIS (mcbits.coding.fused) make the bytes of the step programs
they stand for, and decode what either wrote."""

from __future__ import annotations

import numpy as np
import pytest
from coding_doubles import TinyModel, exact_vae_model, random_binary_images
from hypothesis import given, settings
from hypothesis import strategies as st

from mcbits.coding import fused, refine
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.limits import IterativeSettings

MODEL = exact_vae_model(6, 16, seed=5)
COMPILED = ["BitsBackCoder", "ISBitsBackCoder", "CISBitsBackCoder"]


def _particles(coder: str, many: int) -> int:
    return 1 if coder == "BitsBackCoder" else many


def _program_only(coder):
    # the same coder with its compiled step switched off: every step runs the step program
    coder.__dict__["compiled_step"] = None
    return coder


def _same_bytes_both_ways(config, images, threads=1):
    count = images.shape[0]
    compiled = make_coder(MODEL, config)
    program = _program_only(make_coder(MODEL, config))
    assert compiled.compiled_step is not None
    message = compiled.encode(images, threads=threads)
    assert message.to_bytes() == program.encode(images, threads=threads).to_bytes()
    assert message == program.encode(images, threads=threads)
    # each decodes the other's message (here: the same one) back to the images and the initial state
    for decoder in (compiled, program):
        again = message.copy()
        assert np.array_equal(decoder.decode(again, count, threads=threads), images)
        assert again.is_initial


@settings(max_examples=25, deadline=None)
@given(lanes=st.integers(1, fused.CompiledStep.max_lanes), count=st.integers(1, 12),
       seed=st.integers(0, 2**63 - 1),
       bprec=st.sampled_from([8, 16, 32]), log_num_bucket=st.integers(2, 9), whiten=st.booleans(),
       prop_extra=st.integers(1, 12), cond_mprec=st.integers(2, 20), prior_extra=st.integers(0, 6),
       density=st.floats(0.0, 1.0))
def test_compiled_steps_make_the_step_programs_bytes(lanes, count, seed, bprec, log_num_bucket, whiten,
                                                     prop_extra, cond_mprec, prior_extra, density):
    config = CoderConfig(coder="BitsBackCoder", lanes=lanes, seed=seed, bprec=bprec, lprec=32,
                         log_num_bucket=log_num_bucket, prop_mprec=log_num_bucket + prop_extra,
                         cond_mprec=cond_mprec, prior_mprec=log_num_bucket + prior_extra, whiten_prior=whiten)
    _same_bytes_both_ways(config, random_binary_images(count, seed=seed % 1000, density=density))


@settings(max_examples=25, deadline=None)
@given(lanes=st.integers(1, fused.CompiledStep.max_lanes), count=st.integers(1, 10),
       num_particles=st.integers(1, 9), seed=st.integers(0, 2**63 - 1), bprec=st.sampled_from([8, 16, 32]),
       log_num_bucket=st.integers(2, 9), whiten=st.booleans(), prop_extra=st.integers(1, 12),
       cond_mprec=st.integers(2, 20), prior_extra=st.integers(0, 6), mprec_extra=st.integers(0, 14),
       density=st.floats(0.0, 1.0))
def test_compiled_is_steps_make_the_step_programs_bytes(lanes, count, num_particles, seed, bprec,
                                                        log_num_bucket, whiten, prop_extra, cond_mprec,
                                                        prior_extra, mprec_extra, density):
    config = CoderConfig(coder="ISBitsBackCoder", num_particles=num_particles, lanes=lanes, seed=seed,
                         bprec=bprec, lprec=32, log_num_bucket=log_num_bucket,
                         prop_mprec=log_num_bucket + prop_extra, cond_mprec=cond_mprec,
                         prior_mprec=log_num_bucket + prior_extra, whiten_prior=whiten,
                         mprec=min(num_particles.bit_length() + mprec_extra, 16))
    _same_bytes_both_ways(config, random_binary_images(count, seed=seed % 1000, density=density))


@settings(max_examples=25, deadline=None)
@given(lanes=st.integers(1, fused.CompiledStep.max_lanes), count=st.integers(1, 10),
       num_particles=st.integers(1, 9), seed=st.integers(0, 2**63 - 1), bprec=st.sampled_from([8, 16, 32]),
       lprec=st.sampled_from([24, 32, 48]), log_num_bucket=st.integers(2, 9), whiten=st.booleans(),
       prop_extra=st.integers(1, 12), cond_mprec=st.integers(2, 20), prior_extra=st.integers(0, 6),
       mprec_extra=st.integers(0, 14), density=st.floats(0.0, 1.0))
def test_compiled_cis_steps_make_the_step_programs_bytes(lanes, count, num_particles, seed, bprec, lprec,
                                                         log_num_bucket, whiten, prop_extra, cond_mprec,
                                                         prior_extra, mprec_extra, density):
    # lprec moves the offsets' precision (min(lprec, 63 - prop_mprec)) below, at and above 32
    if lprec + bprec > 64:
        bprec = 16
    prop_mprec = log_num_bucket + prop_extra
    config = CoderConfig(coder="CISBitsBackCoder", num_particles=num_particles, lanes=lanes, seed=seed,
                         bprec=bprec, lprec=lprec, log_num_bucket=log_num_bucket, prop_mprec=prop_mprec,
                         cond_mprec=min(cond_mprec, lprec), prior_mprec=log_num_bucket + prior_extra,
                         whiten_prior=whiten, mprec=min(num_particles.bit_length() + mprec_extra, 16))
    _same_bytes_both_ways(config, random_binary_images(count, seed=seed % 1000, density=density))


@pytest.mark.parametrize("coder", ["ISBitsBackCoder", "CISBitsBackCoder"])
def test_steps_with_many_particle_rows_score_on_several_threads(coder):
    # 50 particles a lane: the scores take the network's row-chunk path (more rows than FEW_ROWS),
    # on 1 and 2 row threads, with the same bytes as the step program
    config = CoderConfig(coder=coder, num_particles=50, lanes=1, seed=11)
    images = random_binary_images(4, seed=6)
    for threads in (1, 2):
        _same_bytes_both_ways(config, images, threads=threads)


@pytest.mark.parametrize("coder", COMPILED)
def test_iterative_posteriors_run_compiled_with_the_same_bytes(coder):
    # the compiled step asks the model for q(z|x), so a refined posterior is what it codes with
    settings = IterativeSettings(steps=3, lr=0.05, num_particles=2, seed=1)
    model = refine.ExactIterativePosterior(MODEL, settings)
    config = CoderConfig(coder=coder, lanes=2, num_particles=_particles(coder, 3))
    images = random_binary_images(5, seed=2)
    compiled = make_coder(model, config)
    assert compiled.compiled_step is not None
    message = compiled.encode(images)
    assert message == _program_only(make_coder(model, config)).encode(images)
    fresh = make_coder(refine.ExactIterativePosterior(MODEL, model.iterative), config)
    assert np.array_equal(fresh.decode(message.copy(), 5), images)


@pytest.mark.parametrize("coder", COMPILED)
@pytest.mark.parametrize("arithmetic", ["exact", "float"])
def test_models_without_a_fixed_point_network_run_the_step_program(arithmetic, coder):
    tiny = TinyModel(latent_dim=4, num_pixels=784, seed=1, arithmetic=arithmetic)
    built = make_coder(tiny, CoderConfig(coder=coder, arithmetic=arithmetic,
                                         num_particles=_particles(coder, 2)))
    assert built.compiled_step is None
    images = tiny.sample_images(3)
    assert np.array_equal(built.decode(built.encode(images), 3), images)


@pytest.mark.parametrize("coder", COMPILED)
def test_lane_groups_on_threads_run_compiled_with_the_same_bytes(coder):
    # several lanes split over threads: each lane group's steps are compiled calls
    config = CoderConfig(coder=coder, lanes=7, seed=3, num_particles=_particles(coder, 4))
    images = random_binary_images(30, seed=4)
    reference = _program_only(make_coder(MODEL, config)).encode(images, threads=1).to_bytes()
    built = make_coder(MODEL, config)
    for threads in (1, 2, 3, 4):
        message = built.encode(images, threads=threads)
        assert message.to_bytes() == reference
        assert np.array_equal(built.decode(message, 30, threads=threads), images)


def test_more_lanes_than_a_compiled_step_takes_run_the_step_program():
    # a lane group past max_lanes runs the step program, with the bytes of one that runs compiled
    lanes = fused.CompiledStep.max_lanes + 1
    config = CoderConfig(coder="ISBitsBackCoder", lanes=lanes, num_particles=2, seed=5)
    images = random_binary_images(2 * lanes, seed=8)
    coder = make_coder(MODEL, config)
    calls = []
    coder.compiled_step.encode = lambda *args: calls.append(args)  # must not be called
    one_group = coder.encode(images, threads=1)
    assert not calls
    del coder.compiled_step.encode
    assert one_group.to_bytes() == make_coder(MODEL, config).encode(images, threads=2).to_bytes()
