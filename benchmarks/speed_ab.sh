#!/usr/bin/env bash
# Two commits' coding speed in one run: benchmarks/speed_cases.sh in a worktree of each, the
# commits alternating (before, after, then after, before, ...) so that a virtual machine whose
# speed drifts within the hour treats both alike. One JSON line per case, with "side" (before or
# after) and "round" added.
#
#   bash benchmarks/speed_ab.sh IMAGES.npy CHECKPOINT_DIR BEFORE [AFTER=HEAD] [ROUNDS=2] [N_IMAGES=10000] >> ab.jsonl
#
# Run it from a checkout of this project. Either commit needs benchmarks/coders.py with --lanes and
# --no-ideal (every commit since the exact arithmetic has it); this script's own speed_cases.sh is
# run in both. The worktrees are removed at the end.
set -euo pipefail
data=$(realpath "$1"); ckpts=$(realpath "$2"); before=$3; after=${4:-HEAD}; rounds=${5:-2}; count=${6:-10000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cleanup() {
  git worktree remove --force "$work/before" 2>/dev/null || true
  git worktree remove --force "$work/after" 2>/dev/null || true
  git worktree prune; rm -rf "$work"
}
trap cleanup EXIT
cp "$here/speed_cases.sh" "$work/speed_cases.sh"
git worktree add --detach --quiet "$work/before" "$before"
git worktree add --detach --quiet "$work/after" "$after"
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order="before after"; else order="after before"; fi
  for side in $order; do
    (cd "$work/$side" && bash "$work/speed_cases.sh" "$data" "$ckpts" "$count") | \
      python -c 'import json, sys
for line in sys.stdin:
    d = json.loads(line); d.update(side=sys.argv[1], round=int(sys.argv[2])); print(json.dumps(d), flush=True)' "$side" "$round"
  done
done
