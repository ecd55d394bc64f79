"""The benchmark's tables: Table III-style Dice / HD95, forgetting, cost, transfer (Markdown, CSV, plot).

Conventions (stated in the Markdown too):

* "final" = the model a user keeps at the end. Sequential strategies: the last model M_T
  (its encoder E_T with each task's own decoder/head) on every task's test split; parallel
  and PEFT: each task's own model; joint: the one jointly trained model.
* "after training" = task t scored by M_t right after it was trained (the forgetting matrix's
  diagonal); equal to "final" for parallel strategies.
* Averages: per seed, the mean over tasks; then mean +- sample std over seeds. Per-task cells
  are mean +- std over seeds. Dice in %, HD95 in mm.
* Cost: training time = the sum of the product's stage times (``record.json``: FFT, KD-FFT,
  LoRA-KD, merge) plus buffer selection (``buffer_timing.json``), summed over tasks; evaluation
  is excluded. Peak memory: the stage logs' peak (CUDA ``max_memory_allocated``; on the CPU the
  process's peak RSS, which includes what the process held before the stage).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional, Sequence

from ..io.atomic import atomic_write_text, atomic_write_with
from .strategies import DEFAULT_ORDER, STRATEGIES

__all__ = ["write_tables", "mean_std", "summarise", "OVERHEAD_GOAL"]

OVERHEAD_GOAL = 1.10
STAGE_ORDER = ("select", "fft", "kd_fft", "lora_kd", "merge")


def mean_std(values: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[float], int]:
    """(mean, sample std or None for one value, n) over the non-None values."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None, None, 0
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None, len(vals)
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)), len(vals)


def _avg(values) -> Optional[float]:
    return mean_std(values)[0]


def _fmt(m: Optional[float], s: Optional[float], scale: float = 1.0, digits: int = 1) -> str:
    if m is None:
        return "-"
    text = f"{m * scale:.{digits}f}"
    return text + (f" ± {s * scale:.{digits}f}" if s is not None else "")


def _by_strategy(results: list) -> dict:
    out: dict = {}
    for r in results:
        out.setdefault(r["strategy"], []).append(r)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in sorted(out.items(), key=lambda kv: DEFAULT_ORDER.index(kv[0]))}


def summarise(results: list) -> dict:
    """Per strategy: seeds, per-task mean/std of final and after-training Dice/HD95, averages, cost.

    Returns:
        ``{strategy: {"label", "seeds", "tasks", "final": {metric: {task: (m, s)}}, "after": ...,
        "avg": {metric: (m, s)}, "avg_after": ..., "bwt_dice": (m, s), "train_s": (m, s),
        "stage_s": {stage: m}, "peak_mb": max, "memory_kind", "ratio_fft": m or None}}``
    """
    groups = _by_strategy([r for r in results if r["strategy"] != "transfer"])
    out = {}
    for name, runs in groups.items():
        tasks = runs[0]["tasks"]
        entry = {"label": STRATEGIES[name].label, "kind": STRATEGIES[name].kind, "seeds": [r["seed"] for r in runs],
                 "tasks": tasks, "final": {}, "after": {}, "avg": {}, "avg_after": {}}
        for metric in ("dice", "hd95"):
            for key, field in (("final", "final"), ("after", "after_training")):
                entry[key][metric] = {t: mean_std([r[field].get(t, {}).get(metric) for r in runs])[:2] for t in tasks}
            entry["avg"][metric] = mean_std([_avg([r["final"][t][metric] for t in tasks]) for r in runs])[:2]
            entry["avg_after"][metric] = mean_std([_avg([r["after_training"][t][metric] for t in tasks]) for r in runs])[:2]
        entry["bwt_dice"] = mean_std([(r.get("forgetting") or {}).get("bwt_dice") for r in runs])[:2]
        entry["train_s"] = mean_std([r["timing"]["train_s"] for r in runs])[:2]
        stages = sorted({s for r in runs for s in r["timing"]["stage_s"]}, key=lambda s: (STAGE_ORDER + (s,)).index(s))
        entry["stage_s"] = {s: _avg([r["timing"]["stage_s"].get(s, 0.0) for r in runs]) for s in stages}
        peaks = [v for r in runs for v in r["timing"]["peak_memory_bytes"].values()]
        entry["peak_mb"] = max(peaks) / 2**20 if peaks else None
        entry["stage_peak_mb"] = {s: max(r["timing"]["peak_memory_bytes"].get(s, 0) for r in runs) / 2**20
                                  for s in stages if any(s in r["timing"]["peak_memory_bytes"] for r in runs)}
        entry["memory_kind"] = next((r["timing"]["memory_kind"] for r in runs if r["timing"]["memory_kind"]), None)
        out[name] = entry
    fft = {r["seed"]: r["timing"]["train_s"] for r in results if r["strategy"] == "fft"}
    for name, entry in out.items():
        ratios = [r["timing"]["train_s"] / fft[r["seed"]] for r in groups[name] if fft.get(r["seed"])]
        entry["ratio_fft"] = mean_std(ratios)[:2] if ratios else (None, None)
    return out


