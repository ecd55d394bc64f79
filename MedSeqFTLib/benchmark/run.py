"""Running the benchmark: every (strategy, seed) as product workspaces under ``OUT/runs``, resumable.

Layout::

    OUT/benchmark.json                  settings, datasets, foundation, machine (a rerun must match)
    OUT/phantoms/                       generated tasks (when no --tasks were given)
    OUT/foundations/m0.safetensors      the M0 every strategy starts from
    OUT/runs/<strategy>/seed<k>/        the strategy's product workspace(s) for seed k
    OUT/runs/<strategy>/seed<k>/result.json   written last: its presence marks the unit finished
    OUT/results.{md,csv}, OUT/summary.csv, OUT/benchmark.png   (``benchmark.table``)

A unit without ``result.json`` is continued: its workspaces are reopened and the product's
own resume (finished tasks skipped, finished stages loaded, checkpoints continued) does the rest.
"""

from __future__ import annotations

import platform
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from ..io.atomic import atomic_write_json, atomic_write_with, read_json
from .settings import BenchmarkSettings
from .strategies import STRATEGIES, Strategy, configure, workspace_overrides

__all__ = ["run_benchmark", "run_unit", "load_results", "unit_dir", "machine_info", "make_phantoms"]

PLAN_FILE = "benchmark.json"
RESULT_FILE = "result.json"


def unit_dir(out: Path, strategy: str, seed: int) -> Path:
    return Path(out) / "runs" / strategy / f"seed{int(seed)}"


def machine_info(device) -> dict:
    """Where the numbers were measured."""
    import os

    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "device": str(device)}
    if getattr(device, "type", "") == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def make_phantoms(out: Path, settings: BenchmarkSettings, reporter=None) -> tuple[list[Path], Optional[Path]]:
    """Generate (or reuse) the benchmark's phantom tasks; returns (sequence tasks, transfer task or None)."""
    from ..data.phantoms import generate_phantoms

    folder = Path(out) / "phantoms"
    n = settings.phantom_tasks + (1 if settings.transfer else 0)
    marker = folder / "phantoms.json"
    want = {"tasks": n, "cases": settings.phantom_cases, "size": settings.phantom_size, "seed": 0}
    if marker.is_file() and read_json(marker) == want:
        datasets = sorted(p for p in folder.glob("Dataset*") if p.is_dir())
    else:
        if reporter is not None:
            reporter.log(f"generating {n} phantom tasks ({settings.phantom_cases} cases, size {settings.phantom_size})")
        datasets = generate_phantoms(folder, tasks=n, cases=settings.phantom_cases, seed=0, size=settings.phantom_size,
                                     test_cases=0)
        atomic_write_json(marker, want)
    datasets = [Path(d) for d in datasets]
    if settings.transfer:
        return datasets[:-1], datasets[-1]
    return datasets, None


def _check_plan(out: Path, plan: dict) -> None:
    path = out / PLAN_FILE
    if path.is_file():
        old = read_json(path)
        for key in ("settings", "datasets", "transfer_dataset", "foundation_sha256"):
            if old.get(key) != plan.get(key):
                what = f"different {key}"
                if key == "settings" and isinstance(old.get(key), dict):
                    diff = [f"{k} {old[key].get(k)} there vs {v} now" for k, v in plan[key].items() if old[key].get(k) != v]
                    what = "different settings (" + ", ".join(diff) + ")"
                raise InputError(path, f"this folder holds a benchmark with {what}; use a new --out folder or the "
                                       "same settings to continue it")
        plan["created"] = old.get("created", plan["created"])
        plan["strategies"] = sorted(set(old.get("strategies", [])) | set(plan["strategies"]))
        plan["seeds"] = sorted(set(old.get("seeds", [])) | set(plan["seeds"]))
    atomic_write_json(path, plan)


# ---------------------------------------------------------------- collecting numbers from workspaces

