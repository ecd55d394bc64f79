"""Figures of the report: loss curves, forgetting heat map, per-layer parameter change (paper Fig. 4).

matplotlib (Agg backend) is imported inside each function so the CLI stays fast. Each
function writes one PNG and returns its path (``None`` when there is nothing to draw).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..io.atomic import atomic_write_with

__all__ = ["pyplot", "save_figure", "plot_loss_curves", "plot_forgetting", "layer_changes", "plot_param_change"]


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    plt = pyplot()
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    finally:
        plt.close(fig)
    return Path(path)


def plot_loss_curves(task: str, stages: dict, path: Path) -> Optional[Path]:
    """One panel per stage, one line per loss name.

    Args:
        task: task name (title).
        stages: stage name -> ``{"losses": {name: [[step, value], ...]}, ...}`` (record.json).
        path: PNG to write.
    """
    plottable = {s: info for s, info in stages.items() if isinstance(info, dict) and info.get("losses")}
    if not plottable:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(plottable), figsize=(4.2 * len(plottable), 3.2), squeeze=False)
    for ax, (stage, info) in zip(axes[0], plottable.items()):
        lows, highs = [], []
        for name, points in info["losses"].items():
            pts = np.asarray(points, dtype=float).reshape(-1, 2)
            if len(pts):
                ax.plot(pts[:, 0], pts[:, 1], label=name)
                lows.append(float(pts[:, 1].min()))
                highs.append(float(pts[:, 1].max()))
        ax.set_title(f"{task}: {stage}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        # losses span decades (a linear axis hides the late phase), but a near-zero first KD
        # loss (student == teacher at step 1) would squash a log axis
        if lows and min(lows) > 0 and min(lows) > 1e-4 * max(highs):
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_forgetting(doc: dict, path: Path) -> Optional[Path]:
    """Heat map of the Dice forgetting matrix (rows: model M_t, columns: task j)."""
    names = doc.get("tasks") or []
    if not names:
        return None
    plt = pyplot()
    mat = np.array([[np.nan if v is None else 100 * v for v in row] for row in doc["dice"]], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 1.8))
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=100)
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.1f}", ha="center", va="center", color="w" if mat[i, j] < 60 else "k")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), [f"M[{n}]" for n in names])
    ax.set_xlabel("evaluated task j")
    ax.set_ylabel("model after task t")
    fig.colorbar(im, ax=ax, label="Dice %")
    fig.tight_layout()
    return save_figure(fig, path)


def _layer_of(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else param


def layer_changes(before: dict, after: dict) -> list[tuple[str, float]]:
    """Mean |W_after - W_before| per encoder layer, in the order of ``after``.

    A layer is a module (parameter name without ``.weight``/``.bias``); integer buffers and
    normalisation statistics (``running_*``, ``num_batches_tracked``) are skipped.

    Args:
        before, after: encoder-relative state dicts of torch tensors (same keys and shapes).

    Returns:
        ``[(layer, mean |dW|)]`` over the elements of all of the layer's weight/bias tensors.
    """
    sums: dict = {}
    for name, w in after.items():
        if name not in before or not (name.endswith("weight") or name.endswith("bias")) or not w.is_floating_point():
            continue
        if tuple(before[name].shape) != tuple(w.shape):
            continue
        diff = (w.double() - before[name].double()).abs()
        total, count = sums.get(_layer_of(name), (0.0, 0))
        sums[_layer_of(name)] = (total + float(diff.sum()), count + diff.numel())
    return [(layer, total / count) for layer, (total, count) in sums.items() if count]


def plot_param_change(transitions: list, path: Path) -> Optional[Path]:
    """Paper Fig. 4: mean |dW| per encoder layer for each step M_{t-1} -> M_t.

    Args:
        transitions: ``[(label, [(layer, value), ...]), ...]``.
    """
    transitions = [(lab, ch) for lab, ch in transitions if ch]
    if not transitions:
        return None
    plt = pyplot()
    n_layers = max(len(ch) for _, ch in transitions)
    fig, ax = plt.subplots(figsize=(min(16, 4 + 0.12 * n_layers), 3.6))
    for label, changes in transitions:
        ax.plot(range(len(changes)), [v for _, v in changes], marker="o", markersize=3, label=label)
    names = [layer for layer, _ in transitions[0][1]]
    step = max(1, len(names) // 20)
    ax.set_xticks(range(0, len(names), step), [names[i] for i in range(0, len(names), step)], rotation=60,
                  ha="right", fontsize=7)
    ax.set_ylabel("mean |ΔW|")
    ax.set_xlabel("encoder layer (input → deep)")
    ax.set_title("Per-layer parameter change of the encoder")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
