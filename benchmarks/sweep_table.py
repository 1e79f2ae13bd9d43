"""Format precision_sweep.sh's JSON lines as a markdown table (rates in bits/dim, gap in %)."""

from __future__ import annotations

import json
import sys

from mcbits.coding.config import CoderConfig
from mcbits.coding.registry import coder_label

DEFAULTS = CoderConfig()


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    print("| coder | setting | net | ideal (± s.e.) | gap | total | encode+decode s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        changed = [f"{k}={v}" for k, v in r["precisions"].items() if getattr(DEFAULTS, k) != v]
        if not r.get("whiten_prior", True):
            changed.append("no whitening")
        label = coder_label(r["coder"], r["num_particles"])
        ideal = f"{r['ideal_bpd']:.5f} ± {r['ideal_stderr_bpd']:.5f}"
        print(f"| {label} | {', '.join(changed) or 'defaults'} | {r['net_bpd']:.5f} | {ideal} | "
              f"{r['gap_pct']:+.3f}% | {r['total_bpd']:.5f} | {r['encode_s'] + r['decode_s']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
