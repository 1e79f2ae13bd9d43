#!/usr/bin/env bash
# What each coder precision buys, measured on the pipeline itself: one `dvc exp run --temp` per
# setting (a single change from params.yaml, on the committed HEAD; prepare, train, evaluate and
# baselines are restored from the run cache, every coding run reruns with its decode check).
#
#   MCBITS_MIRROR=../shared/mirror bash benchmarks/pipeline_sweep.sh [NAME ...]   # default: all
#   python benchmarks/exp_table.py benchmarks/results-pipeline-sweep.tsv          # the README table
#
# Each experiment is named sweep-<NAME>; its wall time (seconds) is appended to
# benchmarks/results-pipeline-sweep.tsv beside its name and settings.
set -euo pipefail
declare -A settings=(
  [prop12]="-S compress.prop_mprec=12"
  [prop20]="-S compress.prop_mprec=20"
  [cond12]="-S compress.cond_mprec=12"
  [cond20]="-S compress.cond_mprec=20"
  [mprec10]="-S compress.mprec=10"
  [buckets6]="-S compress.log_num_bucket=6"
  [buckets10]="-S compress.log_num_bucket=10 -S compress.prior_mprec=10"
  [bprec16]="-S compress.bprec=16"
)
order=(prop12 prop20 cond12 cond20 mprec10 buckets6 buckets10 bprec16)
[ $# -gt 0 ] && order=("$@")
out=benchmarks/results-pipeline-sweep.tsv
for name in "${order[@]}"; do
  args=${settings[$name]:?unknown setting $name}
  dvc exp remove "sweep-$name" >/dev/null 2>&1 || true
  start=$(date +%s)
  base=$(git rev-parse --short HEAD)  # the commit the experiment starts from
  # shellcheck disable=SC2086
  dvc exp run --temp -n "sweep-$name" $args
  printf '%s\t%s\t%s\t%s\n' "$name" "$args" "$(( $(date +%s) - start ))" "$base" >> "$out"
done
