"""Right after training: per-class Dice of a task's models, failed classes, post-processing choice.

``check_model`` scores a freshly trained network (M_{t-mid} after KD-FFT, M_t after the merge)
on the task's test split with the product's own inference and metrics, and names every class
the model never predicts on any of those cases: such a class is reported in the events, in
``status`` and in the report as *failed* ("putamen never predicted"), not hidden as a 0 in a
table. ``decide_postprocessing`` chooses, per class, whether keeping only the largest connected
component raises Dice on the training cases (nnU-Net decides on its cross-validation
predictions; we have no held-out training folds, so the training cases stand in, and the test
split stays untouched by any decision).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["check_model", "failed_classes", "decide_postprocessing"]


def failed_classes(summary: dict, per_case: dict) -> list[str]:
    """Classes whose prediction is empty on every scored case (while some case has the class)."""
    out = []
    for name in summary.get("classes", {}):
        # "empty": None both non-empty, "pred" only the prediction empty, "label" only the label, "both"
        flags = [c["classes"][name]["empty"] for c in per_case.values() if name in c["classes"]]
        predicted = any(f in (None, "label") for f in flags)
        present = any(f in (None, "pred") for f in flags)
        if present and not predicted:
            out.append(name)
    return out


def check_model(ws, name: str, model, device, reporter=None, which: str = "M_t",
                keep_largest: Optional[list] = None) -> Optional[dict]:
    """Per-class Dice (%) of ``model`` on task ``name``'s labelled test cases.

    ``keep_largest``: class indices post-processed as inference will (``None``: none).

    Returns:
        ``{"model": which, "n_cases", "dice": mean %, "classes": {class: Dice %}, "failed": [class, ...]}``,
        or ``None`` when the task has no labelled test case.
    """
    from ..evaluation.evaluate import TestSet, evaluate_model_on_task

    test_set = TestSet(ws, name)
    if not test_set.cases:
        return None
    result = evaluate_model_on_task(ws, model, test_set, device=device, keep_largest=keep_largest or [])
    failed = failed_classes(result, result["cases"])
    out = {"model": which, "n_cases": len(test_set.cases), "dice": round(100 * result["dice"], 2),
           "classes": {c: round(100 * m["dice"], 2) for c, m in result["classes"].items()}, "failed": failed}
    if reporter is not None:
        per_class = ", ".join(f"{c} {d:.1f}" for c, d in out["classes"].items())
        reporter.log(f"{name}: {which} Dice on {out['n_cases']} test case(s): {per_class}", task=name)
        for c in failed:
            reporter.log(f"{name}: {which}: {c} never predicted (failed class)", level="warning", task=name)
    return out


def decide_postprocessing(ws, name: str, model, device, cfg) -> dict:
    """``{"keep_largest": [class index, ...], ...}`` for ``recipe.keep_largest == "auto"`` (see the module docstring).

    Returns ``{"keep_largest": []}`` without predicting when the setting is not ``"auto"``.
    """
    import numpy as np

    from ..inference.postprocess import decide_keep_largest
    from ..inference.predict import sliding_window_predict

    if cfg.recipe.keep_largest != "auto":
        return {"keep_largest": []}
    preds, labels = [], []
    cuda = getattr(device, "type", "cpu") == "cuda"
    for _, case in ws.prepared(name, "train"):
        preds.append(sliding_window_predict(model, case.image, cfg.preprocess.patch_size, device=device,
                                            overlap=float(cfg.recipe.sw_overlap), sw_batch_size=4 if cuda else 1))
        labels.append(np.asarray(case.label[0]))
    decision = decide_keep_largest(preds, labels, len(ws.labels(name)))
    decision["decided_on"] = f"{len(preds)} training cases"
    return decision