def _metric_table(summary: dict, which: str, metric: str, scale: float, digits: int, names=None) -> str:
    names = [n for n in (names or summary) if n in summary]
    if not names:
        return "_no finished runs_\n"
    tasks = summary[names[0]]["tasks"]
    avg_key = "avg" if which == "final" else "avg_after"
    lines = ["| Strategy | seeds | " + " | ".join(tasks) + " | **Average** |",
             "|---|---|" + "---|" * len(tasks) + "---|"]
    for n in names:
        e = summary[n]
        cells = [_fmt(*e[which][metric].get(t, (None, None)), scale, digits) for t in tasks]
        lines.append(f"| {e['label']} | {len(e['seeds'])} | " + " | ".join(cells)
                     + f" | **{_fmt(*e[avg_key][metric], scale, digits)}** |")
    return "\n".join(lines) + "\n"


def _forgetting_section(results: list) -> str:
    parts = []
    for name, runs in _by_strategy(results).items():
        docs = [r["forgetting"] for r in runs if r.get("forgetting")]
        if not docs or STRATEGIES[name].kind != "sequential":
            continue
        tasks = docs[0]["tasks"]
        lines = [f"**{STRATEGIES[name].label}** (Dice %, mean over {len(docs)} seed(s); row = model after task t, "
                 "column = task evaluated)", "", "| model \\ task | " + " | ".join(tasks) + " | average |",
                 "|---|" + "---|" * (len(tasks) + 1)]
        for i, t in enumerate(tasks):
            cells = []
            for j in range(len(tasks)):
                m = _avg([d["dice"][i][j] for d in docs]) if j <= i else None
                cells.append(_fmt(m, None, 100.0))
            avg = _avg([d["average_dice"][i] for d in docs])
            lines.append(f"| M[{t}] | " + " | ".join(cells) + f" | {_fmt(avg, None, 100.0)} |")
        bwt = mean_std([d.get("bwt_dice") for d in docs])
        lines.append("")
        lines.append(f"Backward transfer (Dice points, final model minus right-after-training, mean over earlier "
                     f"tasks): {_fmt(bwt[0], bwt[1], 100.0)}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts) if parts else "_no sequential strategy finished_\n"


def _cost_table(summary: dict) -> str:
    stages = [s for s in STAGE_ORDER if any(s in e["stage_s"] for e in summary.values())]
    # stages outside the runner's (EWC's ``ewc_fisher``) get a column too, so the columns add up to the total
    stages += sorted({s for e in summary.values() for s in e["stage_s"]} - set(stages))
    lines = ["| Strategy | training time s (mean ± std) | " + " | ".join(f"{s} s" for s in stages)
             + " | × FFT time | peak memory MB (per stage) |", "|---|---|" + "---|" * len(stages) + "---|---|"]
    for e in summary.values():
        cells = [_fmt(e["stage_s"].get(s), None, 1.0, 1) if s in e["stage_s"] else "-" for s in stages]
        ratio = e["ratio_fft"]
        lines.append(f"| {e['label']} | {_fmt(*e['train_s'], 1.0, 1)} | " + " | ".join(cells)
                     + f" | {_fmt(ratio[0], ratio[1], 1.0, 2)} | {_fmt(e['peak_mb'], None, 1.0, 0)} ("
                     + ", ".join(f"{k} {v:.0f}" for k, v in e["stage_peak_mb"].items()) + ") |")
    return "\n".join(lines) + "\n"


def _overhead_lines(summary: dict) -> str:
    lines = []
    for name in ("medseqft", "seq_kg"):
        e = summary.get(name)
        if e and e["ratio_fft"][0] is not None:
            ok = "meets" if e["ratio_fft"][0] <= OVERHEAD_GOAL else "MISSES"
            lines.append(f"- {e['label']}: training time {_fmt(*e['ratio_fft'], 1.0, 2)} × FFT ({ok} the goal "
                         f"≤ {OVERHEAD_GOAL:.2f}; the paper reports 1.28).")
    if "medseqft" in summary and "seq_ft" in summary and summary["seq_ft"]["train_s"][0]:
        r = summary["medseqft"]["train_s"][0] / summary["seq_ft"]["train_s"][0]
        lines.append(f"- MedSeqFT over Seq-FT (same sequence without retention): {r:.2f} ×.")
    return "\n".join(lines) + "\n" if lines else "_needs fft and medseqft runs_\n"


def _transfer_table(results: list) -> str:
    runs = [r for r in results if r["strategy"] == "transfer"]
    if not runs:
        return "_transfer not run_\n"
    task = runs[0]["tasks"][0]
    lines = [f"Unseen task **{task}**, FFT for the same budget ({len(runs)} seed(s)):", "",
             "| Start | Dice % | HD95 mm |", "|---|---|---|"]
    for key, label in (("from_m0", "M0 (foundation)"), ("from_final", "MedSeqFT final model")):
        d = mean_std([r["transfer"][key]["dice"] for r in runs])
        h = mean_std([r["transfer"][key]["hd95"] for r in runs])
        lines.append(f"| {label} | {_fmt(d[0], d[1], 100.0)} | {_fmt(h[0], h[1], 1.0, 2)} |")
    return "\n".join(lines) + "\n"


def _long_csv(results: list) -> str:
    buf = io.StringIO()
    buf.write("strategy,seed,task,metric,value\n")
    for r in sorted(results, key=lambda r: (DEFAULT_ORDER.index(r["strategy"]), r["seed"])):
        if r["strategy"] == "transfer":
            for key, scores in r["transfer"].items():
                for metric, v in scores.items():
                    buf.write(f"transfer,{r['seed']},{r['tasks'][0]},{metric}_{key},{'' if v is None else f'{v:.6g}'}\n")
        else:
            for field, suffix in (("final", "final"), ("after_training", "after")):
                for t, scores in r[field].items():
                    for metric in ("dice", "hd95"):
                        v = scores.get(metric)
                        buf.write(f"{r['strategy']},{r['seed']},{t},{metric}_{suffix},{'' if v is None else f'{v:.6g}'}\n")
        buf.write(f"{r['strategy']},{r['seed']},,train_s,{r['timing']['train_s']:.6g}\n")
        for stage, secs in r["timing"]["stage_s"].items():
            buf.write(f"{r['strategy']},{r['seed']},,stage_s_{stage},{secs:.6g}\n")
    return buf.getvalue()


def _summary_csv(summary: dict) -> str:
    buf = io.StringIO()
    buf.write("strategy,label,n_seeds,avg_dice_mean,avg_dice_std,avg_hd95_mean,avg_hd95_std,bwt_dice_mean,"
              "train_s_mean,ratio_to_fft,peak_memory_mb\n")

    def f(v):
        return "" if v is None else f"{v:.6g}"

    for name, e in summary.items():
        buf.write(",".join([name, f'"{e["label"]}"', str(len(e["seeds"])), f(e["avg"]["dice"][0]), f(e["avg"]["dice"][1]),
                            f(e["avg"]["hd95"][0]), f(e["avg"]["hd95"][1]), f(e["bwt_dice"][0]), f(e["train_s"][0]),
                            f(e["ratio_fft"][0]), f(e["peak_mb"])]) + "\n")
    return buf.getvalue()


def _plot(path: Path, summary: dict) -> Optional[Path]:
    if not summary:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    labels = [summary[n]["label"].replace(" (", "\n(") for n in names]
    dice = [100 * (summary[n]["avg"]["dice"][0] or 0.0) for n in names]
    err = [100 * (summary[n]["avg"]["dice"][1] or 0.0) for n in names]
    secs = [summary[n]["train_s"][0] or 0.0 for n in names]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5))
    colours = ["tab:red" if n == "medseqft" else "tab:blue" if summary[n]["kind"] == "sequential" else "tab:gray"
               for n in names]
    ax1.bar(range(len(names)), dice, yerr=err, color=colours, capsize=3)
    ax1.set_xticks(range(len(names)), labels, rotation=60, ha="right", fontsize=7)
    ax1.set_ylabel("average Dice % (final model, mean ± std over seeds)")
    ax2.bar(range(len(names)), secs, color=colours)
    ax2.set_xticks(range(len(names)), labels, rotation=60, ha="right", fontsize=7)
    ax2.set_ylabel("training time s (mean over seeds)")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def _test_cases_line(results: list) -> str:
    from .settings import MIN_TEST_CASES

    n = sorted({int(v["n_cases"]) for r in results for v in (r.get("final") or {}).values()
                if isinstance(v, dict) and v.get("n_cases") is not None})
    if not n:
        return "n/a"
    warn = f" (fewer than {MIN_TEST_CASES}: per-task numbers are noisy)" if n[0] < MIN_TEST_CASES else ""
    return ", ".join(str(k) for k in n) + warn


