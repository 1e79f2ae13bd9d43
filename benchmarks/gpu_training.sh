#!/usr/bin/env bash
# The training half's GPU checks in one call (about 9 minutes on an H200): step speed at batch 20
# and 100 for N = 1, 5, 50, the CUDA tests, then the fast profile on MNIST for the grid N = 1, 5, 50
# with each model's test NLL (k = 5,000, all 10,000 test images) beside the IWAE paper's.
#
#   bash benchmarks/gpu_training.sh data/prepared/mnist OUT_DIR
#
# DATA is a prepared folder (train.npz, test.npz: `python -m stages.prepare --dataset mnist` with
# prepare.train_data true). Needs torch with CUDA; runs as `PYTHONPATH=. python3` where mcbits is
# not installed.
set -uo pipefail
data=${1:?prepared data folder}; out=${2:?output folder}
mkdir -p "$out/models"
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1
# the test tools benchmarks/gpu_bundle.sh packed, where the machine has none of its own
if [ -d .gpu/site ]; then export PYTHONPATH=$PWD/.gpu/site:$PYTHONPATH; fi
nvidia-smi --query-gpu=name,driver_version --format=csv
python3 benchmarks/train.py --device cuda --batch-size 20 --steps 3000 --json | tee "$out/steps-b20.txt"
python3 benchmarks/train.py --device cuda --batch-size 100 --steps 3000 --json | tee "$out/steps-b100.txt"
python3 -m pytest -q -k cuda tests/test_training.py tests/test_portable.py 2>&1 | tail -3
python3 benchmarks/train_recipes.py --data "$data" --recipes cos2 --grid 5 50 --device cuda \
    --nll-batch 500 --nll-chunk 500 --out "$out/recipes.jsonl" --models-dir "$out/models"
