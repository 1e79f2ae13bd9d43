#!/usr/bin/env bash
# Gaps between each coder's net rate and its ideal rate on many images (benchmarks/coders.py,
# defaults, 50 lanes, one JSON line per coder).
#
#   bash benchmarks/gaps_10k.sh IMAGES.npy CHECKPOINT_DIR SPLIT > gaps.jsonl              # the coders
#   bash benchmarks/gaps_10k.sh IMAGES.npy CHECKPOINT_DIR SPLIT --iterative > if.jsonl    # the IF rows
#
# CHECKPOINT_DIR holds train_bin_emnist_split=SPLIT_num={1,5,50}/model.pt (the artifact mirror);
# SPLIT is the training split (mnist, or letters for out-of-distribution rates on mnist images).
# --iterative: BB-ELBO-IF(50) and BB-IS(50)-IF(50) (params.yaml's compress.iterative: 50 steps, lr 0.01).
set -euo pipefail
data=$1; ckpts=$2; split=$3; mode=${4:-}
if [ "$mode" = "--iterative" ]; then
  runs=("BitsBackCoder 1" "ISBitsBackCoder 50"); extra=(--iterative-steps 50 --iterative-lr 0.01)
else
  runs=("BitsBackCoder 1" "ISBitsBackCoder 5" "CISBitsBackCoder 5" "ISBitsBackCoder 50" "CISBitsBackCoder 50")
  extra=()
  [ "$split" = "mnist" ] && runs+=("StochasticCoder 1")
fi
for run in "${runs[@]}"; do
  set -- $run
  python benchmarks/coders.py --checkpoint "$ckpts/train_bin_emnist_split=${split}_num=$2/model.pt" \
    --coder "$1" --num-particles "$2" --data "$data" --lanes 50 "${extra[@]}"
done
