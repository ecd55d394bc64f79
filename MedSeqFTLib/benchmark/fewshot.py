"""``medseqft benchmark --fewshot``: FSEFT's k-shot comparison, through the product's adapter mode.

One unseen phantom task (the benchmark's transfer task) is learned from k labelled volumes by
every method (``adapters.config.METHODS``; ``spatial_adapter_ti`` = the spatial adapter with the
size-prior transductive term on the task's unlabelled test images), for each k and several
support draws (draw d = ``--shots-seed d``: every method sees the same support set for the
same (k, d)), on two bases:

* ``M0``: a workspace whose only tasks are these adapter tasks (black-box methods then see the
  encoder's hypercolumn: M0 has no decoder);
* ``M_T``: a workspace whose first tasks are the benchmark's sequence, refined once with
  MedSeqFT (``strategies.configure(..., "medseqft")``), then the adapter tasks, which all attach
  to M_T (an adapter task leaves the shared model as it was, so one workspace holds them all).

Every score is the product's own check right after training (``record.json`` ``validation.M_t``:
mean foreground Dice on the task's test split, the same test cases for every run). The run is
resumable: finished adapter tasks are skipped by the runner.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError

__all__ = ["FEWSHOT_METHODS", "parse_shots", "parse_methods", "run_fewshot", "collect", "task_name"]

FEWSHOT_METHODS = ("linear_probe", "spatial_adapter", "spatial_adapter_ti", "spatial_adapter_1x1", "bitfit", "lora",
                   "decoder", "full")
BASES = ("M0", "M_T")


def parse_shots(text: str) -> list:
    """``"1,5,10"`` -> ``[1, 5, 10]``.

    Raises:
        InputError: not a comma list of positive integers.
    """
    try:
        shots = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        raise InputError("--shots", f"expected a comma list of integers such as 1,5,10, got {text!r}") from None
    if not shots or shots[0] < 1:
        raise InputError("--shots", f"needs integers >= 1, got {text!r}")
    return shots


def parse_methods(text: Optional[str]) -> list:
    """``"all"``/``None`` or a comma list of ``FEWSHOT_METHODS``.

    Raises:
        InputError: an unknown method.
    """
    if text in (None, "", "all"):
        return list(FEWSHOT_METHODS)
    names = [v.strip() for v in str(text).split(",") if v.strip()]
    bad = [n for n in names if n not in FEWSHOT_METHODS]
    if bad:
        raise InputError("--methods", f"unknown few-shot method(s) {bad}; choose from {', '.join(FEWSHOT_METHODS)}")
    return names


def task_name(method: str, shots: int, draw: int) -> str:
    return f"fs-{method}-k{shots}-d{draw}"


def _adapter_spec(method: str, shots: int, draw: int) -> dict:
    base = method[: -len("_ti")] if method.endswith("_ti") else method
    return {"method": base, "shots": int(shots), "shots_seed": int(draw), "transductive": method.endswith("_ti")}


def _configure(settings, seed: int):
    """Workspace config for both bases: the benchmark's MedSeqFT settings plus the adapter schedule."""
    from .strategies import STRATEGIES, configure

    def fn(cfg):
        cfg = configure(cfg, STRATEGIES["medseqft"], settings, seed)
        adapter = dataclasses.replace(cfg.adapter, iterations=int(settings.iterations), batch_size=int(settings.batch_size))
        return dataclasses.replace(cfg, adapter=adapter)

    return fn


def _add_adapter_tasks(ws, dataset: Path, methods, shots, draws, settings, reporter):
    """Add every (method, k, draw) adapter task not added yet.

    Returns:
        ``({task: reason} of the refused ones, the re-opened workspace)``; a method the backbone
        cannot take (bitfit without biases) is refused before any work, for each of its tasks.
    """
    from ..sequence.workspace import Workspace

    refused = {}
    with ws.lock("benchmark"):
        for method in methods:
            for k in shots:
                for d in range(int(draws)):
                    name = task_name(method, k, d)
                    if name in ws.task_names():
                        continue
                    try:
                        ws.add_task(dataset, name=name, reporter=reporter, train_fraction=float(settings.train_fraction),
                                    split_seed=int(settings.split_seed), mode="adapter",
                                    adapter=_adapter_spec(method, k, d))
                    except InputError as exc:
                        refused[name] = str(exc)
    return refused, Workspace.open(ws.root)


