"""The forgetting matrix: how well each model M_t still segments every earlier task j <= t.

Entry (t, j) is the mean Dice (or HD95) of E_t (M_t's encoder) with task j's own decoder and
head on task j's test split. In the sequential setting every task keeps its decoder/head and
only the shared encoder moves on, so a drop along column j is what fine-tuning on later
tasks did to the representation task j relies on.

Derived numbers (Dice; HD95 analogously):
* ``average[t]`` = mean over j <= t of entry (t, j): the paper's "average Dice" after task t;
* ``bwt`` (backward transfer) = mean over j < T of (entry(T, j) - entry(j, j)) for the last
  evaluated model T; negative means forgetting.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from ..io.atomic import atomic_write_json, atomic_write_text

__all__ = ["build_forgetting", "write_forgetting", "format_table"]


def _value(results: dict, t: str, j: str, key: str) -> Optional[float]:
    entry = results.get(t, {}).get(j)
    return None if entry is None else entry.get(key)


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def build_forgetting(order: list, results: dict) -> dict:
    """Arrange per-(model, task) results into matrices.

    Args:
        order: task names in sequence order.
        results: ``{t: {j: {"dice", "hd95", ...}}}`` (missing entries allowed).

    Returns:
        ``{"tasks": order, "dice": [[...]], "hd95": [[...]]`` (row t = model M_t, column j =
        task j; ``None`` above the diagonal or where not evaluated), ``"average_dice"``,
        ``"average_hd95"`` (per row), ``"bwt_dice"``, ``"bwt_hd95"`` (``None`` with fewer than
        two tasks), ``"final_model"``}.
    """
    order = list(order)
    dice = [[_value(results, t, j, "dice") if k <= i else None for k, j in enumerate(order)] for i, t in enumerate(order)]
    hd95 = [[_value(results, t, j, "hd95") if k <= i else None for k, j in enumerate(order)] for i, t in enumerate(order)]
    rows_done = [i for i, row in enumerate(dice) if all(v is not None for v in row[: i + 1])]
    last = rows_done[-1] if rows_done else None
    doc = {
        "tasks": order,
        "dice": dice,
        "hd95": hd95,
        "average_dice": [_mean(row[: i + 1]) for i, row in enumerate(dice)],
        "average_hd95": [_mean(row[: i + 1]) for i, row in enumerate(hd95)],
        "final_model": order[last] if last is not None else None,
        "bwt_dice": None,
        "bwt_hd95": None,
    }
    if last is not None and last >= 1:
        for key in ("dice", "hd95"):
            m = doc[key]
            diffs = [m[last][j] - m[j][j] for j in range(last) if m[j][j] is not None]
            doc[f"bwt_{key}"] = _mean(diffs)
    return doc


def _fmt(v: Optional[float], pct: bool) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.2f}"


def format_table(doc: dict, key: str = "dice") -> str:
    """Plain-text matrix (rows: model after task t; columns: evaluated task j), Dice in %."""
    pct = key == "dice"
    names = doc["tasks"]
    width = max([12] + [len(n) + 2 for n in names])
    lines = [f"{key.upper() + (' %' if pct else ' mm'):<{width}}" + "".join(f"{n:>{width}}" for n in names)
             + f"{'average':>{width}}"]
    for i, t in enumerate(names):
        cells = "".join(f"{_fmt(v, pct):>{width}}" for v in doc[key][i])
        lines.append(f"{'M[' + t + ']':<{width}}" + cells + f"{_fmt(doc['average_' + key][i], pct):>{width}}")
    bwt = doc.get(f"bwt_{key}")
    if bwt is not None:
        lines.append(f"backward transfer (M[{doc['final_model']}] minus each task's own score): {_fmt(bwt, pct)}")
    return "\n".join(lines)


def _csv(doc: dict) -> str:
    out = io.StringIO()
    out.write("metric,model,task,value\n")
    for key in ("dice", "hd95"):
        for i, t in enumerate(doc["tasks"]):
            for k, j in enumerate(doc["tasks"]):
                v = doc[key][i][k]
                if v is not None:
                    out.write(f"{key},{t},{j},{v:.6g}\n")
    return out.getvalue()


def write_forgetting(metrics_dir: Path, doc: dict) -> tuple[Path, Path]:
    """Write ``forgetting.json`` and ``forgetting.csv`` (long format: metric, model, task, value)."""
    metrics_dir = Path(metrics_dir)
    return (atomic_write_json(metrics_dir / "forgetting.json", doc),
            atomic_write_text(metrics_dir / "forgetting.csv", _csv(doc)))
