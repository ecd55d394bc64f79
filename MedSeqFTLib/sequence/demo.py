"""The demo: phantoms -> M0 -> workspace with 3 tasks -> refine -> evaluate -> report.

Everything is generated here (deterministic phantoms and the project's own pretrained M0), so
the demo runs offline. A second run with the same ``out`` folder reuses what is finished
(phantoms, workspace, trained tasks) and resumes an interrupted refinement.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["DemoSettings", "run_demo", "SETTINGS"]

DEMO_SEED = 2025


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo flavour (full or ``--quick``)."""

    cases: int
    size: int
    fft_iterations: int
    kd_iterations: int
    lora_iterations: int
    mds_runs: int


SETTINGS = {
    "full": DemoSettings(cases=12, size=64, fft_iterations=300, kd_iterations=240, lora_iterations=80, mds_runs=64),
    "quick": DemoSettings(cases=8, size=64, fft_iterations=150, kd_iterations=180, lora_iterations=40, mds_runs=16),
}


class _Clock:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0


def _configure(ws, s: DemoSettings) -> None:
    cfg = ws.config
    r = cfg.retention
    cfg.retention = r.replace(fft=r.fft.replace(iterations=s.fft_iterations),
                              kd_fft=r.kd_fft.replace(iterations=s.kd_iterations),
                              lora_kd=r.lora_kd.replace(iterations=s.lora_iterations))
    cfg.selection = cfg.selection.replace(runs=s.mds_runs)
    cfg.seed = DEMO_SEED
    ws.save_config(cfg)


def _add_missing_tasks(ws, datasets, reporter) -> None:
    """Add the demo datasets that are not tasks yet, in order (idempotent)."""
    import shutil

    from ..data.datasets import read_dataset

    for d in datasets:
        name = read_dataset(d).name
        if name in ws.task_names():
            continue
        orphan = ws.task_dir(name)
        if orphan.exists():  # add-task interrupted between task.json and workspace.json
            shutil.rmtree(orphan)
        ws.add_task(d, reporter=reporter)


def untrained_dice(ws, task: str, device) -> Optional[float]:
    """Mean Dice of a randomly initialised model (same architecture) on a task's test split."""
    import torch

    from ..evaluation.evaluate import TestSet, evaluate_model_on_task
    from ..models.registry import build_segnet

    torch.manual_seed(DEMO_SEED)
    model = build_segnet(ws.config.arch, n_classes=len(ws.labels(task))).to(device)
    return evaluate_model_on_task(ws, model, TestSet(ws, task), device=device)["dice"]


def run_demo(out: Path, quick: bool = False, device: str = "auto", reporter=None) -> dict:
    """Run the whole pipeline into ``out``; returns a summary (times, Dice, report path)."""
    from ..data.phantoms import generate_phantoms
    from ..demo_foundation import demo_foundation
    from ..evaluation.evaluate import evaluate_workspace
    from ..devices import resolve_device
    from ..report.report import build_report
    from .init import init_workspace
    from .runner import refine_workspace
    from .workspace import Workspace

    s = SETTINGS["quick" if quick else "full"]
    out = Path(out)
    clock = _Clock()
    t_start = time.perf_counter()
    log = reporter.log if reporter is not None else (lambda *a, **k: None)

    with clock("phantoms"):
        phantoms = out / "phantoms"
        datasets = sorted(p for p in phantoms.glob("Dataset*") if (p / "dataset.json").is_file()) if phantoms.is_dir() else []
        if len(datasets) != 3:
            datasets = generate_phantoms(phantoms, tasks=3, cases=s.cases, seed=DEMO_SEED, size=s.size)
    with clock("foundation"):
        demo_foundation(reporter=reporter)
    ws_dir = out / "workspace"
    with clock("init"):
        if (ws_dir / "workspace.json").is_file():
            ws = Workspace.open(ws_dir)
            log(f"reusing workspace {ws_dir}")
        else:
            ws, _ = init_workspace(ws_dir, "demo", preset_name="cpu_demo", seed=DEMO_SEED, reporter=reporter)
        with ws.lock("demo"):
            # also on reuse: a first run interrupted between init and the last add-task must
            # not leave a demo with fewer tasks or the preset's iteration counts
            ws = Workspace.open(ws_dir)
            if not any(ws.task(t)["status"] in ("training", "done") for t in ws.task_names()):
                _configure(ws, s)  # never change the schedule of a sequence already being trained
            _add_missing_tasks(ws, datasets, reporter)
    ws = Workspace.open(ws_dir)
    dev = resolve_device(device)
    with clock("refine"):
        refine_workspace(ws, device=str(dev), resume=True, reporter=reporter)
    with clock("evaluate"):
        ws = Workspace.open(ws_dir)
        doc = evaluate_workspace(ws, reporter=reporter, device=str(dev))
    with clock("untrained baseline"):
        baseline = {t: untrained_dice(ws, t, dev) for t in ws.task_names()}
    with clock("report"):
        report = build_report(ws, reporter=reporter)
    from ..io.atomic import read_json

    own = read_json(ws.metrics_dir / "metrics.json")["tasks"]
    per_class = {t: {c: m["dice"] for c, m in own[t]["classes"].items()} for t in own}
    total = time.perf_counter() - t_start
    return {"workspace": str(ws_dir), "report": str(report), "seconds": total, "stage_seconds": clock.times,
            "forgetting": doc, "untrained_dice": baseline, "class_dice": per_class, "tasks": ws.task_names(),
            "settings": s.__dict__, "quick": quick}
