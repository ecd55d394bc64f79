"""One-command GPU benchmark (issue 11): SwinUNETR M0, 5 paired seeds, FFT vs Seq-FT / MedSeqFT / EWC / LwF.

    PYTHONPATH=. python Testing/benchmarks/gpu_benchmark.py --out gpu_bench        # ~10 min on one H200 (estimate)
    PYTHONPATH=. python Testing/benchmarks/gpu_benchmark.py --out smoke --smoke    # CPU wiring check, ~1 min

What it does, all through the product (``benchmark.run.run_benchmark``):

1. builds the foundation M0 *with the project* (no pretrained weights can be downloaded on the
   device machine): a MONAI SwinUNETR (``use_v2``, feature size 48 = VoCo-B size, legacy patch
   merging) SSL-pretrained for ``--pretrain-steps`` masked-reconstruction steps on the first phantom
   task's images (``demo_foundation.build_foundation``; essentially a random encoder: the numbers say
   nothing about VoCo);
2. generates 2 phantom tasks of 16 cases (64^3 voxels at 3 mm), split 8 train / 8 test;
3. trains fft, seq_ft, medseqft, seq_ewc, seq_lwf with ``--seeds`` (default 5) paired seeds,
   ``--iterations`` steps per stage (LoRA-KD: ``--lora-iterations``), patch 64^3, batch 2, AMP;
4. optionally the FFT plateau curve (``--curve 50,100,200``; costs ~(sum of budgets)/iterations x
   the FFT unit time more);
5. writes OUT/results.md (Table III with the paired-difference CIs and the verdict, large/small
   classes, forgetting matrices, cost) and prints it, plus the wall time.

The run is resumable: rerun the same command to continue after a timeout; ``--tables-only`` only
rewrites the tables. Budget (not measured: the script has not been run on a GPU yet): 25 units x
(2 tasks x ~100 steps at ~0.1 s + evaluation of 8 + 8 cases) ~ 25 x 25 s ~ 10 min; lower
``--iterations`` or ``--seeds`` if the first units' times (printed) say otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

STRATEGIES = "fft,seq_ft,medseqft,seq_ewc,seq_lwf"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_benchmark"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--lora-iterations", type=int, default=30)
    p.add_argument("--pretrain-steps", type=int, default=20)
    p.add_argument("--strategies", default=STRATEGIES)
    p.add_argument("--curve", default="", help="FFT budgets for the plateau curve, e.g. 50,100,200 (default: none)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU wiring check: small U-Net, 2 steps, 1 seed")
    p.add_argument("--tables-only", action="store_true")
    args = p.parse_args(argv)

    import torch

    from MedSeqFTLib.benchmark.curve import load_curve, parse_budgets
    from MedSeqFTLib.benchmark.run import PLAN_FILE, load_results, make_phantoms, run_benchmark
    from MedSeqFTLib.benchmark.settings import BenchmarkSettings
    from MedSeqFTLib.benchmark.strategies import parse_strategies
    from MedSeqFTLib.benchmark.table import write_tables
    from MedSeqFTLib.config import ArchConfig, PreprocessConfig
    from MedSeqFTLib.demo_foundation import build_foundation
    from MedSeqFTLib.io.atomic import read_json
    from MedSeqFTLib.jobs.reporter import ConsoleReporter

    out = args.out
    if args.tables_only:
        tables = write_tables(out, load_results(out), read_json(out / PLAN_FILE), curve=load_curve(out))
        print(Path(tables["markdown"]).read_text(encoding="utf-8"))
        return 0
    t0 = time.perf_counter()
    if args.smoke:
        torch.set_num_threads(1)
        settings = BenchmarkSettings(phantom_tasks=2, phantom_cases=4, phantom_size=24, transfer=False,
                                     train_fraction=0.5, patch_size=16, iterations=2, lora_iterations=2, buffer_k=1,
                                     mds_runs=2, ewc_fisher_batches=2)
        arch, seeds, pre_steps, patch = ArchConfig(name="small_unet", feature_size=4), 1, 2, 16
    else:
        settings = BenchmarkSettings(phantom_tasks=2, phantom_cases=16, phantom_size=64, transfer=False,
                                     train_fraction=0.5, patch_size=64, iterations=args.iterations,
                                     lora_iterations=args.lora_iterations, lr=1e-3, lora_lr=1e-3, batch_size=2,
                                     buffer_k=2, mds_runs=16, ewc_fisher_batches=8)
        arch, seeds, pre_steps, patch = ArchConfig(name="swin_unetr", feature_size=48), args.seeds, args.pretrain_steps, 64
    out.mkdir(parents=True, exist_ok=True)
    reporter = ConsoleReporter()
    datasets, _ = make_phantoms(out, settings, reporter)
    m0 = out / "m0_project_built.safetensors"
    if not m0.is_file():
        pre = PreprocessConfig(spacing=(3.0, 3.0, 3.0), patch_size=(patch,) * 3)
        build_foundation(m0, [datasets[0]], arch=arch, steps=pre_steps, seed=0, patch_size=(patch,) * 3,
                         batch_size=2, preprocess=pre)
        print(f"M0 built ({arch.name}, feature size {arch.feature_size}) in {time.perf_counter() - t0:.0f} s", flush=True)
    res = run_benchmark(out, parse_strategies(args.strategies), list(range(seeds)), settings, datasets=datasets,
                        foundation=str(m0), device=args.device, reporter=reporter,
                        command="python Testing/benchmarks/gpu_benchmark.py " + " ".join(sys.argv[1:]),
                        curve=parse_budgets(args.curve))
    print(Path(res["tables"]["markdown"]).read_text(encoding="utf-8"))
    print(f"wall time {time.perf_counter() - t0:.0f} s; tables in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
