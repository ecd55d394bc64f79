"""``medseqft benchmark``: fine-tuning strategies side by side (the paper's Table III on your data)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..benchmark.settings import DEFAULT_SEEDS
from .options import add_device_argument

HELP = "compare fine-tuning strategies (TFS, FFT, PEFT, Seq-FT, +Random, +MDS, +K&G, MedSeqFT, joint, transfer)"
DESCRIPTION = (HELP + ". Every strategy is a product workspace trained with the same budget per stage and the same "
               "data splits; results go to OUT/results.md, results.csv, summary.csv and benchmark.png. Rerunning with "
               "the same --out continues an interrupted benchmark and reuses finished (strategy, seed) runs.")
JOB = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", nargs="+", type=Path, metavar="DIR",
                   help="task datasets in sequence order (nnU-Net v2 / MSD / plain); default: generated phantom tasks")
    p.add_argument("--transfer-task", type=Path, metavar="DIR",
                   help="unseen task for the transfer experiment (default with phantoms: one extra phantom task)")
    p.add_argument("--strategies", default="all",
                   help="comma list of tfs,fft,lora_r2,lora_r8,head_only,seq_ft,seq_random,seq_mds,seq_kg,medseqft,"
                        "seq_ewc,seq_lwf,joint,transfer or 'all' (default)")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"number of seeds 0..N-1 (default {DEFAULT_SEEDS}; fewer makes the bootstrap CIs untrustworthy)")
    p.add_argument("--curve", metavar="B1,B2,...",
                   help="also run parallel FFT with these steps per task and tabulate its test Dice per budget "
                        "(the plateau curve, OUT/fft_curve.png)")
    fs = p.add_argument_group("few-shot benchmark (adapter task mode, docs/fewshot.md)")
    fs.add_argument("--fewshot", action="store_true",
                    help="instead of the strategy comparison: learn an unseen task from k volumes with every adapter "
                         "method, attached to M0 and to the refined M_T of the sequence")
    fs.add_argument("--shots", default="1,5,10", metavar="K1,K2,...", help="labelled volumes per run (default 1,5,10)")
    fs.add_argument("--draws", type=int, default=3, help="support draws per k (default 3)")
    fs.add_argument("--methods", default="all", help="comma list of few-shot methods or 'all' (default)")
    p.add_argument("--out", type=Path, default=Path("medseqft_benchmark"), help="output folder (default ./medseqft_benchmark)")
    p.add_argument("--preset", default="cpu", help="cpu (default: 16 cases per task, 8 of them test) | gpu | "
                                                   "cpu_old (the pre-issue-11 recipe) | tiny (tests)")
    p.add_argument("--iterations", type=int, help="steps of every FFT / KD-FFT / PEFT stage (overrides the preset)")
    p.add_argument("--lora-iterations", type=int, help="steps of the LoRA-KD stage (overrides the preset)")
    p.add_argument("--lr", type=float, help="learning rate of FFT / KD-FFT / PEFT / joint (overrides the preset)")
    p.add_argument("--kd-weight", type=float, help="weight of the buffer distillation loss (overrides the preset)")
    p.add_argument("--buffer-k", type=int, help="buffer cases per task (overrides the preset)")
    p.add_argument("--patch-size", type=int, help="training patch edge in voxels (overrides the preset; SwinUNETR: a "
                                                  "multiple of 32)")
    p.add_argument("--foundation", default="demo", help="demo (the cached demo M0) or a foundation file")
    add_device_argument(p)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--tables-only", action="store_true",
                   help="only rewrite the tables from the runs finished so far in --out (no training)")


def job_root(args):
    if getattr(args, "tables_only", False) and not (Path(args.out) / "benchmark.json").is_file():
        return None  # bad input: do not create a folder for it
    return Path(args.out) / "jobs"


def run(args, reporter) -> int:
    from ..errors import InputError
    from ..benchmark.run import run_benchmark
    from ..benchmark.settings import bench_preset
    from ..benchmark.strategies import parse_strategies

    if args.tables_only:
        return _tables_only(Path(args.out))
    if args.seeds < 1:
        raise InputError("--seeds", f"must be >= 1, got {args.seeds}")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads", f"must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    settings = bench_preset(args.preset, iterations=args.iterations, lora_iterations=args.lora_iterations, lr=args.lr,
                            kd_weight=args.kd_weight, buffer_k=args.buffer_k, patch_size=args.patch_size)
    if args.fewshot:
        return _fewshot(args, settings, reporter)
    strategies = parse_strategies(args.strategies)
    from ..benchmark.curve import parse_budgets

    budgets = parse_budgets(getattr(args, "curve", None))
    for d in list(args.tasks or []) + ([args.transfer_task] if args.transfer_task else []):
        if not Path(d).is_dir():
            raise InputError(d, "task dataset folder not found")
    res = run_benchmark(args.out, strategies, list(range(args.seeds)), settings, datasets=args.tasks,
                        transfer_dataset=args.transfer_task, foundation=args.foundation, device=args.device,
                        reporter=reporter, command="medseqft " + " ".join(getattr(args, "_argv", []) or []),
                        curve=budgets)
    print(Path(res["tables"]["markdown"]).read_text(encoding="utf-8"))
    print(f"written: {res['tables']['markdown']}, {res['tables']['csv']}, {res['tables']['summary_csv']}, "
          f"{res['tables']['plot']} ({res['seconds']:.0f} s)")
    return 0


def _tables_only(out: Path) -> int:
    from ..errors import InputError
    from ..benchmark.run import PLAN_FILE, load_results
    from ..benchmark.table import write_tables
    from ..io.atomic import read_json

    if not (out / PLAN_FILE).is_file():
        raise InputError(out, f"no benchmark here (no {PLAN_FILE}); run 'medseqft benchmark --out {out}' first")
    from ..benchmark.curve import load_curve

    tables = write_tables(out, load_results(out), read_json(out / PLAN_FILE), curve=load_curve(out))
    print(Path(tables["markdown"]).read_text(encoding="utf-8"))
    return 0


def _fewshot(args, settings, reporter) -> int:
    from ..benchmark.fewshot import parse_methods, parse_shots, run_fewshot_benchmark

    doc = run_fewshot_benchmark(args.out, parse_shots(args.shots), args.draws, parse_methods(args.methods), settings,
                                foundation=args.foundation, device=args.device, reporter=reporter,
                                command="medseqft " + " ".join(getattr(args, "_argv", []) or []))
    print(Path(doc["tables"]["markdown"]).read_text(encoding="utf-8"))
    print(f"written: {doc['tables']['markdown']}, {doc['tables']['csv']}, {doc['tables']['plot']} ({doc['seconds']:.0f} s)")
    return 0
