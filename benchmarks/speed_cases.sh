#!/usr/bin/env bash
# The coding-speed cases of the README's speed table, exact arithmetic, decode check on: BB-ELBO,
# BB-IS(50) and BB-CIS(50), each at 1 and 20 lanes; one JSON line each (benchmarks/coders.py
# --no-ideal), with the commit, the CPU model and the load average added.
#
#   bash benchmarks/speed_cases.sh IMAGES.npy CHECKPOINT_DIR [N_IMAGES] >> speed.jsonl
#
# Run it from the checkout to measure (PYTHONPATH is set to it), on a quiet machine; to compare two
# commits, benchmarks/speed_ab.sh runs this in both, alternating.
set -euo pipefail
data=$1; ckpts=$2; count=${3:-10000}
export PYTHONPATH=$PWD
commit=$(git rev-parse --short HEAD)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
for run in "BitsBackCoder 1 1" "BitsBackCoder 1 20" "ISBitsBackCoder 50 1" "ISBitsBackCoder 50 20" \
           "CISBitsBackCoder 50 1" "CISBitsBackCoder 50 20"; do
  set -- $run
  line=$(python benchmarks/coders.py --checkpoint "$ckpts/train_bin_emnist_split=mnist_num=$2/model.pt" \
    --coder "$1" --num-particles "$2" --data "$data" --images "$count" --lanes "$3" --no-ideal)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  python -c 'import json, sys; d = json.loads(sys.argv[1]); d.update(commit=sys.argv[2], cpu=sys.argv[3], loadavg=sys.argv[4]); print(json.dumps(d))' \
    "$line" "$commit" "$cpu" "$load"
done
