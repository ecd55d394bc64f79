"""``medseqft report``: one HTML and one Markdown file in ``WS/reports/`` with PNGs next to them.

Sections (each with a short explanation in the report itself): overview, test metrics per
task and class, forgetting matrix, loss curves per stage, overlays of predictions on test
slices, per-layer parameter change of the encoder (paper Fig. 4), time and peak memory per
stage, and the K&G RFT time overhead over plain FFT.

Inputs are only workspace files: ``WS/metrics/*.json`` (the evaluation runs first when they
are missing), each task's ``model/record.json`` and encoder file, and the foundation model.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..io.atomic import atomic_write_text, read_json

__all__ = ["collect_stages", "rft_overhead", "write_report", "build_report", "SECTIONS"]

SECTIONS = ("Overview", "Test metrics", "Forgetting matrix", "Loss curves", "Overlays",
            "Parameter change per layer", "Time and memory", "K&G RFT overhead")

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #446}h2{margin-top:2em;border-bottom:1px solid #ccd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccd;padding:.25em .6em;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}p.note{color:#555;font-size:.93em}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}figure{margin:.8em 0}figcaption{font-size:.85em;color:#555}"""


def collect_stages(record: dict) -> dict:
    """Stage name -> stage info from a ``record.json`` (``"stages"`` as a dict or a list of dicts)."""
    stages = record.get("stages", {})
    if isinstance(stages, list):
        stages = {s.get("stage", f"stage{i}"): s for i, s in enumerate(stages) if isinstance(s, dict)}
    return {k: v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}


def _s_per_iter(info: dict) -> Optional[float]:
    if info.get("s_per_iter") is not None:
        return float(info["s_per_iter"])
    if info.get("time_s") and info.get("iterations"):
        return float(info["time_s"]) / float(info["iterations"])
    return None


def rft_overhead(stages_by_task: dict) -> Optional[dict]:
    """Time cost of K&G RFT relative to plain FFT at equal iterations.

    ``ratio_per_iter`` = mean kd_fft s/iter over tasks / mean fft s/iter (the distillation
    forward passes on buffer cases are the extra cost of a fine-tuning step);
    ``ratio_total`` = (kd_fft s/iter * N + LoRA-KD time + merge time) / (fft s/iter * N) with N
    the kd_fft iterations, i.e. the whole K&G RFT of a task against FFT of the same length.

    Returns:
        A dict of the numbers, or ``None`` unless both an fft and a kd_fft stage were timed.
    """
    fft = [_s_per_iter(s["fft"]) for s in stages_by_task.values() if "fft" in s]
    kd = [(t, s) for t, s in stages_by_task.items() if "kd_fft" in s and _s_per_iter(s["kd_fft"])]
    fft = [v for v in fft if v]
    if not fft or not kd:
        return None
    fft_spi = sum(fft) / len(fft)
    kd_spi = sum(_s_per_iter(s["kd_fft"]) for _, s in kd) / len(kd)
    totals = []
    for _, s in kd:
        n = float(s["kd_fft"].get("iterations") or 0)
        extra = sum(float(s[k].get("time_s") or 0) for k in ("lora_kd", "merge") if k in s)
        if n:
            totals.append((_s_per_iter(s["kd_fft"]) * n + extra) / (fft_spi * n))
    return {"fft_s_per_iter": fft_spi, "kd_fft_s_per_iter": kd_spi, "ratio_per_iter": kd_spi / fft_spi,
            "ratio_total": sum(totals) / len(totals) if totals else None, "tasks": [t for t, _ in kd]}


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower())


