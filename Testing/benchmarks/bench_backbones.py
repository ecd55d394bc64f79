"""Training-step time of the backbones on this machine's CPU (prints a Markdown table).

One step = forward + DiceCE loss + backward + AdamW update on a batch of random volumes.
The first step is a warm-up; the table gives the median and min of the timed steps.

    .venv/bin/python Testing/benchmarks/bench_backbones.py [--threads 2] [--steps 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

CASES = [  # (arch name, feature size, cubic patch edge)
    ("small_unet", 8, 32),
    ("small_unet", 8, 48),
    ("small_unet", 16, 32),
    ("small_unet", 16, 48),
    ("swin_unetr", 12, 64),
]


def time_steps(name: str, feature: int, edge: int, steps: int, batch: int = 2, n_classes: int = 3) -> list[float]:
    import torch
    from monai.losses import DiceCELoss

    from MedSeqFTLib.config import ArchConfig
    from MedSeqFTLib.models.registry import build_segnet

    torch.manual_seed(0)
    net = build_segnet(ArchConfig(name=name, feature_size=feature), n_classes).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x = torch.randn(batch, 1, edge, edge, edge)
    y = torch.randint(0, n_classes, (batch, 1, edge, edge, edge))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in net.parameters())
    return times[1:], n_params


def main(argv=None) -> None:
    import os

    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="small U-Net cases only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load average {load:.1f} at start")
    print()
    print("| backbone | feature | patch | batch | params | step median (s) | step min (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, feature, edge in CASES:
        if args.quick and name != "small_unet":
            continue
        times, n_params = time_steps(name, feature, edge, args.steps)
        print(f"| {name} | {feature} | {edge}^3 | 2 | {n_params / 1e6:.2f} M | {statistics.median(times):.2f} | {min(times):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