def run_fewshot(out: Path, shots: Sequence[int], draws: int, methods: Sequence[str], settings, m0: Path,
                datasets: Sequence[Path], fewshot_dataset: Path, device: str = "auto", reporter=None,
                seed: int = 0) -> dict:
    """Train every (base, method, k, draw) adapter task not trained yet and collect the scores.

    Args:
        out: the benchmark folder (``OUT/fewshot/{M0,M_T}`` hold the two workspaces).
        shots, draws, methods: the grid (``parse_shots``, ``parse_methods``).
        settings: ``BenchmarkSettings`` (iterations, batch, patch, split).
        m0: the foundation file.
        datasets: the sequence refined into M_T.
        fewshot_dataset: the unseen task learned few-shot.
        seed: ``WorkspaceConfig.seed`` of both workspaces.

    Returns:
        ``collect(...)``'s document, with ``refused`` (method -> reason) and ``seconds``.
    """
    from ..jobs.reporter import NullReporter
    from ..sequence.runner import refine_workspace
    from .strategies import workspace_overrides
    from .workspaces import open_or_create

    reporter = reporter or NullReporter()
    t0 = time.perf_counter()
    folder = Path(out) / "fewshot"
    configure_fn = _configure(settings, seed)
    refused = {}
    for base in BASES:
        seq = list(datasets) if base == "M_T" else []
        ws = open_or_create(folder / base, m0, seq, configure_fn, settings, reporter, overrides=workspace_overrides(settings))
        if seq:
            reporter.log(f"few-shot: refining the sequence into M_T ({len(seq)} tasks)")
            refine_workspace(ws, reporter, device=device, resume=True)
        bad, ws = _add_adapter_tasks(ws, fewshot_dataset, methods, shots, draws, settings, reporter)
        refused.update({f"{base}:{k}": v for k, v in bad.items()})
        refine_workspace(ws, reporter, device=device, resume=True)
    doc = collect(folder, methods, shots, draws)
    doc.update({"refused": refused, "seconds": round(time.perf_counter() - t0, 1)})
    return doc


def collect(folder: Path, methods: Sequence[str], shots: Sequence[int], draws: int) -> dict:
    """``{"runs": [{base, method, shots, draw, dice, classes, time_s, trainable}], ...}`` from the finished tasks."""
    from ..inference.loader import is_finished, read_record
    from ..sequence.workspace import Workspace

    runs = []
    for base in BASES:
        if not (Path(folder) / base / "workspace.json").is_file():
            continue
        ws = Workspace.open(Path(folder) / base)
        for method in methods:
            for k in shots:
                for d in range(int(draws)):
                    name = task_name(method, k, d)
                    if name not in ws.task_names() or not is_finished(ws, name):
                        continue
                    rec = read_record(ws, name)
                    check = (rec.get("validation") or {}).get("M_t") or {}
                    runs.append({"base": base, "method": method, "shots": int(k), "draw": int(d),
                                 "dice": check.get("dice"), "classes": check.get("classes", {}),
                                 "time_s": rec.get("time_s"), "trainable": (rec.get("n_params") or {}).get("trainable"),
                                 "support": rec.get("adapter", {}).get("support")})
    return {"runs": runs, "methods": list(methods), "shots": list(shots), "draws": int(draws)}


def fewshot_settings(settings, shots: Sequence[int]):
    """``settings`` with enough phantom cases for the largest k plus ``MIN_TEST_CASES`` test cases.

    The sequence tasks and the few-shot task then have ``max(shots)`` training cases each; the
    generated transfer task is the few-shot task.
    """
    from .settings import MIN_TEST_CASES

    k = max(int(s) for s in shots)
    cases = max(int(settings.phantom_cases), k + MIN_TEST_CASES)
    return settings.replace(phantom_cases=cases, train_fraction=(cases - MIN_TEST_CASES) / cases, transfer=True)


def run_fewshot_benchmark(out: Path, shots: Sequence[int], draws: int, methods: Sequence[str], settings,
                          foundation: str = "demo", device: str = "auto", reporter=None, command: Optional[str] = None) -> dict:
    """The whole ``benchmark --fewshot`` command: phantoms, M0, both bases, tables.

    Raises:
        InputError: a foundation file that is not ours, fewer than 2 draws, or a folder holding a
            few-shot run with other settings.
    """
    import shutil

    from ..io.atomic import atomic_write_json, atomic_write_with, read_json
    from ..models.foundation import load_foundation, sha256_file
    from .fewshot_table import write_fewshot_tables
    from .run import make_phantoms

    if int(draws) < 1:
        raise InputError("--draws", f"must be >= 1, got {draws}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = fewshot_settings(settings, shots)
    if foundation == "demo":
        from ..demo_foundation import demo_foundation

        source = Path(demo_foundation(reporter=reporter))
    else:
        source = Path(foundation)
        if not source.is_file():
            raise InputError(source, "foundation file not found")
        load_foundation(source)  # InputError unless it is our foundation file
    plan = {"settings": settings.to_dict(), "shots": list(shots), "draws": int(draws), "foundation_sha256": sha256_file(source)}
    plan_path = out / "fewshot.json"
    if plan_path.is_file():
        old = read_json(plan_path)
        if {k: old.get(k) for k in plan} != plan:
            raise InputError(out, "holds a few-shot run with other settings, shots, draws or foundation; use a new --out")
    m0 = out / "foundations" / "m0.safetensors"
    if not m0.is_file():
        atomic_write_with(m0, lambda tmp: shutil.copyfile(source, tmp))
    atomic_write_json(plan_path, {**plan, "methods": list(methods), "command": command})
    datasets, fewshot_task = make_phantoms(out, settings, reporter)
    doc = run_fewshot(out, shots, draws, methods, settings, m0, datasets, fewshot_task, device, reporter)
    doc["tables"] = write_fewshot_tables(out, doc, command)
    return doc
