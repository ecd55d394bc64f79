"""Benchmark (not a test): seconds per iteration of KD-FFT vs plain FFT with the product's stage code.

    python Testing/retention/bench_kd_overhead.py --arch small_unet --feature-size 8 --patch 32 --iters 20
    python Testing/retention/bench_kd_overhead.py --arch swin_unetr --feature-size 48 --patch 96 --device cuda

Batches are pre-generated random tensors on the device, so the numbers are the training-step
compute of ``retention.fft.train_fft`` and ``retention.kd_fft.train_kd_fft`` (data loading
excluded; the runner's patch sampler costs the same per patch for both). Prints one table.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


class Fixed:
    """Cycles through a few pre-made device batches."""

    def __init__(self, batches):
        self.batches, self.i = batches, 0

    def next_batch(self):
        self.i += 1
        return self.batches[self.i % len(self.batches)]


def main(argv=None) -> int:
    import torch

    from MedSeqFTLib.config import ArchConfig
    from MedSeqFTLib.jobs.reporter import NullReporter
    from MedSeqFTLib.models.registry import build_segnet, encoder_out_channels
    from MedSeqFTLib.retention.fft import train_fft
    from MedSeqFTLib.retention.kd_fft import train_kd_fft
    from MedSeqFTLib.retention.trainer import StageSpec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="small_unet")
    p.add_argument("--feature-size", type=int, default=8)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--kd-batch", type=int, nargs="+", default=[1, 2])
    p.add_argument("--kd-every", type=int, default=1)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    arch = ArchConfig(a.arch, feature_size=a.feature_size)
    shape = (1, a.patch, a.patch, a.patch)

    def batches(n, b):
        gen = torch.Generator().manual_seed(n)
        out = []
        for _ in range(4):
            img = torch.randn((b, *shape), generator=gen)
            out.append({"image": img.to(dev), "label": (img > 0.5).long().to(dev)})
        return out

    task = batches(1, a.batch)
    tmp = Path(tempfile.mkdtemp())

    def spec(name, iters):
        return StageSpec(name, "bench", tmp / f"{name}-{time.monotonic_ns()}", iters, 1e-4, 1e-5, 1e9, 0)

    def run(kd_batch):
        torch.manual_seed(0)
        net = build_segnet(arch, 3).to(dev)
        if kd_batch == 0:
            train_fft(net, spec("fft", 3), lambda s: Fixed(task), NullReporter(), dev)  # warm-up
            log = train_fft(net, spec("fft", a.iters), lambda s: Fixed(task), NullReporter(), dev)
        else:
            teacher = copy.deepcopy(net.encoder)
            buf = batches(2, kd_batch)
            scales = list(range(len(encoder_out_channels(arch))))
            args = (lambda s: Fixed(task), lambda s: Fixed(buf), NullReporter(), dev, 1.0, scales)
            kw = {"kd_every": a.kd_every}
            train_kd_fft(net, teacher, spec("kd", 3), *args, **kw)
            log = train_kd_fft(net, teacher, spec("kd", a.iters), *args, **kw)
        return log.time_s / a.iters, log.peak_memory_bytes

    base, base_mem = run(0)
    print(f"{a.arch} f={a.feature_size} patch {a.patch}^3 batch {a.batch} on {dev} ({a.iters} iterations)")
    print(f"{'stage':<16}{'s/iter':>10}{'vs FFT':>9}{'peak MiB':>10}")
    print(f"{'fft':<16}{base:>10.4f}{'1.00':>9}{base_mem / 2**20:>10.0f}")
    for kb in a.kd_batch:
        t, mem = run(kb)
        print(f"{f'kd_fft b={kb} e={a.kd_every}':<16}{t:>10.4f}{t / base:>9.2f}{mem / 2**20:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
