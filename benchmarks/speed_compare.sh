#!/usr/bin/env bash
# Speed of exact vs float arithmetic side by side: encode + decode (decode check on) of N images
# with BB-ELBO and BB-IS(50), one lane and many (benchmarks/coders.py --no-ideal, JSON lines).
#
#   bash benchmarks/speed_compare.sh IMAGES.npy CHECKPOINT_DIR [N_IMAGES] > speed.jsonl
set -euo pipefail
data=$1; ckpts=$2; count=${3:-10000}
for run in "BitsBackCoder 1 1" "BitsBackCoder 1 100" "ISBitsBackCoder 50 1" "ISBitsBackCoder 50 20"; do
  set -- $run
  for arithmetic in exact float; do
    python benchmarks/coders.py --checkpoint "$ckpts/train_bin_emnist_split=mnist_num=$2/model.pt" \
      --coder "$1" --num-particles "$2" --data "$data" --images "$count" --lanes "$3" \
      --arithmetic "$arithmetic" --no-ideal
  done
done