def _timing(ws) -> dict:
    """Stage times / peak memory of every finished task model of ``ws`` (from ``record.json``)."""
    from ..inference.loader import read_record
    from ..selection.manifest import timing_path

    stage_s, peak, per_task, kind = {}, {}, {}, None
    for name in ws.task_names():
        rec = read_record(ws, name)
        tasks_s = {}
        for stage, info in rec.get("stages", {}).items():
            stage_s[stage] = stage_s.get(stage, 0.0) + float(info.get("time_s", 0.0))
            tasks_s[stage] = float(info.get("time_s", 0.0))
            if info.get("peak_memory_bytes") is not None:
                peak[stage] = max(peak.get(stage, 0), int(info["peak_memory_bytes"]))
                kind = info.get("memory_kind", kind)
        tpath = timing_path(ws.task_dir(name))
        # the runner selects a buffer for every task (random selection costs ~0 s)
        if tpath.is_file():
            sel = float(read_json(tpath).get("wall_s", 0.0))
            stage_s["select"] = stage_s.get("select", 0.0) + sel
            tasks_s["select"] = sel
        per_task[name] = tasks_s
    return {"stage_s": stage_s, "peak_memory_bytes": peak, "memory_kind": kind, "per_task": per_task}


def _merge_timing(parts: Sequence[dict]) -> dict:
    out = {"stage_s": {}, "peak_memory_bytes": {}, "memory_kind": None, "per_task": {}}
    for p in parts:
        for k, v in p["stage_s"].items():
            out["stage_s"][k] = out["stage_s"].get(k, 0.0) + v
        for k, v in p["peak_memory_bytes"].items():
            out["peak_memory_bytes"][k] = max(out["peak_memory_bytes"].get(k, 0), v)
        out["memory_kind"] = out["memory_kind"] or p["memory_kind"]
        out["per_task"].update(p["per_task"])
    out["train_s"] = round(sum(out["stage_s"].values()), 3)
    return out


def _scores(doc: dict, row: int, col: int, ws=None) -> dict:
    """Dice / HD95 of model ``row`` on task ``col``, plus the per-class Dice (``stats``) when ``ws`` is given."""
    out = {"dice": doc["dice"][row][col], "hd95": doc["hd95"][row][col]}
    if ws is not None:
        path = ws.metrics_dir / "results.json"
        res = read_json(path).get("results", {}) if path.is_file() else {}
        pair = res.get(doc["tasks"][row], {}).get(doc["tasks"][col], {})
        out["classes"] = {name: c.get("dice") for name, c in pair.get("classes", {}).items()}
        out["n_cases"] = pair.get("n_cases")
    return out


def _class_volumes(ws) -> dict:
    """``{task: {class: median label volume mm^3}}`` from each task's fingerprint (``stats.split_classes``)."""
    from ..plan.task_plan import fingerprint_path

    out = {}
    for name in ws.task_names():
        path = fingerprint_path(ws, name)
        classes = read_json(path).get("classes", {}) if path.is_file() else {}
        out[name] = {c: (info.get("mm3") or {}).get("median") for c, info in classes.items()}
    return out


def _evaluate(ws, reporter, device) -> tuple[dict, float]:
    from ..evaluation.evaluate import evaluate_workspace
    from ..sequence.workspace import Workspace

    t0 = time.perf_counter()
    doc = evaluate_workspace(Workspace.open(ws.root), reporter=reporter, device=device)
    return doc, time.perf_counter() - t0


def _single_task_workspaces(folder: Path, foundation: Path, datasets, cfg_fn, settings, train, reporter, device,
                            volumes: Optional[dict] = None):
    """One workspace per dataset (the parallel setting): train each, evaluate each."""
    from .workspaces import open_or_create

    final, timings, eval_s = {}, [], 0.0
    volumes = volumes if volumes is not None else {}
    for i, dataset in enumerate(datasets):
        ws = open_or_create(folder / f"ws_{i + 1}", foundation, [dataset], cfg_fn, settings, reporter,
                            workspace_overrides(settings))
        train(ws)
        doc, secs = _evaluate(ws, reporter, device)
        eval_s += secs
        final[doc["tasks"][0]] = _scores(doc, 0, 0, ws)
        timings.append(_timing(ws))
        volumes.update(_class_volumes(ws))
    return final, _merge_timing(timings), eval_s


