#!/usr/bin/env bash
# The coding half's GPU check in one call: the speed cases on the CPU and through `--device cuda`
# in the same run (encode + decode with the decode check, exact arithmetic, published checkpoints),
# after the CUDA tests (the device's scores and bits equal the CPU's). One JSON line per case.
#
#   bash benchmarks/gpu_coding.sh IMAGES.npy CHECKPOINT_DIR [N_IMAGES] > gpu-coding.jsonl
#
# IMAGES.npy: benchmarks/emnist_images.py's output; CHECKPOINT_DIR holds
# train_bin_emnist_split=mnist_num=N/model.pt (benchmarks/gpu_bundle.sh packs both, and pytest,
# into .gpu/). Needs torch with CUDA; runs as `PYTHONPATH=. python3` where mcbits is not installed.
set -uo pipefail
data=${1:?images .npy}; ckpts=${2:?checkpoint folder}; count=${3:-10000}
export PYTHONPATH=${PYTHONPATH:-$PWD}
# the test tools benchmarks/gpu_bundle.sh packed, where the machine has none of its own
if [ -d .gpu/site ]; then export PYTHONPATH=$PWD/.gpu/site:$PYTHONPATH; fi
nvidia-smi --query-gpu=name,driver_version --format=csv >&2
python3 -m pytest -q -k cuda tests/test_device_decoder.py tests/test_portable.py >&2
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
for run in "BitsBackCoder 1 100" "ISBitsBackCoder 50 1" "ISBitsBackCoder 50 20" "ISBitsBackCoder 50 200" \
           "CISBitsBackCoder 50 200"; do
  set -- $run
  for device in cpu cuda; do
    line=$(python3 benchmarks/coders.py --checkpoint "$ckpts/train_bin_emnist_split=mnist_num=$2/model.pt" \
      --coder "$1" --num-particles "$2" --data "$data" --images "$count" --lanes "$3" --no-ideal \
      --device "$device") || continue
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); d.update(cpu=sys.argv[2]); print(json.dumps(d))' \
      "$line" "$cpu"
  done
done
