"""Tables and plot of the few-shot benchmark (``benchmark.fewshot``): ``OUT/fewshot.{md,csv,png}``.

Per base (M0, M_T): test Dice (%) of each method at each k, mean ± sd over the support draws
with a 95 % bootstrap interval of the mean; then "does the sequence help?": the paired
difference M_T - M0 per (method, k), paired by support draw (the same support cases).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["write_fewshot_tables"]


def _cell(values: list) -> str:
    from .stats import paired_bootstrap

    if not values:
        return "-"
    ci = paired_bootstrap(values)
    sd = f" ± {ci['sd']:.1f}" if ci["sd"] is not None else ""
    interval = f" [{ci['low']:.1f}, {ci['high']:.1f}]" if ci["low"] is not None else ""
    return f"{ci['mean']:.1f}{sd}{interval} (n={ci['n']})"


def _values(runs, base, method, k) -> dict:
    return {r["draw"]: float(r["dice"]) for r in runs
            if r["base"] == base and r["method"] == method and r["shots"] == k and r["dice"] is not None}


def _plot(doc: dict, path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = doc["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, base in zip(axes, ("M0", "M_T")):
        for i, method in enumerate(doc["methods"]):  # one colour per method in both panels
            xs, means, sds = [], [], []
            for k in doc["shots"]:
                vals = list(_values(runs, base, method, k).values())
                if vals:
                    xs.append(k), means.append(np.mean(vals)), sds.append(np.std(vals))
            if xs:
                ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=method, color=f"C{i % 10}")
        ax.set_title(f"attached to {base}")
        ax.set_xlabel("labelled training volumes (k)")
        ax.set_xscale("log")
        ax.set_xticks(doc["shots"], [str(k) for k in doc["shots"]])
    axes[0].set_ylabel("test Dice % (mean ± sd over draws)")
    for ax in axes:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_fewshot_tables(out: Path, doc: dict, command: Optional[str] = None) -> dict:
    """Write ``fewshot.md``, ``fewshot.csv`` and ``fewshot.png`` into ``out``; returns their paths."""
    from .stats import paired_bootstrap

    out = Path(out)
    runs, shots, methods = doc["runs"], doc["shots"], doc["methods"]
    lines = ["# Few-shot benchmark (adapter task mode)", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Test Dice % of the unseen task, mean ± sd over {doc['draws']} support draw(s), 95 % bootstrap "
              "interval of the mean in brackets (few draws: read it as a rough range).", ""]
    for base in ("M0", "M_T"):
        lines += [f"## Attached to {base}", "", "| method | " + " | ".join(f"k={k}" for k in shots) + " | trained params |",
                  "|---|" + "---|" * (len(shots) + 1)]
        for method in methods:
            trained = sorted({r["trainable"] for r in runs if r["base"] == base and r["method"] == method} - {None})
            cells = [_cell(list(_values(runs, base, method, k).values())) for k in shots]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {', '.join(map(str, trained)) or '-'} |")
        lines.append("")
    lines += ["## Does the sequence help? M_T minus M0 (Dice points, paired by support draw)", "",
              "| method | " + " | ".join(f"k={k}" for k in shots) + " |", "|---|" + "---|" * len(shots)]
    notes = set()
    for method in methods:
        cells = []
        for k in shots:
            a, b = _values(runs, "M_T", method, k), _values(runs, "M0", method, k)
            diffs = [a[d] - b[d] for d in sorted(set(a) & set(b))]
            if not diffs:
                cells.append("-")
                continue
            ci = paired_bootstrap(diffs)
            verdict = "" if ci["significant"] is None else (" significant" if ci["significant"] else " not significant")
            if ci["note"]:
                notes.add(ci["note"])
                verdict += " †"
            interval = f" [{ci['low']:+.1f}, {ci['high']:+.1f}]" if ci["low"] is not None else ""
            cells.append(f"{ci['mean']:+.1f}{interval}{verdict}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [""] + [f"† {note.replace('seeds', 'draws')}" for note in sorted(notes)]
    times = [r["time_s"] for r in runs if r.get("time_s")]
    if times:
        lines += ["", f"Training + check time per run: median {np.median(times):.1f} s over {len(times)} runs."]
    refused = doc.get("refused") or {}
    if refused:
        reasons = sorted({v for v in refused.values()})
        lines += ["", "Not run (refused by the product, exit 2 on the command line):"] + [f"- {r}" for r in reasons]
    md = out / "fewshot.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_path = out / "fewshot.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["base", "method", "shots", "draw", "dice", "time_s", "trainable", "support"])
        for r in runs:
            writer.writerow([r["base"], r["method"], r["shots"], r["draw"], r["dice"], r["time_s"], r["trainable"],
                             " ".join(r.get("support") or [])])
    png = _plot(doc, out / "fewshot.png")
    return {"markdown": str(md), "csv": str(csv_path), "plot": str(png) if png else None}
