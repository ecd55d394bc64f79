"""Step time and scaling of the training loop under torch.distributed: a table for a multi-GPU machine.

Usage (one node; the script starts the processes itself, one per GPU, NCCL):

    python Testing/benchmarks/ddp_gpu_check.py --device cuda --worlds 1,2,4,8 --arch swin_unetr --feature-size 48 \
        --patch 96 --batch 2 --steps 30

On the CPU (Gloo; what the numbers in docs/scale_out.md were measured with):

    OMP_NUM_THREADS=1 python Testing/benchmarks/ddp_gpu_check.py --device cpu --worlds 1,2 --patch 32 --steps 8

Each world size trains one FFT stage (``retention.trainer.run_stage``: Dice+CE, AdamW, gradient
averaging after each backward) on random volumes with ``--batch`` patches per rank, and prints
the median step time (after ``--warmup`` steps), samples per second over all ranks, and the
scaling efficiency against one process (``samples/s(N) / (N * samples/s(1))``). It also checks
that the ranks' parameters are identical after the run. Prints a table; asserts nothing timed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


class _Random:
    def __init__(self, seed, batch, patch, classes):
        self.seed, self.batch, self.patch, self.classes = seed, batch, patch, classes

    def batch_at(self, i):
        import torch

        g = torch.Generator().manual_seed(self.seed * 100003 + i)
        shape = (self.batch, 1) + (self.patch,) * 3
        return {"image": torch.randn(shape, generator=g), "label": torch.randint(0, self.classes, shape, generator=g)}


def _worker(rank, world, port, args, out):
    import torch
    import torch.distributed as dist

    from MedSeqFTLib.config import ArchConfig
    from MedSeqFTLib.jobs.reporter import NullReporter
    from MedSeqFTLib.models.registry import build_segnet
    from MedSeqFTLib.retention.batches import to_device
    from MedSeqFTLib.retention.losses import segmentation_loss
    from MedSeqFTLib.retention.trainer import StageSpec, run_stage

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    else:
        torch.set_num_threads(max(1, args.threads))
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    dev = torch.device("cuda", rank) if cuda else torch.device("cpu")
    torch.manual_seed(0)
    net = build_segnet(ArchConfig(name=args.arch, feature_size=args.feature_size), 3).to(dev)
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    loss_fn = segmentation_loss()
    times = []

    def make_step(start, streams):
        stream = streams(lambda seed: _Random(seed, args.batch, args.patch, 3), "task-batches")

        def step(_):
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            image, label = to_device(stream.next_batch(), dev)
            loss = loss_fn(net.head(net.decoder(net.encoder(image))), label)
            return loss, {"seg": float(loss.detach())}

        return step

    from MedSeqFTLib.config import RecipeConfig

    recipe = RecipeConfig(schedule="constant", grad_clip=12.0, amp="auto" if cuda else "off")
    spec = StageSpec(stage="fft", task="bench", folder=Path(out) / f"w{world}", iterations=args.steps + 1, lr=1e-4,
                     weight_decay=1e-5, checkpoint_every_s=1e9, seed=1, recipe=recipe)
    run_stage(spec, params, make_step, NullReporter(), dev, modules=(net,))
    steps = [b - a for a, b in zip(times, times[1:])][args.warmup:]
    digest = torch.stack([p.detach().double().sum() for p in params.values()]).sum().reshape(1).to(dev)
    gathered = [torch.zeros_like(digest) for _ in range(world)]
    dist.all_gather(gathered, digest)
    if rank == 0:
        same = len({float(g) for g in gathered}) == 1
        Path(out, f"r{world}.txt").write_text(f"{statistics.median(steps)} {same}")
    dist.destroy_process_group()


def main(argv=None) -> int:
    import torch
    import torch.multiprocessing as mp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--worlds", default="1,2", help="comma-separated process counts")
    p.add_argument("--arch", default="small_unet")
    p.add_argument("--feature-size", type=int, default=8)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--batch", type=int, default=2, help="patches per rank")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per rank (cpu only)")
    args = p.parse_args(argv)
    worlds = [int(w) for w in args.worlds.split(",")]
    if args.device == "cuda" and max(worlds) > torch.cuda.device_count():
        print(f"only {torch.cuda.device_count()} GPU(s); drop world sizes above that", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for w in worlds:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.spawn(_worker, args=(w, port, args, out), nprocs=w, join=True)
            t, same = Path(out, f"r{w}.txt").read_text().split()
            rows.append((w, float(t), same == "True"))
    base = args.batch / rows[0][1] / rows[0][0]
    print(f"{args.device} {args.arch} f{args.feature_size} patch {args.patch}^3, batch {args.batch}/rank, "
          f"{args.steps} steps (median after {args.warmup})")
    print("| processes | global batch | step s | samples/s | efficiency | replicas equal |")
    print("|---|---|---|---|---|---|")
    for w, t, same in rows:
        sps = w * args.batch / t
        print(f"| {w} | {w * args.batch} | {t:.3f} | {sps:.2f} | {sps / (w * base):.2f} | {same} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