def _stats_sections(results: list) -> str:
    """Large/small classes and the paired differences against FFT with bootstrap CIs (``benchmark.stats``)."""
    from .stats import METRICS, REFERENCE, SMALL_CLASS_MM3, paired_differences, significance_line

    diffs = paired_differences(results)
    if not diffs:
        return "_no finished runs_\n"
    names = [n for n in DEFAULT_ORDER if n in diffs]
    lines = [f"Classes split by the median label volume in each task's fingerprint: small < {SMALL_CLASS_MM3 / 1000:g} cm³.",
             "", "| Strategy | seeds | large classes Dice % | small classes Dice % |", "|---|---|---|---|"]
    for n in names:
        large = mean_std(list(diffs[n]["large"]["values"].values()))
        small = mean_std(list(diffs[n]["small"]["values"].values()))
        lines.append(f"| {STRATEGIES[n].label} | {len(diffs[n]['final']['values'])} | {_fmt(large[0], large[1], 100.0)} "
                     f"| {_fmt(small[0], small[1], 100.0)} |")
    lines += ["", "### Paired per-seed differences against FFT (Dice points; 95 % percentile bootstrap over seeds, "
              "10,000 resamples)", ""]
    if REFERENCE not in diffs:
        return "\n".join(lines + ["_needs the fft strategy for the same seeds_", ""])
    lines += ["| Strategy | metric | strategy (mean ± sd) | FFT (mean ± sd) | difference | 95 % CI | significant |",
              "|---|---|---|---|---|---|---|"]
    verdicts = []
    for n in names:
        if n == REFERENCE:
            continue
        for metric in METRICS:
            entry, ref = diffs[n][metric], diffs[REFERENCE][metric]
            ci = entry["ci"]
            if ci is None:
                continue
            seeds = list(entry["diff"])
            sm = mean_std([entry["values"][k] for k in seeds])
            fm = mean_std([ref["values"][k] for k in seeds])
            interval = "-" if ci["low"] is None else f"[{ci['low'] * 100:+.1f}, {ci['high'] * 100:+.1f}]"
            sig = "n/a" if ci["significant"] is None else ("yes" if ci["significant"] else "no")
            lines.append(f"| {STRATEGIES[n].label} | {METRICS[metric]} | {_fmt(sm[0], sm[1], 100.0)} | "
                         f"{_fmt(fm[0], fm[1], 100.0)} | {ci['mean'] * 100:+.1f} | {interval} | {sig} |")
        verdicts.append("- " + significance_line(STRATEGIES[n].label, "final", diffs[n]["final"]["ci"]))
    return "\n".join(lines + ["", "Verdict (final average Dice):", ""] + verdicts) + "\n"


