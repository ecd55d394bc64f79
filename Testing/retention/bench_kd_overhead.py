"""Benchmark (not a test): K&G RFT's training overhead against FFT, per step and on each preset's 5-task schedule.

    # CPU (docs/overhead.md, tables 1 and 3): small U-Net, the cpu preset's patch, process CPU time
    OMP_NUM_THREADS=1 PYTHONPATH=. python Testing/retention/bench_kd_overhead.py --patch 48 \\
        --kd-every 1 2 4 8 --kd-update independent joint --lora --rounds 3 --iters 24 --clock process
    # GPU (the GPU column): SwinUNETR-B at the paper's patch, bf16 autocast, wall clock behind cuda.synchronize
    PYTHONPATH=. python Testing/retention/bench_kd_overhead.py --arch swin_unetr --feature-size 48 \\
        --patch 160 160 32 --device cuda --amp auto --kd-every 1 2 4 8 --kd-update independent joint \\
        --fuse on off --lora --rounds 2 --warmup 8 --iters 24 --json kd_overhead_gpu.json

Runs the product's stage functions (``retention.fft.train_fft``, ``retention.kd_fft.train_kd_fft``,
``retention.lora_kd.train_lora_kd``, then one ``merge.merge_lora``) on pre-made random batches
already on the device, so the numbers are the training-step compute (data loading excluded; the
patch sampler costs the same per patch for every stage). Each configuration runs ``--warmup``
untimed + ``--iters`` timed steps (rounded up to a multiple of every ``--kd-every``, so a KD-FFT
window holds its exact share of distillation steps); a reporter stamps the clock after every step
(``torch.cuda.synchronize`` first on CUDA). ``--rounds`` repeats every configuration in turn
(round-robin, the order rotated each round) and the table gives the median over rounds of s/iter
and of the ratio to the same round's FFT, so slow drifts of a shared machine cancel. Two estimates
of s/iter: the mean over the timed window, and a median model robust to load spikes, (median
distillation step + (kd_every - 1) x median plain step) / kd_every. With ``kd_every`` > 1 a run also
holds plain steps, which do an FFT step's work: ``q`` = median distillation step / median plain step
of the same run gives the ratio ``1 + (q - 1) / kd_every`` without comparing runs minutes apart (the
steadiest estimate on a shared machine; the schedule table uses it where there is one).
``--clock process`` counts this process's CPU time instead of wall time (1 thread: what other
processes on a shared machine do barely shows; CPU only).

``--fuse`` times KD-FFT with one student forward on ``cat([x_t, x_b])`` (``on``), two forwards
(``off``) or the product's rule (``auto``, ``kd_fft.fuse_default``). The recipe is the product's
(gradient clipping ``--clip``, default 12, constant lr; ``--amp`` on CUDA).

The last table puts the measured ratios on each preset's schedule (``presets.PRESETS``: FFT,
KD-FFT and LoRA-KD iterations, ``first_task_lora``, ``kd_update``): a later task is KD-FFT +
LoRA-KD + merge, task 1 FFT (+ LoRA-KD + merge where ``first_task_lora``); the 5-task ratio is
(task 1 + 4 later tasks) / (5 FFT tasks). It is computed from the step times, not timed end to end.
A configuration that fails (out of memory, a patch the backbone cannot take) is reported with its
error instead of stopping the script.
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

FUSE = {"auto": None, "on": True, "off": False}


class Fixed:
    """Cycles through a few pre-made device batches."""

    def __init__(self, batches):
        self.batches, self.i = batches, 0

    def next_batch(self):
        self.i += 1
        return self.batches[self.i % len(self.batches)]


def _step_clock(device, clock: str):
    """A ``Reporter`` that records the (device-synchronised) time after every step."""
    import torch

    from MedSeqFTLib.jobs.reporter import Reporter

    now = time.process_time if clock == "process" else time.perf_counter

    class StepClock(Reporter):
        def __init__(self) -> None:
            super().__init__()
            self.stamps: list[float] = []

        def progress(self, stage, task, step, total, losses=None, message=None) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.stamps.append(now())

        def seconds_per_iter(self, last: int) -> float:
            """Mean over the last ``last`` steps."""
            return (self.stamps[-1] - self.stamps[-last - 1]) / last

        def medians(self, last: int, every: int) -> tuple[float, float | None]:
            """(median distillation step, median plain step or None) over the last ``last`` steps (a
            step's index is its position in the stage; distillation on ``index % every == 0``)."""
            total = len(self.stamps)
            d = {j: self.stamps[j] - self.stamps[j - 1] for j in range(total - last, total)}
            kd = statistics.median(v for j, v in d.items() if j % every == 0)
            return kd, (statistics.median(v for j, v in d.items() if j % every) if every > 1 else None)

    return StepClock()


def _within(runs: list, every: int) -> dict:
    """``q`` (distillation step / plain step in the same run) and the ratio ``1 + (q - 1) / every``:
    median and range over the runs; empty without plain steps (``every == 1``, FFT, LoRA-KD)."""
    qs = [r["kd_step_over_plain"] for r in runs if r.get("kd_step_over_plain")]
    if not qs:
        return {}
    ratios = [1 + (q - 1) / every for q in qs]
    return {"q": statistics.median(qs), "ratio_within": statistics.median(ratios),
            "ratio_within_range": [min(ratios), max(ratios)]}


def schedule_ratios(r_kd: float, r_lora: float, merge_steps: float, rc) -> tuple[float, float]:
    """(later-task ratio, 5-task ratio) of K&G vs FFT from step-time ratios to FFT.

    ``r_kd``, ``r_lora``: KD-FFT and LoRA-KD s/iter over FFT s/iter; ``merge_steps``: one merge in
    FFT steps; ``rc``: the preset's ``RetentionConfig``.
    """
    n_fft, n_kd, n_lora = rc.fft.iterations, rc.kd_fft.iterations, rc.lora_kd.iterations
    lora = (n_lora * r_lora + merge_steps) if rc.lora_stage else 0.0
    later = n_kd * r_kd + lora
    first = n_fft + (lora if rc.lora_on_first_task() else 0.0)
    return later / n_fft, (first + 4 * later) / (5 * n_fft)


def main(argv=None) -> int:
    import torch

    from MedSeqFTLib.config import ArchConfig, RecipeConfig
    from MedSeqFTLib.models.registry import build_segnet, encoder_out_channels, lora_target_kinds
    from MedSeqFTLib.presets import PRESETS
    from MedSeqFTLib.retention.fft import train_fft
    from MedSeqFTLib.retention.kd_fft import fuse_default, train_kd_fft
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
    p.add_argument("--fuse", nargs="+", default=["auto"], choices=list(FUSE),
                   help="one student forward on task + buffer patches (on), two (off), or the product's rule (auto)")
    p.add_argument("--lora", action="store_true", help="also time LoRA-KD (and one merge)")
    p.add_argument("--lora-rank", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    p.add_argument("--iters", type=int, default=16, help="timed steps per run")
    p.add_argument("--rounds", type=int, default=1, help="round-robin repeats of every configuration")
    p.add_argument("--clock", choices=["wall", "process"], default="wall",
                   help="wall time, or this process's CPU time (CPU only)")
    p.add_argument("--clip", type=float, default=12.0, help="gradient-norm clipping (the product's recipe: 12)")
    p.add_argument("--amp", default="off", choices=["off", "auto", "bf16", "fp16"], help="autocast on CUDA")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    if len(a.patch) not in (1, 3):
        p.error("--patch takes 1 or 3 numbers")
    dev = torch.device(a.device)
    if a.clock == "process" and dev.type == "cuda":
        p.error("--clock process measures CPU time; use --clock wall on CUDA")
    patch = tuple(a.patch * 3 if len(a.patch) == 1 else a.patch)
    torch.set_num_threads(a.threads)
    arch = ArchConfig(a.arch, feature_size=a.feature_size)
    iters = int(math.ceil(a.iters / math.lcm(*a.kd_every)) * math.lcm(*a.kd_every))
    scales = list(range(len(encoder_out_channels(arch))))
    recipe = RecipeConfig(schedule="constant", grad_clip=a.clip, amp=a.amp)
    tmp = Path(tempfile.mkdtemp())

    def batches(seed, b):
        gen = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(4):
            img = torch.randn((b, 1, *patch), generator=gen)
            out.append({"image": img.to(dev), "label": (img > 0.5).long().to(dev)})
        return out

    def spec(name):
        return StageSpec(name, "bench", tmp / f"{name}-{time.monotonic_ns()}", a.warmup + iters, 1e-4, 1e-5, 1e9, 0,
                         recipe=recipe)

    def new_net():
        torch.manual_seed(0)
        return build_segnet(arch, 3).to(dev)

    task = batches(1, a.batch)
    merge_s: list[float] = []
    configs = {"fft": (lambda clock: train_fft(new_net(), spec("fft"), lambda s: Fixed(task), clock, dev), {})}
    for kb in a.kd_batch:
        buf = batches(2, kb)
        for every in a.kd_every:
            for update in a.kd_update:
                for fuse in a.fuse:
                    def kd(clock, buf=buf, every=every, update=update, fuse=fuse):
                        net = new_net()
                        return train_kd_fft(net, copy.deepcopy(net.encoder), spec("kd"), lambda s: Fixed(task),
                                            lambda s: Fixed(buf), clock, dev, 1.0, scales, kd_every=every,
                                            update=update, fuse=FUSE[fuse])
                    fused = fuse_default(dev, update) if fuse == "auto" else fuse == "on"
                    name = f"kd_fft {update[:5]} b{kb} e{every} {'fused' if fused else 'two fwd'}"
                    if name not in configs:  # "auto" is "on" or "off"
                        configs[name] = (kd, {"kd_batch": kb, "kd_every": every, "kd_update": update,
                                              "fused": fused})
    if a.lora:
        def lora(clock):
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
            merge_s.append(time.perf_counter() - t)
            return log
        configs[f"lora_kd r{a.lora_rank}"] = (lora, {})

    runs: dict = {name: [] for name in configs}
    errors: dict = {}
    names = list(configs)
    for rnd in range(a.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            if name in errors:
                continue
            clock = _step_clock(dev, a.clock)
            try:
                log = configs[name][0](clock)
                every = configs[name][1].get("kd_every", 1)
                kd_med, plain_med = clock.medians(iters, every)
                runs[name].append({"s_per_iter": clock.seconds_per_iter(iters), "round": rnd,
                                   "s_median_model": (kd_med + (every - 1) * (plain_med or 0.0)) / every,
                                   "kd_step_over_plain": kd_med / plain_med if plain_med else None,
                                   "peak_bytes": log.peak_memory_bytes, "memory_kind": log.memory_kind})
            except (RuntimeError, ValueError) as exc:  # OOM or a patch the backbone cannot take: report, go on
                errors[name] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300]}"
            finally:
                gc.collect()
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            print(f"  round {rnd + 1} {name}: {runs[name][-1]['s_per_iter']:.4f} s/iter (mean), "
                  f"{runs[name][-1]['s_median_model']:.4f} (median model)"
                  if name not in errors else f"  {name}: {errors[name]}", flush=True)

    fft_by_round = {r["round"]: r for r in runs["fft"]}
    rows = []
    for name, rs in runs.items():
        row = {"stage": name, **configs[name][1]}
        if name in errors:
            row["error"] = errors[name]
        elif rs:
            ratios = [r["s_per_iter"] / fft_by_round[r["round"]]["s_per_iter"] for r in rs
                      if r["round"] in fft_by_round]
            robust = [r["s_median_model"] / fft_by_round[r["round"]]["s_median_model"] for r in rs
                      if r["round"] in fft_by_round]
            row.update(s_per_iter=statistics.median(r["s_per_iter"] for r in rs),
                       s_median_model=statistics.median(r["s_median_model"] for r in rs),
                       ratio_mean=statistics.median(ratios) if ratios else None,
                       ratio_mean_range=[min(ratios), max(ratios)] if ratios else None,
                       ratio=statistics.median(robust) if robust else None,
                       ratio_range=[min(robust), max(robust)] if robust else None,
                       **_within(rs, configs[name][1].get("kd_every", 1)),
                       peak_bytes=max(r["peak_bytes"] for r in rs), memory_kind=rs[0]["memory_kind"], rounds=len(rs))
        rows.append(row)

    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    title = (f"{a.arch} f{a.feature_size}, patch {'x'.join(map(str, patch))} (X Y Z), batch {a.batch}, {dev}{gpu}, "
             f"{a.clock} clock, {a.threads} thread(s), clip {a.clip}, amp {a.amp}; {a.warmup} warm-up + {iters} "
             f"timed steps, {a.rounds} round(s); torch {torch.__version__}")
    print("\n" + title + "\n")
    print("s/iter: mean over the timed window; median model: (median distillation step + (kd_every - 1) x median "
          "plain step) / kd_every. Ratios: each round against the same round's FFT, median (range) over rounds.\n")
    print("Within one run (kd_every > 1): q = median distillation step / median plain step of the same run, "
          "ratio 1 + (q - 1) / kd_every (a plain KD-FFT step does an FFT step's work).\n")
    print("| stage | s/iter (mean) | vs FFT (mean) | s/iter (median model) | vs FFT (median model) | range | "
          "q (same run) | ratio from q | range | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['stage']} | failed: {r['error']} | | | | | | | | |")
        elif "s_per_iter" in r:
            lo, hi = r["ratio_range"] or (float("nan"),) * 2
            within = (f"{r['q']:.3f} | {r['ratio_within']:.3f} | {r['ratio_within_range'][0]:.3f}-"
                      f"{r['ratio_within_range'][1]:.3f}") if r.get("q") else "- | - | -"
            print(f"| {r['stage']} | {r['s_per_iter']:.4f} | {r['ratio_mean']:.3f} | {r['s_median_model']:.4f} | "
                  f"{r['ratio']:.3f} | {lo:.3f}-{hi:.3f} | {within} | {r['peak_bytes'] / 2**20:.0f} |")
    merge_med = statistics.median(merge_s) if merge_s else None
    if merge_med is not None:
        print(f"\nmerge (once per task): {merge_med:.3f} s (wall)")

    schedule = []
    lora_row = next((r for r in rows if r["stage"].startswith("lora_kd") and r.get("ratio")), None)
    fft_s = next((r.get("s_median_model") for r in rows if r["stage"] == "fft"), None)
    if lora_row and fft_s:
        merge_steps = (merge_med or 0.0) / fft_s
        print("\nSchedules (computed from the ratios above, not timed end to end: KD-FFT 'ratio from q' where there "
              "is one, else the median model; LoRA-KD the median model): a later task = KD-FFT + LoRA-KD + merge, "
              "task 1 = FFT (+ LoRA-KD + merge where first_task_lora)\n")
        print("| preset (iterations FFT / KD-FFT / LoRA-KD, task-1 LoRA, update) | KD-FFT variant "
              "| later task / FFT task | 5 tasks / 5 FFT tasks |")
        print("|---|---|---|---|")
        for pname, make in PRESETS.items():
            rc = make().retention
            for r in rows:
                if not r["stage"].startswith("kd_fft") or not r.get("ratio") or r["kd_update"] != rc.kd_update:
                    continue
                task_r, five = schedule_ratios(r.get("ratio_within") or r["ratio"], lora_row["ratio"], merge_steps, rc)
                schedule.append({"preset": pname, "variant": r["stage"], "task_ratio": task_r, "five_task_ratio": five})
                print(f"| {pname} ({rc.fft.iterations} / {rc.kd_fft.iterations} / {rc.lora_kd.iterations}, "
                      f"{'yes' if rc.lora_on_first_task() else 'no'}, {rc.kd_update}) | {r['stage']} | {task_r:.3f} | "
                      f"{five:.3f} |")
    if a.json:
        from MedSeqFTLib.io.atomic import atomic_write_json

        atomic_write_json(a.json, {"title": title, "args": {k: (str(v) if isinstance(v, Path) else v)
                                                            for k, v in vars(a).items()},
                                   "iters": iters, "rows": rows, "runs": runs, "merge_s": merge_s,
                                   "schedule": schedule})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
