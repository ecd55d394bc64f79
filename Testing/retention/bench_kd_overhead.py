"""Benchmark (not a test): seconds per iteration of FFT, KD-FFT and LoRA-KD with the product's stage code.

    python Testing/retention/bench_kd_overhead.py --arch small_unet --feature-size 8 --patch 32 --iters 20
    python Testing/retention/bench_kd_overhead.py --arch swin_unetr --feature-size 48 --patch 160 160 32 \\
        --device cuda --kd-every 1 4 --lora --json kd_overhead.json

Batches are pre-generated random tensors on the device, so the numbers are the training-step
compute of ``retention.fft.train_fft``, ``retention.kd_fft.train_kd_fft`` and
``retention.lora_kd.train_lora_kd`` (data loading excluded; the runner's patch sampler costs the
same per patch for every stage). Each stage runs ``--warmup + --iters`` steps; a reporter stamps
the clock after every step (``torch.cuda.synchronize`` first on CUDA) and s/iter is the mean over
the last ``--iters`` steps (rounded up to a multiple of every ``--kd-every``, so a KD-FFT window
holds its exact share of distillation steps). Peak memory is the stage log's
(``torch.cuda.max_memory_allocated`` on CUDA, reset at the stage start).

``--kd-update`` times KD-FFT with the independent update (two optimisers, the default) and/or
the joint one (one weighted loss); LoRA goes into the backbone's default targets
(``retention.lora_targets = "auto"``).

The last table puts the stages on the paper's per-task schedule (``RetentionConfig()``
defaults: 25,000 FFT steps for task 1, followed by 5,000 LoRA-KD steps and the merge
(``first_task_lora``); 25,000 KD-FFT + 5,000 LoRA-KD steps for a later task) and gives the
K&G/FFT time ratio of one later task and of a 5-task sequence against 5 FFT tasks.
A configuration that fails (e.g. out of memory, or a patch the backbone cannot take) is
reported with its error instead of stopping the script.
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import statistics
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


def _step_clock(device):
    """A ``Reporter`` that records the (device-synchronised) time after every step."""
    import torch

    from MedSeqFTLib.jobs.reporter import Reporter

    class StepClock(Reporter):
        def __init__(self) -> None:
            super().__init__()
            self.stamps: list[float] = []

        def progress(self, stage, task, step, total, losses=None, message=None) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.stamps.append(time.perf_counter())

        def seconds_per_iter(self, last: int) -> tuple[float, float]:
            """(mean, median) of the last ``last`` step durations."""
            d = [b - a for a, b in zip(self.stamps[-last - 1:-1], self.stamps[-last:])]
            return (self.stamps[-1] - self.stamps[-last - 1]) / last, statistics.median(d)

    return StepClock()


def main(argv=None) -> int:
    import torch

    from MedSeqFTLib.config import ArchConfig, RetentionConfig
    from MedSeqFTLib.models.registry import build_segnet, encoder_out_channels, lora_target_kinds
    from MedSeqFTLib.retention.fft import train_fft
    from MedSeqFTLib.retention.kd_fft import train_kd_fft
    from MedSeqFTLib.retention.lora_kd import train_lora_kd
    from MedSeqFTLib.retention.merge import add_lora, merge_lora
    from MedSeqFTLib.retention.trainer import StageSpec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="small_unet")
    p.add_argument("--feature-size", type=int, default=8)
    p.add_argument("--patch", type=int, nargs="+", default=[32], metavar="N",
                   help="patch (X Y Z) in voxels, or one number for a cube")
    p.add_argument("--batch", type=int, default=2, help="task patches per step (FFT, KD-FFT, LoRA-KD)")
    p.add_argument("--kd-batch", type=int, nargs="+", default=[1], help="buffer patches per KD-FFT step")
    p.add_argument("--kd-every", type=int, nargs="+", default=[1], help="RetentionConfig.kd_every values")
    p.add_argument("--kd-update", nargs="+", default=["independent"], choices=["independent", "joint"],
                   help="RetentionConfig.kd_update values")
    p.add_argument("--lora", action="store_true", help="also time LoRA-KD (and one merge)")
    p.add_argument("--lora-rank", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each stage")
    p.add_argument("--iters", type=int, default=20, help="timed steps per stage")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    if len(a.patch) not in (1, 3):
        p.error("--patch takes 1 or 3 numbers")
    patch = tuple(a.patch * 3 if len(a.patch) == 1 else a.patch)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    arch = ArchConfig(a.arch, feature_size=a.feature_size)
    iters = int(math.ceil(a.iters / math.lcm(*a.kd_every)) * math.lcm(*a.kd_every))
    scales = list(range(len(encoder_out_channels(arch))))
    tmp = Path(tempfile.mkdtemp())

    def batches(seed, b):
        gen = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(4):
            img = torch.randn((b, 1, *patch), generator=gen)
            out.append({"image": img.to(dev), "label": (img > 0.5).long().to(dev)})
        return out

    def spec(name):
        return StageSpec(name, "bench", tmp / f"{name}-{time.monotonic_ns()}", a.warmup + iters, 1e-4, 1e-5, 1e9, 0)

    def measure(name, train):
        """Run one stage with a fresh model; returns a result row (or the error)."""
        clock = _step_clock(dev)
        row = {"stage": name}
        try:
            log = train(clock)
            mean, median = clock.seconds_per_iter(iters)
            row.update(s_per_iter=mean, median_s=median, peak_bytes=log.peak_memory_bytes, memory_kind=log.memory_kind)
        except (RuntimeError, ValueError) as exc:  # OOM or a patch the backbone cannot take: report, go on
            row["error"] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300]}"
        finally:
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        print(f"  {name}: {row}", flush=True)
        return row

    def new_net():
        torch.manual_seed(0)
        return build_segnet(arch, 3).to(dev)

    task = batches(1, a.batch)
    rows = [measure("fft", lambda clock: train_fft(new_net(), spec("fft"), lambda s: Fixed(task), clock, dev))]

    for kb in a.kd_batch:
        buf = batches(2, kb)
        for every in a.kd_every:
            for update in a.kd_update:
                def kd(clock, kb=kb, every=every, buf=buf, update=update):
                    net = new_net()
                    teacher = copy.deepcopy(net.encoder)
                    return train_kd_fft(net, teacher, spec("kd"), lambda s: Fixed(task), lambda s: Fixed(buf), clock,
                                        dev, 1.0, scales, kd_every=every, update=update)
                rows.append({**measure(f"kd_fft {update[:5]} b={kb} e={every}", kd), "kd_batch": kb,
                             "kd_every": every, "kd_update": update})

    merge_s = None
    if a.lora:
        def lora(clock):
            nonlocal merge_s
            net = new_net()
            student = add_lora(copy.deepcopy(net.encoder), a.lora_rank, float(a.lora_rank),
                               kinds=lora_target_kinds(arch)).to(dev)
            log = train_lora_kd(student, net.encoder, spec("lora"), lambda s: Fixed(task), clock, dev, scales)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            merge_lora(student)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            merge_s = time.perf_counter() - t
            return log
        rows.append(measure(f"lora_kd r={a.lora_rank}", lora))

    title = (f"{a.arch} f={a.feature_size} patch {'x'.join(map(str, patch))} (X Y Z) batch {a.batch} on {dev}"
             f"{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}; "
             f"{a.warmup} warm-up + {iters} timed steps per stage, torch {torch.__version__}")
    print(title)
    base = rows[0].get("s_per_iter")
    print(f"{'stage':<24}{'s/iter':>9}{'median':>9}{'vs FFT':>8}{'peak MiB':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['stage']:<24}  failed: {r['error']}")
            continue
        ratio = f"{r['s_per_iter'] / base:.2f}" if base else "-"
        print(f"{r['stage']:<24}{r['s_per_iter']:>9.4f}{r['median_s']:>9.4f}{ratio:>8}{r['peak_bytes'] / 2**20:>10.0f}")
    if merge_s is not None:
        print(f"merge (once per task): {merge_s:.3f} s")

    schedule = []
    lora_row = next((r for r in rows if r["stage"].startswith("lora_kd") and "error" not in r), None)
    if base and lora_row:
        rc = RetentionConfig()
        n_fft, n_kd, n_lora = rc.fft.iterations, rc.kd_fft.iterations, rc.lora_kd.iterations
        print(f"paper schedule per task: FFT {n_fft} steps vs K&G = KD-FFT {n_kd} + LoRA-KD {n_lora} steps + merge "
              f"(task 1: FFT {n_fft} + LoRA-KD {n_lora} + merge)")
        print(f"{'K&G variant':<24}{'FFT h':>8}{'K&G h':>8}{'task ratio':>12}{'5-task ratio':>14}")
        for r in rows:
            if not r["stage"].startswith("kd_fft") or "error" in r:
                continue
            fft_s = n_fft * base
            kg_s = n_kd * r["s_per_iter"] + n_lora * lora_row["s_per_iter"] + (merge_s or 0.0)
            ratio = kg_s / fft_s
            first_s = fft_s + n_lora * lora_row["s_per_iter"] + (merge_s or 0.0)  # task 1: FFT + LoRA-KD + merge
            five = (first_s + 4 * kg_s) / (5 * fft_s)
            schedule.append({"variant": r["stage"], "fft_h": fft_s / 3600, "kg_h": kg_s / 3600, "task_ratio": ratio,
                             "five_task_ratio": five})
            print(f"{r['stage']:<24}{fft_s / 3600:>8.2f}{kg_s / 3600:>8.2f}{ratio:>12.3f}{five:>14.3f}")
    if a.json:
        from MedSeqFTLib.io.atomic import atomic_write_json

        atomic_write_json(a.json, {"title": title, "arch": a.arch, "feature_size": a.feature_size, "patch_xyz": list(patch),
                                   "batch": a.batch, "warmup": a.warmup, "iters": iters, "device": str(dev),
                                   "rows": rows, "merge_s": merge_s, "schedule": schedule})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
