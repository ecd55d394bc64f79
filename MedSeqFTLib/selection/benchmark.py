"""MDS benchmark: fixed R runs per case versus adaptive stopping, on a phantom task.

    python -m MedSeqFTLib.selection.benchmark [--cases 40] [--runs 1000] [--device auto] [--json OUT]

Scores every case of one generated phantom task with M0 (default: the demo foundation
model) four ways and prints a Markdown table:

* ``fixed``: R runs per case (the paper's procedure; the reference ranking);
* ``fixed (seed+1)``: R runs again with independent randomness: how reproducible the
  reference itself is (the ceiling for any cheaper method);
* ``adaptive``: successive elimination (``selection.adaptive``) with the same seed; its runs
  of a case are the first runs of ``fixed``;
* ``adaptive (seed+1)``: the same with independent randomness (the honest comparison).

Columns: SSL loss evaluations ("forward passes", case-views), batched calls, wall time, top-K
Jaccard and Kendall tau (``scipy.stats.kendalltau``) of the mean losses against ``fixed``.
``--save-volumes`` / ``--volumes`` keep the preprocessed cases in an ``.npz`` so the scoring
can run on a machine without SimpleITK (e.g. a GPU box).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["prepare_volumes", "compare", "run_benchmark", "format_table", "main"]


def prepare_volumes(cases: int, size: int, seed: int, patch: Sequence[int], organ_task: int = 0) -> tuple[list, list]:
    """Generate one phantom task, preprocess it (``cpu_demo``) and fit each case to ``patch``.

    Returns:
        (case ids, volumes (C, *patch) float32).
    """
    from ..presets import preset
    from ..data.datasets import read_dataset
    from ..data.phantoms import generate_phantoms
    from ..data.preprocess import prepare_image_for_inference
    from .mds import fit_volume

    pre = preset("cpu_demo").preprocess
    with tempfile.TemporaryDirectory(prefix="mds_bench_") as tmp:
        folder = generate_phantoms(Path(tmp), tasks=organ_task + 1, cases=cases, seed=seed, size=size, test_cases=0)[-1]
        spec = read_dataset(folder)
        ids, vols = [], []
        for case in spec.cases:
            arr, _ = prepare_image_for_inference([Path(p) for p in case.images], pre, spec.modality)
            ids.append(case.id)
            vols.append(fit_volume(arr, patch))
    return ids, vols


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def compare(ids: Sequence[str], ref_means: np.ndarray, means: np.ndarray, k: int) -> dict:
    """Top-K Jaccard and Kendall tau of ``means`` against ``ref_means`` (both (N,))."""
    from scipy.stats import kendalltau

    from .mds import rank_cases

    top_ref = set(rank_cases(ids, ref_means)[:k])
    top = set(rank_cases(ids, means)[:k])
    tau = kendalltau(ref_means, means).statistic
    return {"jaccard": _jaccard(top_ref, top), "tau": float(tau)}


def run_benchmark(encoder, head, pretext, ids: Sequence[str], volumes: Sequence, *, runs: int, k: int, views: int,
                  seed: int, device, rule=None, reporter=None, ceiling: bool = True, paired: bool = False) -> dict:
    """Score ``volumes`` fixed and adaptive; returns rows of measurements (see module doc)."""
    import torch

    from .adaptive import AdaptiveRule
    from .mds import score_volumes

    rule = rule or AdaptiveRule()
    plans = [("fixed", False, seed)]
    if ceiling:
        plans.append(("fixed (seed+1)", False, seed + 1))
    plans += [("adaptive", True, seed), ("adaptive (seed+1)", True, seed + 1)]
    rows, ref = [], None
    for name, adaptive, s in plans:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = score_volumes(volumes, ids, encoder, head, pretext, runs=runs, k=k, views_per_batch=views, seed=s,
                            adaptive=adaptive, rule=rule, reporter=reporter, task=name, device=device, paired=paired)
        wall = time.perf_counter() - t0
        means = res.runs.means
        if ref is None:
            ref = means
        row = {"method": name, "forward_passes": res.forward_passes, "batched_calls": res.batched_calls,
               "wall_s": round(wall, 2), **compare(ids, ref, means, k),
               "max_runs": int(res.runs.counts.max()), "min_runs": int(res.runs.counts.min()),
               "counts": [int(c) for c in res.runs.counts], "stds": [float(v) for v in res.runs.stds]}
        rows.append(row)
    passes_fixed = rows[0]["forward_passes"]
    for row in rows:
        row["reduction"] = passes_fixed / row["forward_passes"]
    return {"rows": rows, "paired": paired, "n_cases": len(ids), "k": k, "runs": runs, "views_per_batch": views, "seed": seed,
            "rule": rule.to_dict(), "device": str(device), "reference_means": [float(m) for m in ref],
            "mean_loss_spread": float(np.ptp(ref)), "ids": list(ids)}


def format_table(result: dict) -> str:
    """Markdown table of ``run_benchmark``'s result."""
    head = (f"{result['n_cases']} cases, K={result['k']}, R={result['runs']}, {result['views_per_batch']} views per "
            f"forward pass, device {result['device']}, adaptive rule {result['rule']}"
            f"{', paired views (common random numbers)' if result.get('paired') else ''}")
    lines = [head, "",
             "| method | SSL loss evaluations | fewer than fixed | batched calls | wall s | top-K Jaccard | Kendall tau | runs per case |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {r['forward_passes']} | {r['reduction']:.1f}x | {r['batched_calls']} | "
                     f"{r['wall_s']:.1f} | {r['jaccard']:.3f} | {r['tau']:.3f} | {r['min_runs']}-{r['max_runs']} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m MedSeqFTLib.selection.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--foundation", default="demo", help="M0: 'demo' (cached demo model) or a foundation .safetensors")
    p.add_argument("--cases", type=int, default=40, help="phantom cases in the task (default 40)")
    p.add_argument("--size", type=int, default=48, help="phantom size in voxels (default 48)")
    p.add_argument("--phantom-seed", type=int, default=2025, help="phantom seed (default 2025, the demo tasks' seed)")
    p.add_argument("--runs", type=int, default=1000, help="R for the fixed reference (default 1000)")
    p.add_argument("--k", type=int, default=None, help="buffer size (default 20%% of the cases)")
    p.add_argument("--views", type=int, default=8, help="views per forward pass (default 8)")
    p.add_argument("--seed", type=int, default=0, help="scoring seed (default 0)")
    p.add_argument("--z", type=float, default=None, help="adaptive rule z (default AdaptiveRule().z)")
    p.add_argument("--min-runs", type=int, default=None, help="adaptive rule min_runs")
    p.add_argument("--tol", type=float, default=None, help="adaptive rule tol (loss units)")
    p.add_argument("--paired", action="store_true", help="common random numbers: the same views for every case")
    p.add_argument("--no-ceiling", action="store_true", help="skip the second fixed run (halves the time)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--volumes", type=Path, default=None, help="read preprocessed cases from this .npz instead of generating")
    p.add_argument("--save-volumes", type=Path, default=None, help="write the preprocessed cases to this .npz and stop")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    from ..config import SelectionConfig
    from ..io.atomic import atomic_write_json, atomic_write_with
    from ..jobs.reporter import ConsoleReporter
    from ..models.foundation import load_foundation
    from ..models.ssl import get_pretext
    from .adaptive import AdaptiveRule
    from .mds import foundation_patch_size, resolve_device

    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.foundation == "demo":
        from ..demo_foundation import demo_foundation

        m0 = demo_foundation(reporter=ConsoleReporter())
    else:
        m0 = Path(args.foundation)
    encoder, head, meta = load_foundation(m0)
    patch = foundation_patch_size(meta, (32, 32, 32))
    if args.volumes is not None:
        with np.load(args.volumes, allow_pickle=False) as data:
            ids, vols = [str(i) for i in data["ids"]], list(data["volumes"])
    else:
        ids, vols = prepare_volumes(args.cases, args.size, args.phantom_seed, patch)
    if args.save_volumes is not None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, ids=np.array(ids), volumes=np.stack(vols))

        atomic_write_with(args.save_volumes, write)
        print(f"wrote {len(ids)} cases {np.stack(vols).shape} to {args.save_volumes}")
        return 0
    k = args.k or SelectionConfig().k_for(len(ids))
    defaults = AdaptiveRule()
    rule = AdaptiveRule(z=args.z or defaults.z, min_runs=args.min_runs or defaults.min_runs,
                        tol=defaults.tol if args.tol is None else args.tol)
    device = resolve_device(args.device)
    pretext = get_pretext(meta["ssl_pretext"], meta.get("ssl_options"))
    result = run_benchmark(encoder, head, pretext, ids, vols, runs=args.runs, k=k, views=args.views,
                           seed=args.seed, device=device, rule=rule, reporter=ConsoleReporter(min_interval_s=30),
                           ceiling=not args.no_ceiling, paired=args.paired)
    result["foundation"] = str(m0)
    print(format_table(result))
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
