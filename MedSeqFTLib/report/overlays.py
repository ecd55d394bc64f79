"""Overlay PNGs: test slices in grey with reference and predicted labels side by side.

Slices are axial planes of the image as stored (SimpleITK array index z), drawn with the
voxel aspect ratio of the file, so a thick-slice scan does not look squashed. The slices
shown are those with the largest reference area, one per test case first, then further
slices of the first cases at the quartiles of their labelled extent.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from .plots import pyplot, save_figure

__all__ = ["choose_slices", "render_overlay", "task_overlays"]

_CMAP_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]


def choose_slices(labels: list, n: int) -> list[tuple[int, int]]:
    """Pick ``n`` (case index, z) pairs with labelled content.

    Args:
        labels: per case, a (Z, Y, X) label array.
        n: how many slices.

    Returns:
        Up to ``n`` distinct pairs: first the slice of largest label area of each case, then
        the quartile slices of each case's labelled z-range. Cases without labels contribute
        their middle slice only if nothing else is left.
    """
    chosen: list = []
    for ci, lab in enumerate(labels):
        area = (lab > 0).reshape(lab.shape[0], -1).sum(1)
        if area.max() > 0:
            chosen.append((ci, int(area.argmax())))
    for ci, lab in enumerate(labels):
        zs = np.nonzero((lab > 0).reshape(lab.shape[0], -1).any(1))[0]
        if zs.size:
            for q in (0.25, 0.75, 0.5):
                pair = (ci, int(zs[int(q * (zs.size - 1))]))
                if pair not in chosen:
                    chosen.append(pair)
    for ci, lab in enumerate(labels):
        pair = (ci, lab.shape[0] // 2)
        if pair not in chosen:
            chosen.append(pair)
    return chosen[:n]


def _window(image: np.ndarray, modality: str, ct_window) -> tuple[float, float]:
    if str(modality).upper() == "CT":
        return float(ct_window[0]), float(ct_window[1])
    lo, hi = np.percentile(image, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def render_overlay(image: np.ndarray, label: np.ndarray, pred: np.ndarray, spacing_xy: tuple, classes: dict,
                   title: str, path: Path, window: tuple) -> Path:
    """Draw one slice: image, image + reference, image + prediction (filled, with contours).

    Args:
        image, label, pred: (Y, X) slices.
        spacing_xy: (x, y) spacing in mm, for the aspect ratio.
        classes: label name -> value (background skipped).
        window: (low, high) grey window.
    """
    from matplotlib.colors import ListedColormap

    plt = pyplot()
    fg = [(n, int(v)) for n, v in classes.items() if int(v) != 0]
    aspect = float(spacing_xy[1]) / float(spacing_xy[0])
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
    for ax, (sub, lab) in zip(axes, [("image", None), ("reference", label), ("prediction", pred)]):
        ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="nearest")
        if lab is not None:
            for k, (name, value) in enumerate(fg):
                mask = lab == value
                if not mask.any():
                    continue
                colour = _CMAP_COLOURS[k % len(_CMAP_COLOURS)]
                ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([colour]), alpha=0.35,
                          aspect=aspect, interpolation="nearest")
                ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.0)
        ax.set_title(sub)
        ax.axis("off")
    handles = [plt.Line2D([0], [0], color=_CMAP_COLOURS[k % len(_CMAP_COLOURS)], lw=3, label=name)
               for k, (name, _) in enumerate(fg)]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.1, wspace=0.03)
    return save_figure(fig, path)


def task_overlays(ws, name: str, pred_dir: Path, out_dir: Path, n_slices: int = 3) -> list[tuple[Path, str]]:
    """Overlay PNGs of saved test predictions of task ``name``.

    Args:
        ws: the ``Workspace``.
        name: task.
        pred_dir: folder with ``<case>.nii.gz`` predictions (``WS/metrics/predictions/<name>``).
        out_dir: where the PNGs go (``overlay_<task>_<k>.png``).
        n_slices: number of slices.

    Returns:
        ``[(png path, caption)]``; empty when there are no saved predictions.
    """
    import SimpleITK as sitk

    from ..data.imageio import read_image

    record = ws.task(name)
    by_id = {c["id"]: c for c in record["cases"]}
    cases = []
    for cid in record["split"]["test"]:
        case = by_id.get(cid)
        pred_path = Path(pred_dir) / f"{cid}.nii.gz"
        if case is None or not case.get("label") or not pred_path.is_file():
            continue
        img = read_image(case["images"][0])
        cases.append((cid, sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(read_image(case["label"])),
                      sitk.GetArrayFromImage(read_image(pred_path)), img.GetSpacing()))
        if len(cases) >= max(1, n_slices):
            break
    if not cases:
        return []
    out = []
    for k, (ci, z) in enumerate(choose_slices([c[2] for c in cases], n_slices)):
        cid, image, label, pred, spacing = cases[ci]
        window = _window(image, record.get("modality", ""), ws.config.preprocess.ct_window)
        caption = f"{name}, case {cid}, slice z={z}"
        path = render_overlay(image[z], label[z], pred[z], (spacing[0], spacing[1]), record["labels"], caption,
                              Path(out_dir) / f"overlay_{name}_{k}.png", window)
        out.append((path, caption))
    return out