def _curve_section(curve: Optional[dict]) -> str:
    """FFT's test Dice at each budget (``run.run_curve``): mean ± sd over seeds, per task and averaged."""
    if not curve:
        return "_not recorded (run with --curve B1,B2,...)_\n"
    budgets = sorted(int(b) for b in curve)
    # the unit's task order (``result.json`` is written with sorted keys, so ``final`` is alphabetical)
    tasks = next((list(curve[str(b)][0].get("tasks") or curve[str(b)][0]["final"]) for b in budgets if curve[str(b)]), [])
    lines = ["| steps per task | seeds | " + " | ".join(tasks) + " | **Average** |", "|---|---|" + "---|" * (len(tasks) + 1)]
    for b in budgets:
        runs = curve[str(b)]
        cells = [_fmt(*mean_std([r["final"].get(t, {}).get("dice") for r in runs])[:2], 100.0) for t in tasks]
        avg = mean_std([_avg([r["final"][t]["dice"] for t in tasks]) for r in runs])
        lines.append(f"| {b} | {len(runs)} | " + " | ".join(cells) + f" | **{_fmt(avg[0], avg[1], 100.0)}** |")
    return "\n".join(lines) + "\n"


def _curve_plot(path: Path, curve: Optional[dict]) -> Optional[Path]:
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted(int(b) for b in curve if curve[b])
    stats = [mean_std([_avg([r["final"][t]["dice"] for t in r["final"]]) for r in curve[str(b)]]) for b in budgets]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(budgets, [100 * (m or 0.0) for m, _, _ in stats], yerr=[100 * (s or 0.0) for _, s, _ in stats],
                marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("FFT steps per task")
    ax.set_ylabel("average test Dice % (mean ± sd over seeds)")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def write_tables(out: Path, results: list, plan: dict, curve: Optional[dict] = None) -> dict:
    """Write ``results.md``, ``results.csv`` (long), ``summary.csv`` and ``benchmark.png`` into ``out``.

    Returns:
        ``{"markdown", "csv", "summary_csv", "plot", "curve_plot"}`` paths (``plot`` None without
        results, ``curve_plot`` None without ``curve``).

    ``curve``: ``{str(budget): [FFT unit results]}`` from ``run.run_curve`` (the plateau curve).
    """
    out = Path(out)
    summary = summarise(results)
    s = plan.get("settings", {})
    machine = plan.get("machine", {})
    seq_names = [n for n in summary if summary[n]["kind"] in ("sequential", "joint")]
    md = [
        "# MedSeqFT benchmark results", "",
        f"Command: `{plan.get('command') or 'n/a'}`", "",
        f"Tasks ({len(plan.get('datasets', []))}): " + ", ".join(Path(d).name for d in plan.get("datasets", [])),
        f"Seeds: {sorted({r['seed'] for r in results})}; settings: " + ", ".join(f"{k}={v}" for k, v in s.items()),
        f"Machine: {machine.get('processor')}, {machine.get('cpu_count')} CPUs, torch {machine.get('torch')} "
        f"({machine.get('torch_threads')} threads), device {machine.get('device')}" + (f" ({machine['gpu']})" if machine.get("gpu") else ""),
        "",
        f"Test cases per task: {_test_cases_line(results)}", "",
        "## Final model on every task: Dice % (mean ± std over seeds)", "",
        _metric_table(summary, "final", "dice", 100.0, 1),
        "## Final model on every task: HD95 mm", "",
        _metric_table(summary, "final", "hd95", 1.0, 2),
        "## Each task right after it was trained (sequential and joint: diagonal of the forgetting matrix): Dice %", "",
        _metric_table(summary, "after", "dice", 100.0, 1, names=seq_names),
        "## Large and small classes, paired differences against FFT", "",
        _stats_sections(results),
        "## FFT plateau: test Dice at several budgets (each a full schedule of that length)", "",
        _curve_section(curve),
        "## Forgetting matrices", "",
        _forgetting_section(results),
        "## Cost: training time (stages + buffer selection, summed over tasks; mean over seeds) and peak memory", "",
        _cost_table(summary),
        f"Memory kind: {next((e['memory_kind'] for e in summary.values() if e['memory_kind']), 'n/a')}.", "",
        "## K&G RFT overhead", "",
        _overhead_lines(summary),
        "## Transfer to an unseen task (paper Table VI)", "",
        _transfer_table(results),
    ]
    paths = {
        "markdown": atomic_write_text(out / "results.md", "\n".join(md)),
        "csv": atomic_write_text(out / "results.csv", _long_csv(results)),
        "summary_csv": atomic_write_text(out / "summary.csv", _summary_csv(summary)),
        "plot": _plot(out / "benchmark.png", summary),
        "curve_plot": _curve_plot(out / "fft_curve.png", curve),
    }
    return {k: (str(v) if v is not None else None) for k, v in paths.items()}
