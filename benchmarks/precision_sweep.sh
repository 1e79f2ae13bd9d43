#!/usr/bin/env bash
# What each precision buys: net rate, gap to the ideal rate and speed of BB-ELBO, BB-IS(50) and
# BB-CIS(50) at single-parameter changes from the defaults (benchmarks/coders.py, one JSON line each).
#
#   bash benchmarks/precision_sweep.sh IMAGES.npy CHECKPOINT_DIR N_IMAGES > sweep.jsonl
#   python benchmarks/sweep_table.py sweep.jsonl
#
# CHECKPOINT_DIR holds train_bin_emnist_split=mnist_num={1,50}/model.pt (the artifact mirror).
set -euo pipefail
data=$1; ckpts=$2; count=${3:-3000}
settings=(
  ""
  "--prop-mprec 12" "--prop-mprec 20"
  "--cond-mprec 12" "--cond-mprec 20"
  "--mprec 10" "--mprec 20"
  "--log-num-bucket 6 --prior-mprec 8" "--log-num-bucket 10 --prior-mprec 10"
  "--mprec 10 --no-whiten-prior"
)
for coder in "BitsBackCoder 1" "ISBitsBackCoder 50" "CISBitsBackCoder 50"; do
  set -- $coder
  for s in "${settings[@]}"; do
    case "$1:$s" in BitsBackCoder:--mprec*) continue ;; esac
    # shellcheck disable=SC2086
    python benchmarks/coders.py --checkpoint "$ckpts/train_bin_emnist_split=mnist_num=$2/model.pt" \
      --coder "$1" --num-particles "$2" --data "$data" --images "$count" --lanes 50 $s
  done
done
