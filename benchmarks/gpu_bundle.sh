#!/usr/bin/env bash
# What benchmarks/gpu_coding.sh needs on a GPU machine that has torch, numpy and numba but neither
# this project's test tools nor its data: an ignored folder .gpu/ in this checkout, to copy along.
#
#   bash benchmarks/gpu_bundle.sh          # here, after `make repro` (it reads the pipeline's files)
#   bash benchmarks/gpu_coding.sh .gpu/emnist10k.npy .gpu/checkpoints     # there, in the copy
#
# .gpu/site: pytest and hypothesis (pure Python), which gpu_coding.sh puts first on PYTHONPATH; .gpu/emnist10k.npy: the benchmark images
# (benchmarks/emnist_images.py); .gpu/checkpoints: the published mnist-split checkpoints in the
# layout gpu_coding.sh reads. About 20 MB.
set -euo pipefail
python=${PYTHON:-python3}
raw=data/raw/emnist-mnist/emnist-mnist-test-images-idx3-ubyte.gz
[ -f "$raw" ] || { echo "no $raw: run \`make repro\` (or \`dvc repro prepare\`) first" >&2; exit 1; }
rm -rf .gpu.tmp && mkdir -p .gpu.tmp/checkpoints
# pure-Python wheels only, chosen for Python 3.10, so that they import on whatever Python 3.10+ the
# GPU machine runs; pip evaluates dependency markers for the Python running it, so pytest's
# dependencies before 3.11 (exceptiongroup, tomli) are named here
"$python" -m pip install --quiet --target .gpu.tmp/site --only-binary=:all: --implementation py \
  --abi none --platform any --python-version 3.10 pytest hypothesis exceptiongroup tomli typing_extensions
find .gpu.tmp/site -name __pycache__ -prune -exec rm -rf {} +
rm -rf .gpu.tmp/site/bin
"$python" benchmarks/emnist_images.py "$raw" .gpu.tmp/emnist10k.npy
for n in 1 5 50; do
  source=checkpoints/emnist-mnist-n$n/model.pt
  [ -f "$source" ] || { echo "no $source: run \`make repro\` first" >&2; exit 1; }
  mkdir -p ".gpu.tmp/checkpoints/train_bin_emnist_split=mnist_num=$n"
  cp "$source" ".gpu.tmp/checkpoints/train_bin_emnist_split=mnist_num=$n/model.pt"
done
rm -rf .gpu && mv .gpu.tmp .gpu
du -sh .gpu >&2
