"""The results layer: the result tables built from per-run metrics records (`tables`) and the
general-purpose compressors they are compared with (`baselines`).
"""