class _Doc:
    """Accumulates sections as HTML and Markdown at the same time."""

    def __init__(self, title: str):
        self.title = title
        self.html: list = []
        self.md: list = []

    def section(self, title: str, note: str) -> None:
        self.html.append(f"<h2 id='{_slug(title)}'>{html.escape(title)}</h2>"
                         f"<p class='note'>{html.escape(note)}</p>")
        self.md.append(f"\n## {title}\n\n_{note}_\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def table(self, header: list, rows: list) -> None:
        h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        self.html.append(f"<table><tr>{h}</tr>{body}</table>")
        self.md.append("| " + " | ".join(str(c) for c in header) + " |\n|" + "---|" * len(header) + "\n"
                       + "".join("| " + " | ".join(str(c) for c in r) + " |\n" for r in rows))

    def image(self, path: Path, caption: str) -> None:
        rel = Path(path).name
        self.html.append(f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.md.append(f"![{caption}]({rel})\n")

    def render_html(self) -> str:
        toc = "".join(f"<li><a href='#{_slug(s)}'>{html.escape(s)}</a></li>" for s in SECTIONS)
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1><ul>{toc}</ul>"
                + "\n".join(self.html) + "</body></html>\n")

    def render_md(self) -> str:
        return f"# {self.title}\n" + "\n".join(self.md)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _mm(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _metrics(ws, reporter, evaluate: bool, device: str) -> tuple[dict, dict]:
    from ..inference.loader import finished_tasks

    m_path, f_path = ws.metrics_dir / "metrics.json", ws.metrics_dir / "forgetting.json"
    if finished_tasks(ws) and (evaluate or not m_path.is_file() or not f_path.is_file()):
        from ..evaluation.evaluate import evaluate_workspace

        if reporter is not None:
            reporter.log("evaluating the finished models first (no metrics in WS/metrics yet)", stage="report")
        evaluate_workspace(ws, reporter=reporter, device=device)
    metrics = read_json(m_path) if m_path.is_file() else {"tasks": {}}
    forgetting = read_json(f_path) if f_path.is_file() else {"tasks": []}
    return metrics, forgetting


def _section_metrics(doc: _Doc, ws, metrics: dict) -> None:
    doc.section("Test metrics", "Each finished model M_t on the test split of its own task t, computed on the original "
                "label grid. Dice in %, HD95 in mm (MONAI, spacing-aware; larger of the two directed 95th percentiles). "
                "A class missing on one side scores Dice 0 and HD95 = image diagonal; missing on both, Dice 100 and HD95 0.")
    rows = []
    for name, res in metrics.get("tasks", {}).items():
        rows.append([name, "mean", res.get("n_cases", 0), _pct(res.get("dice")), _mm(res.get("hd95")), ""])
        for cls, c in res.get("classes", {}).items():
            rows.append([name, cls, "", _pct(c.get("dice")), _mm(c.get("hd95")),
                         f"{c.get('n_empty_pred', 0)} / {c.get('n_empty_label', 0)}"])
    if rows:
        doc.table(["task", "class", "cases", "Dice %", "HD95 mm", "empty pred / label"], rows)
    else:
        doc.para("No evaluated task yet.")


def _section_after_training(doc: _Doc, records: dict) -> None:
    doc.section("Right after training", "Per-class Dice (%) of each task's models on its test cases, checked by the "
                "runner as soon as the task was trained: M_t-mid (after KD-FFT) and the merged M_t. A failed class is "
                "one the model never predicts on any test case.")
    rows = []
    for name, rec in records.items():
        for which, check in (rec.get("validation") or {}).items():
            classes = ", ".join(f"{c} {_pct(d / 100)}" for c, d in check.get("classes", {}).items())
            rows.append([name, check.get("model", which), _pct(check.get("dice", 0) / 100), classes,
                         ", ".join(f"{c} never predicted" for c in check.get("failed", [])) or "none"])
    if rows:
        doc.table(["task", "model", "mean Dice %", "per class", "failed classes"], rows)
    else:
        doc.para("No task was checked after training (models trained before this check existed).")


def _section_forgetting(doc: _Doc, out: Path, forgetting: dict) -> None:
    doc.section("Forgetting matrix", "Row t: the model after task t (encoder E_t); column j: task j evaluated with E_t "
                "and task j's own decoder/head on task j's test split. Values below the diagonal show how much of "
                "task j survives later fine-tuning. Backward transfer (BWT) = mean over earlier tasks of "
                "(last model's score - the task's own score); negative means forgetting.")
    names = forgetting.get("tasks") or []
    if not names:
        doc.para("No forgetting matrix yet.")
        return
    rows = [[f"M[{t}]"] + [_pct(v) for v in forgetting["dice"][i]] + [_pct(forgetting["average_dice"][i])]
            for i, t in enumerate(names)]
    doc.table(["Dice %"] + names + ["average"], rows)
    rows = [[f"M[{t}]"] + [_mm(v) for v in forgetting["hd95"][i]] + [_mm(forgetting["average_hd95"][i])]
            for i, t in enumerate(names)]
    doc.table(["HD95 mm"] + names + ["average"], rows)
    if forgetting.get("bwt_dice") is not None:
        doc.para(f"BWT Dice {100 * forgetting['bwt_dice']:+.1f} points, BWT HD95 {forgetting['bwt_hd95']:+.2f} mm "
                 f"(final model M[{forgetting['final_model']}]).")
    from .plots import plot_forgetting

    png = plot_forgetting(forgetting, out / "forgetting.png")
    if png is not None:
        doc.image(png, "Dice forgetting matrix")


def _section_param_change(doc: _Doc, ws, out: Path, done: list) -> None:
    from ..inference.loader import load_encoder_state, load_foundation_encoder_state
    from .plots import layer_changes, plot_param_change

    doc.section("Parameter change per layer", "As in the paper's Fig. 4: mean absolute change of the encoder's weights "
                "per layer from one model to the next (M0 = the foundation model). K&G RFT should keep the "
                "changes of later steps small, especially in the shallow, general-purpose layers.")
    transitions = []
    prev_name, prev = "M0", (load_foundation_encoder_state(ws) if ws.foundation_path.is_file() else None)
    from ..adapters.base import is_adapter_task

    for name in done:
        if is_adapter_task(ws, name):
            continue  # an adapter task leaves the shared encoder as it was
        cur = load_encoder_state(ws, name)
        if prev is not None:
            transitions.append((f"{prev_name} → M[{name}]", layer_changes(prev, cur)))
        prev_name, prev = f"M[{name}]", cur
    png = plot_param_change(transitions, out / "param_change.png")
    if png is None:
        doc.para("No finished model to compare yet.")
        return
    doc.image(png, "mean |ΔW| per encoder layer")
    doc.table(["step", "layers", "mean |ΔW| over layers", "largest change (layer)"],
              [[lab, len(ch), f"{sum(v for _, v in ch) / len(ch):.3g}",
                f"{max(ch, key=lambda x: x[1])[1]:.3g} ({max(ch, key=lambda x: x[1])[0]})"]
               for lab, ch in transitions if ch])


def _section_time(doc: _Doc, stages_by_task: dict) -> None:
    doc.section("Time and memory", "Wall time, seconds per iteration and peak memory of every refinement stage, "
                "from each task's model/record.json (peak memory: CUDA max allocated on a GPU, process peak RSS on a CPU).")
    rows = []
    for task, stages in stages_by_task.items():
        for stage, info in stages.items():
            spi = _s_per_iter(info) if stage != "merge" else None  # merging is one step, not iterations
            mem = info.get("peak_memory_bytes")
            rows.append([task, stage, info.get("iterations", "-"), _mm(info.get("time_s")),
                         "-" if spi is None else f"{spi:.4f}",
                         "-" if mem is None else f"{mem / 2 ** 20:.0f} MiB ({info.get('memory_kind', '?')})"])
    if rows:
        doc.table(["task", "stage", "iterations", "time s", "s / iter", "peak memory"], rows)
    else:
        doc.para("No stage records yet.")


def _section_overhead(doc: _Doc, stages_by_task: dict) -> None:
    doc.section("K&G RFT overhead", "How much longer K&G RFT takes than plain full fine-tuning (FFT) at equal "
                "iterations: per iteration (KD-based FFT s/iter over FFT s/iter) and per task including the LoRA "
                "distillation and merge. The paper reports +28% total training time (21.1 h vs 27.0 h).")
    ov = rft_overhead(stages_by_task)
    if ov is None:
        doc.para("Needs a timed fft stage (task 1) and a timed kd_fft stage (a later task).")
        return
    doc.table(["FFT s/iter", "KD-FFT s/iter", "ratio per iteration", "ratio per task (incl. LoRA-KD, merge)"],
              [[f"{ov['fft_s_per_iter']:.4f}", f"{ov['kd_fft_s_per_iter']:.4f}", f"{ov['ratio_per_iter']:.2f}",
                "-" if ov["ratio_total"] is None else f"{ov['ratio_total']:.2f}"]])


def write_report(ws, reporter=None, evaluate: bool = False, device: str = "auto", n_slices: int = 3) -> list[Path]:
    """Write ``WS/reports/report.html`` and ``report.md`` (plus PNGs in the same folder).

    Args:
        ws: the ``Workspace``.
        reporter: progress as stage ``"report"``.
        evaluate: re-run the evaluation even if metrics exist.
        device: device of a needed evaluation.
        n_slices: overlay slices per task.

    Returns:
        ``[html path, markdown path]``.

    Raises:
        InputError: unreadable workspace files.
    """
    from ..inference.loader import finished_tasks, read_record
    from .overlays import task_overlays
    from .plots import plot_loss_curves

    if n_slices < 0:
        raise InputError("--slices", f"must be >= 0, got {n_slices}")
    out = ws.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    done = finished_tasks(ws)
    steps = 6
    progress = (lambda i, msg: reporter.progress("report", None, i, steps, message=msg)) if reporter else (lambda i, m: None)
    metrics, forgetting = _metrics(ws, reporter, evaluate, device)
    progress(1, "metrics")

    doc = _Doc(f"MedSeqFT report: {ws.root.name}")
    doc.section("Overview", "The workspace's sequence of tasks and the models refined so far (M0 = foundation model; "
                "M_t = encoder E_t + task t's decoder/head).")
    arch = ws.config.arch
    doc.para(f"Workspace {ws.root} ; backbone {arch.name} (feature size {arch.feature_size}); "
             f"foundation {ws.manifest.get('foundation', {}).get('source', '?')}; generated "
             f"{time.strftime('%Y-%m-%d %H:%M')}.")
    rows = []
    for name in ws.task_names():
        rec = ws.task(name)
        mode = rec.get("mode") or "kg_rft"
        if rec.get("adapter"):
            ad = rec["adapter"]
            mode = f"adapter: {ad.get('method')}" + (f", {ad['shots']} shots" if ad.get("shots") else "")
        rows.append([name, rec.get("status"), mode, rec.get("modality"), len(rec.get("split", {}).get("train", [])),
                     len(rec.get("split", {}).get("test", [])), ", ".join(k for k, v in rec["labels"].items() if v)])
    doc.table(["task", "status", "mode", "modality", "train", "test", "labels"], rows)

    _section_metrics(doc, ws, metrics)
    _section_after_training(doc, {name: read_record(ws, name) for name in done})
    _section_forgetting(doc, out, forgetting)
    progress(2, "forgetting")

    stages_by_task = {name: collect_stages(read_record(ws, name)) for name in done}
    doc.section("Loss curves", "Training losses per stage from each task's record.json: fft (task 1) or kd_fft "
                "(segmentation + distillation on buffer cases), then lora_kd (LoRA on E_{t-1} imitating E_{t-mid}).")
    n_curves = 0
    for name, stages in stages_by_task.items():
        png = plot_loss_curves(name, stages, out / f"loss_{name}.png")
        if png is not None:
            doc.image(png, f"losses of task {name}")
            n_curves += 1
    if not n_curves:
        doc.para("No loss logs recorded yet.")
    progress(3, "loss curves")

    doc.section("Overlays", "Test slices in grey with the reference (middle) and M_t's prediction for its own task "
                "(right); slices with the most reference label are shown.")
    n_over = 0
    for name in done:
        for png, caption in task_overlays(ws, name, ws.metrics_dir / "predictions" / name, out, n_slices):
            doc.image(png, caption)
            n_over += 1
    if not n_over:
        doc.para("No saved test predictions (run 'medseqft evaluate' first).")
    progress(4, "overlays")

    _section_param_change(doc, ws, out, done)
    progress(5, "parameter change")
    _section_time(doc, stages_by_task)
    _section_overhead(doc, stages_by_task)
    paths = [atomic_write_text(out / "report.html", doc.render_html()), atomic_write_text(out / "report.md", doc.render_md())]
    progress(6, "written")
    return paths


def build_report(ws, reporter=None, **kwargs) -> Path:
    """``write_report`` returning only the HTML file's path."""
    return write_report(ws, reporter=reporter, **kwargs)[0]
