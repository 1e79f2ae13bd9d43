"""Training speed: steps/s of the real training step (batch 20) and the time an epoch would take.

    python benchmarks/train.py                       # N = 1, 5, 50 on the default device
    python benchmarks/train.py --particles 1 50 --steps 500 --device cpu --threads 2
    python benchmarks/train.py --device cuda --compare-graphs   # CUDA graph replay vs eager

An epoch of MNIST/EMNIST-mnist training is 60,000 / 20 = 3,000 steps; the paper profile runs
3,280 epochs. The step is mcbits.vae.train_step's own (fused Adam; a captured CUDA graph on CUDA).
"""

from __future__ import annotations

import argparse
import json

import torch

from mcbits.vae.train_step import benchmark_steps


def main() -> None:
    """Parse arguments, time each configuration, print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, nargs="+", default=[1, 5, 50])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    parser.add_argument("--train-images", type=int, default=60000, help="for the per-epoch estimate")
    parser.add_argument("--epochs", type=int, default=3280, help="for the whole-run estimate")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="time eager steps on CUDA")
    parser.add_argument("--compare-graphs", action="store_true", help="on CUDA: graphs and eager")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    graph_modes = [not args.no_cuda_graphs]
    if args.compare_graphs:
        graph_modes = [True, False]
    steps_per_epoch = args.train_images // args.batch_size
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"{'N':>4} {'device':>8} {'graph':>6} {'steps/s':>9} {'s/epoch':>9} {'h/run':>8}")
    for n in args.particles:
        for graphs in graph_modes:
            row = benchmark_steps(
                n,
                steps=args.steps,
                warmup=args.warmup,
                batch_size=args.batch_size,
                device=args.device,
                cuda_graphs=graphs,
            )
            row["seconds_per_epoch"] = steps_per_epoch / row["steps_per_second"]
            row["hours_per_run"] = row["seconds_per_epoch"] * args.epochs / 3600
            rows.append(row)
            print(
                f"{n:>4} {row['device']:>8} {str(row['cuda_graphs']):>6} "
                f"{row['steps_per_second']:>9.1f} {row['seconds_per_epoch']:>9.1f} "
                f"{row['hours_per_run']:>8.1f}"
            )
            if row["device"] == "cpu":
                break  # graphs exist only on CUDA
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