def run_unit(out: Path, strategy: Strategy, seed: int, settings: BenchmarkSettings, m0: Path, datasets: list,
             transfer_dataset: Optional[Path], reporter, device: str) -> dict:
    """Run (or continue) one strategy with one seed; returns its result (also written to ``result.json``).

    Raises:
        InputError: bad data / foundation, or ``transfer`` before ``medseqft`` finished for this seed.
    """
    from ..sequence.runner import refine_workspace
    from .joint import train_joint_workspace
    from .peft_baselines import train_peft_workspace
    from .workspaces import open_or_create, random_foundation, refined_foundation

    folder = unit_dir(out, strategy.name, seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg_fn = lambda cfg: configure(cfg, strategy, settings, seed)  # noqa: E731
    refine = lambda ws: refine_workspace(ws, reporter=reporter, device=device, resume=True)  # noqa: E731
    t0 = time.perf_counter()
    result = {"strategy": strategy.name, "label": strategy.label, "kind": strategy.kind, "seed": int(seed)}
    if strategy.kind in ("sequential", "joint"):
        ws = open_or_create(folder / "ws", m0, datasets, cfg_fn, settings, reporter, workspace_overrides(settings))
        if strategy.kind == "joint":
            train_joint_workspace(ws, reporter=reporter, device=device)
        elif strategy.regulariser is not None:
            from .cl_baselines import train_cl_workspace

            train_cl_workspace(ws, strategy.regulariser, settings, reporter=reporter, device=device)
        else:
            refine(ws)
        doc, eval_s = _evaluate(ws, reporter, device)
        last = len(doc["tasks"]) - 1
        result.update({"tasks": doc["tasks"],
                       "final": {t: _scores(doc, last, j, ws) for j, t in enumerate(doc["tasks"])},
                       "after_training": {t: _scores(doc, j, j, ws) for j, t in enumerate(doc["tasks"])},
                       "forgetting": doc, "timing": _merge_timing([_timing(ws)]), "class_volume_mm3": _class_volumes(ws)})
    elif strategy.kind in ("parallel", "peft"):
        foundation = random_foundation(folder / "random_foundation.safetensors", m0, seed) if strategy.random_foundation else m0
        if strategy.kind == "parallel":
            train = refine
        else:
            train = lambda ws: train_peft_workspace(ws, strategy.peft, strategy.rank, reporter, device)  # noqa: E731
        volumes: dict = {}
        final, timing, eval_s = _single_task_workspaces(folder, foundation, datasets, cfg_fn, settings, train, reporter,
                                                        device, volumes)
        result.update({"tasks": list(final), "final": final, "after_training": final, "forgetting": None, "timing": timing,
                       "class_volume_mm3": volumes})
    elif strategy.kind == "transfer":
        if transfer_dataset is None:
            raise InputError("--transfer-task", "the transfer strategy needs an unseen task (--transfer-task DIR)")
        med = unit_dir(out, "medseqft", seed)
        if not (med / RESULT_FILE).is_file():
            raise InputError(med, "the transfer experiment needs the finished 'medseqft' run of this seed")
        from ..sequence.workspace import Workspace

        refined = refined_foundation(folder / "refined_foundation.safetensors", Workspace.open(med / "ws"), m0)
        parts, eval_s = {}, 0.0
        for key, start in (("from_m0", m0), ("from_final", refined)):
            final, timing, secs = _single_task_workspaces(folder / key, start, [transfer_dataset], cfg_fn, settings,
                                                          refine, reporter, device)
            parts[key] = {"final": final, "timing": timing}
            eval_s += secs
        task = next(iter(parts["from_m0"]["final"]))
        result.update({"tasks": [task], "transfer": {k: v["final"][task] for k, v in parts.items()},
                       "timing": _merge_timing([parts["from_m0"]["timing"], parts["from_final"]["timing"]])})
    else:  # pragma: no cover - STRATEGIES only holds the kinds above
        raise ValueError(f"unknown strategy kind {strategy.kind!r}")
    result["evaluate_s"] = round(eval_s, 3)
    result["wall_s_last_run"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(folder / RESULT_FILE, result)
    return result


def load_results(out: Path, strategies: Optional[Sequence[str]] = None) -> list[dict]:
    """Every finished unit's ``result.json`` under ``OUT/runs`` (optionally only ``strategies``)."""
    runs = Path(out) / "runs"
    found = []
    for path in sorted(runs.glob(f"*/seed*/{RESULT_FILE}")):
        res = read_json(path)
        if strategies is None or res.get("strategy") in strategies:
            found.append(res)
    return found


def run_benchmark(out: Path, strategies: Sequence[str], seeds: Sequence[int], settings: BenchmarkSettings,
                  datasets: Optional[Sequence[Path]] = None, transfer_dataset: Optional[Path] = None,
                  foundation: str = "demo", device: str = "auto", reporter=None, command: Optional[str] = None,
                  curve: Sequence[int] = ()) -> dict:
    """Run every (seed, strategy) unit not finished yet, then write the tables.

    Args:
        out: output folder (created; reused units are kept).
        strategies: names from ``strategies.STRATEGIES`` (``parse_strategies``).
        seeds: the seeds (``WorkspaceConfig.seed`` of every workspace of that run).
        settings: ``BenchmarkSettings``.
        datasets: task dataset folders in sequence order; ``None`` generates phantoms.
        transfer_dataset: the unseen task for ``transfer`` (phantoms: generated).
        foundation: ``"demo"`` or a foundation file (ours, or anything ``init`` imports).
        device: ``auto``, ``cpu``, ``cuda``...
        reporter: progress / logs / cancel.
        command: the command line, recorded in ``benchmark.json`` and the tables.
        curve: FFT budgets for the plateau curve (``benchmark.curve``); empty = none run (earlier
            curve units in ``out`` are still tabulated).

    Returns:
        ``{"out", "results": [unit results], "tables": table.write_tables(...) paths, "seconds"}``.

    Raises:
        InputError: fewer than two tasks, a plan that differs from the one in ``out``, bad data.
        errors.Cancelled: cancel requested; rerunning continues where it stopped.
    """
    from ..jobs.reporter import NullReporter
    from ..models.foundation import sha256_file
    from ..devices import resolve_device
    from .table import write_tables

    reporter = reporter or NullReporter()
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    m0 = out / "foundations" / "m0.safetensors"
    if foundation == "demo":
        from ..demo_foundation import demo_foundation

        source = Path(demo_foundation(reporter=reporter))
    else:
        from ..models.foundation import load_foundation

        source = Path(foundation)
        if not source.is_file():
            raise InputError(source, "foundation file not found")
        if source.suffix != ".safetensors":
            raise InputError(source, "the benchmark needs a MedSeqFT foundation file (.safetensors); import this "
                                     "checkpoint once with 'medseqft init WS --foundation FILE' and pass "
                                     "WS/models/foundation.safetensors")
        load_foundation(source)  # InputError unless it is our foundation file
    if m0.is_file() and sha256_file(m0) != sha256_file(source):
        raise InputError(source, f"this folder's benchmark ran with another foundation ({m0}); use a new --out folder")
    if not m0.is_file():
        atomic_write_with(m0, lambda tmp: shutil.copyfile(source, tmp))
    if datasets is None:
        datasets, generated_transfer = make_phantoms(out, settings, reporter)
        transfer_dataset = transfer_dataset or generated_transfer
    datasets = [Path(d).resolve() for d in datasets]
    if len(datasets) < 2:
        raise InputError("--tasks", f"a sequence needs at least two tasks, got {len(datasets)}")
    if transfer_dataset is not None:
        transfer_dataset = Path(transfer_dataset).resolve()
    strategies = [s for s in strategies if s != "transfer" or transfer_dataset is not None]

    plan = {"settings": settings.to_dict(), "datasets": [str(d) for d in datasets],
            "transfer_dataset": str(transfer_dataset) if transfer_dataset else None,
            "foundation": foundation, "foundation_sha256": sha256_file(m0), "strategies": list(strategies),
            "seeds": [int(s) for s in seeds], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(dev), "command": command}
    _check_plan(out, plan)

    for seed in seeds:
        for name in strategies:
            folder = unit_dir(out, name, seed)
            if (folder / RESULT_FILE).is_file():
                reporter.log(f"{name} seed {seed}: finished earlier, reusing {folder / RESULT_FILE}")
                continue
            reporter.log(f"{name} seed {seed}: running ({STRATEGIES[name].label})")
            t_unit = time.perf_counter()
            run_unit(out, STRATEGIES[name], int(seed), settings, m0, list(datasets), transfer_dataset, reporter, str(dev))
            reporter.log(f"{name} seed {seed}: done in {time.perf_counter() - t_unit:.0f} s")
    results = load_results(out, strategies)
    results = [r for r in results if r["seed"] in set(int(s) for s in seeds)]
    from .curve import load_curve, run_curve

    curve_results = (run_curve(out, curve, seeds, settings, m0, list(datasets), reporter, str(dev)) if curve
                     else load_curve(out))
    tables = write_tables(out, results, read_json(out / PLAN_FILE), curve=curve_results)
    return {"out": str(out), "results": results, "tables": tables, "seconds": time.perf_counter() - t0}
