"""The DVC pipeline's stages: each reads its params block and inputs, calls the library (mcbits),
and writes its outputs; `paths` builds every path of the pipeline's layout, `_common` reads
params.yaml and writes metrics. dvc.yaml runs them as `python -m stages.<name>`.
"""
