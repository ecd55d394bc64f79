"""``medseqft evaluate``: score task models on test splits, or external predictions on labels.

Workspace mode: every finished model M_t is run on the test split of every task j <= t with
task j's decoder/head and M_t's encoder E_t (see ``inference.loader.load_task_model``). Each
test case is predicted back into its original geometry and compared with its original label
file, so Dice and HD95 are measured on the grid the annotator drew on, in millimetres.

Folder mode: predictions and labels matched by case name (file name without its image
suffix); every file must have a partner on the same grid.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_write_json, read_json
from .metrics import case_metrics, summarize_cases

__all__ = ["TestSet", "evaluate_model_on_task", "evaluate_workspace", "evaluate_folders", "METRIC_DEFINITION"]

METRIC_DEFINITION = {
    "dice": "per class 2|P&G|/(|P|+|G|) on the original label grid; case value = mean over foreground classes",
    "hd95": "MONAI HausdorffDistanceMetric(percentile=95) in mm with the label's spacing: "
            "max of the two directed 95th percentiles of surface-voxel distances",
    "empty": "both empty: Dice 1, HD95 0; one empty: Dice 0, HD95 = image diagonal in mm (counted in the means)",
    "forgetting": "row t, column j: encoder E_t of model M_t with task j's decoder/head on task j's test split",
}


def _label_array(path: Path, reference) -> tuple[np.ndarray, tuple]:
    """(X, Y, Z) label values of ``path`` and its spacing; its grid must match ``reference``."""
    from ..data.imageio import Geometry, read_image, sitk_to_ras_array

    img = read_image(path)
    # same tolerance as training's preprocessing, so every case that trained also evaluates
    problem = Geometry.from_image(img).matches(Geometry.from_image(reference), tol=1e-3)
    if problem is not None:
        raise InputError(path, f"label grid differs from its image: {problem}")
    arr, _ = sitk_to_ras_array(img)
    return arr, tuple(img.GetSpacing())


class TestSet:
    """Preprocessed test cases of one task, read once and shared by every model evaluated on it.

    The preprocessed arrays come from the workspace cache (``WS/cache``), so evaluating
    again, or evaluating several models, does not resample the images again.
    """

    def __init__(self, ws, name: str):
        from ..data.imageio import read_image

        self.record = ws.task(name)
        by_id = {c["id"]: c for c in self.record["cases"]}
        ids = [cid for cid in self.record["split"]["test"] if by_id[cid].get("label")]  # unlabelled: not scorable
        self.cases = {}
        for cid, case in ws.prepared(name, ids=ids):
            reference = read_image(Path(by_id[cid]["images"][0]))
            label, spacing = _label_array(Path(by_id[cid]["label"]), reference)
            self.cases[cid] = ((case.image, case.affine, reference), label, spacing)


def evaluate_model_on_task(ws, model, test_set: TestSet, device=None, save_dir: Optional[Path] = None,
                           reporter=None, label: str = "", step0: int = 0, total: int = 0,
                           keep_largest: Optional[list] = None) -> dict:
    """Score ``model`` on a task's test cases.

    Args:
        ws: the ``Workspace``.
        model: a ``SegNet`` on ``device`` whose head fits the task's labels.
        test_set: the task's ``TestSet``.
        device: torch device.
        save_dir: if given, each prediction is written there as ``<case>.nii.gz``.
        reporter: progress (stage ``"evaluate"``) when ``total`` > 0, counting from ``step0``.
        label: what the progress message calls this (model, task) pair.
        keep_largest: class indices reduced to their largest component; ``None`` = the task
            model's recorded decision (``inference.predict.postprocess_classes``).

    Returns:
        ``summarize_cases`` result plus ``"cases": {case id: case_metrics}``.
    """
    from ..data.imageio import sitk_to_ras_array
    from ..inference.predict import predict_prepared, write_prediction

    per_case = {}
    for i, (cid, (prepared, label, spacing)) in enumerate(test_set.cases.items(), start=1):
        if reporter is not None:
            reporter.check_cancel()
        pred_img = predict_prepared(model, prepared, ws, test_set.record, device=device, keep_largest=keep_largest)
        if save_dir is not None:
            write_prediction(pred_img, Path(save_dir) / f"{cid}.nii.gz", test_set.record["labels"])
        pred, _ = sitk_to_ras_array(pred_img)
        per_case[cid] = case_metrics(pred, label, spacing, test_set.record["labels"])
        if reporter is not None and total:
            # one bar over all (model, task) pairs: the task field stays None so the ETA spans the whole run
            reporter.progress("evaluate", None, step0 + i, total,
                              losses={"dice": per_case[cid]["dice"]}, message=f"{label}, case {cid}")
    out = summarize_cases(per_case)
    out["cases"] = per_case
    return out


def evaluate_workspace(ws, task: Optional[str] = None, reporter=None, device: str = "auto") -> dict:
    """Evaluate finished models and write ``WS/metrics/{metrics.json, forgetting.json, forgetting.csv}``.

    Args:
        ws: the ``Workspace``.
        task: only evaluate this task's model M_task (its forgetting row and its own score);
            results of other models already on disk are kept. ``None``: every finished model.
        reporter: progress as stage ``"evaluate"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...

    Returns:
        The forgetting document (see ``forgetting.build_forgetting``).

    Raises:
        InputError: unknown or unfinished ``task``, no finished task at all, unreadable test files.
    """
    from ..inference.loader import finished_tasks, load_task_model, require_finished
    from ..devices import resolve_device
    from .forgetting import build_forgetting, write_forgetting

    done = finished_tasks(ws)
    if task is not None:
        require_finished(ws, task)
        rows = [task]
    else:
        if not done:
            raise InputError(ws.root, "no task has a finished model yet; run 'medseqft refine' first")
        rows = done
    dev = resolve_device(device)
    metrics_dir = ws.metrics_dir
    results_path = metrics_dir / "results.json"
    results = read_json(results_path) if (task is not None and results_path.is_file()) else {}
    results = {t: dict(v) for t, v in results.get("results", {}).items() if t in done} if results else {}

    pairs = [(t, j) for t in rows for j in done[: done.index(t) + 1]]
    test_sets: dict = {}
    total = 0
    for _, j in pairs:
        if j not in test_sets:
            test_sets[j] = TestSet(ws, j)
        total += len(test_sets[j].cases)
    step = 0
    for t, j in pairs:
        model = load_task_model(ws, j, encoder_from=t).to(dev)
        save_dir = metrics_dir / "predictions" / j if t == j else None
        t0 = time.time()
        res = evaluate_model_on_task(ws, model, test_sets[j], device=dev, save_dir=save_dir, reporter=reporter,
                                     label=f"M[{t}] on {j}", step0=step, total=total)
        step += len(test_sets[j].cases)
        res.update({"encoder_from": t, "decoder_from": j, "seconds": round(time.time() - t0, 3)})
        results.setdefault(t, {})[j] = res
        if reporter is not None:
            reporter.log(f"M[{t}] on {j}: Dice {res['dice'] if res['dice'] is not None else float('nan'):.4f}, "
                         f"HD95 {res['hd95'] if res['hd95'] is not None else float('nan'):.2f} mm "
                         f"({res['n_cases']} cases)", stage="evaluate", task=t)

    atomic_write_json(results_path, {"definition": METRIC_DEFINITION, "results": results})
    metrics = {"definition": METRIC_DEFINITION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "tasks": {t: results[t][t] for t in done if t in results and t in results[t]}}
    atomic_write_json(metrics_dir / "metrics.json", metrics)
    doc = build_forgetting(done, results)
    write_forgetting(metrics_dir, doc)
    return doc


def _case_files(folder: Path, kind: str) -> dict:
    from ..data.imageio import image_suffix

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, f"{kind} folder not found")
    files = {}
    for p in sorted(folder.iterdir()):
        suffix = image_suffix(p)
        if p.is_file() and suffix is not None:
            case = p.name[: -len(suffix)]
            if case in files:
                raise InputError(p, f"two {kind} files for case {case!r} ({files[case].name})")
            files[case] = p
    if not files:
        raise InputError(folder, f"no image files in the {kind} folder")
    return files


def _classes_for_folders(pred_dir: Path, labels_json: Optional[Path], label_arrays: list) -> dict:
    if labels_json is not None:
        data = read_json(labels_json)
    else:
        sidecars = sorted(Path(pred_dir).glob("*.labels.json"))
        data = read_json(sidecars[0]) if sidecars else None
    if data is not None:
        if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
            raise InputError(labels_json or sidecars[0], "expected a JSON object {label name: integer value}")
        return dict(data)
    values = sorted({int(v) for arr in label_arrays for v in np.unique(arr)} - {0})
    return {"background": 0, **{str(v): v for v in values}}


def evaluate_folders(pred_dir: Path, labels_dir: Path, labels_json: Optional[Path] = None, reporter=None) -> dict:
    """Score external predictions against reference labels, matched by case name.

    Class names come from ``labels_json``, else from a ``*.labels.json`` sidecar in
    ``pred_dir`` (written by ``medseqft predict``), else from the values in the labels.

    Returns:
        ``summarize_cases`` result plus ``"cases"`` and ``"classes_used"``.

    Raises:
        InputError: missing folder, a prediction without a label (or the reverse), or a
            prediction whose grid differs from its label's.
    """
    from ..data.imageio import Geometry, read_image, sitk_to_ras_array

    preds = _case_files(pred_dir, "prediction")
    labels = _case_files(labels_dir, "label")
    only_pred = sorted(set(preds) - set(labels))
    only_label = sorted(set(labels) - set(preds))
    if only_pred:
        raise InputError(preds[only_pred[0]], f"no label file for case {only_pred[0]!r} in {labels_dir} "
                                              f"({len(only_pred)} unmatched prediction(s))")
    if only_label:
        raise InputError(labels[only_label[0]], f"no prediction for case {only_label[0]!r} in {pred_dir} "
                                                f"({len(only_label)} unmatched label(s))")
    pairs = {}
    for case in sorted(preds):
        p_img, l_img = read_image(preds[case]), read_image(labels[case])
        problem = Geometry.from_image(p_img).matches(Geometry.from_image(l_img))
        if problem is not None:
            raise InputError(preds[case], f"grid differs from label {labels[case].name}: {problem}")
        pairs[case] = (sitk_to_ras_array(p_img)[0], sitk_to_ras_array(l_img)[0], tuple(l_img.GetSpacing()))
    classes = _classes_for_folders(pred_dir, labels_json, [lab for _, lab, _ in pairs.values()])
    if not any(int(v) != 0 for v in classes.values()):
        raise InputError(labels_dir, "no foreground label value in any label file; name the classes with --classes")
    per_case = {}
    for i, (case, (pred, lab, spacing)) in enumerate(pairs.items(), start=1):
        per_case[case] = case_metrics(pred, lab, spacing, classes)
        if reporter is not None:
            reporter.progress("evaluate", None, i, len(pairs), losses={"dice": per_case[case]["dice"]})
    out = summarize_cases(per_case)
    out["cases"] = per_case
    out["classes_used"] = classes
    return out
