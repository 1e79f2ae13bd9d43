#!/usr/bin/env bash
# Exact vs float arithmetic, side by side on the same images: net rate (rate cost of exactness)
# and encode + decode time, every coder (benchmarks/coders.py, one JSON line each).
#
#   bash benchmarks/arithmetic_compare.sh IMAGES.npy CHECKPOINT_DIR N_IMAGES LANES > compare.jsonl
#
# CHECKPOINT_DIR holds train_bin_emnist_split=mnist_num={1,5,50}/model.pt (the artifact mirror).
set -euo pipefail
data=$1; ckpts=$2; count=${3:-500}; lanes=${4:-1}
for coder in "StochasticCoder 1" "BitsBackCoder 1" "ISBitsBackCoder 5" "ISBitsBackCoder 50" \
             "CISBitsBackCoder 5" "CISBitsBackCoder 50"; do
  set -- $coder
  for arithmetic in exact float; do
    python benchmarks/coders.py --checkpoint "$ckpts/train_bin_emnist_split=mnist_num=$2/model.pt" \
      --coder "$1" --num-particles "$2" --data "$data" --images "$count" --lanes "$lanes" \
      --arithmetic "$arithmetic"
  done
done
