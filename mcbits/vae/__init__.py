"""The model layer: the binary VAE, its variational bounds (the coders' ideal rates), training,
iterative inference, and `adapter`, which wraps a network as the coders' `CodingModel` under the
determinism rule (float32 on the CPU, one intra-op thread, no autograd).
"""
