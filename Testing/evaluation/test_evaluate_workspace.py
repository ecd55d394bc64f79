"""``medseqft evaluate WS``: per-task metrics on the original label grid and the forgetting matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.cli import main
from MedSeqFTLib.inference.loader import load_task_model
from MedSeqFTLib.inference.predict import predict_case

from synthetic_workspace import build_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("evaluate") / "ws", tasks=("alpha", "beta"), n_cases=3)


def _dice(p, g):
    return 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum()) if (p.sum() + g.sum()) else 1.0


def test_evaluate_writes_metrics_and_forgetting_that_match_an_independent_computation(ws, capsys):
    assert main(["evaluate", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "M[beta]" in out and "DICE %" in out
    metrics = json.loads((ws.metrics_dir / "metrics.json").read_text())
    forgetting = json.loads((ws.metrics_dir / "forgetting.json").read_text())
    assert set(metrics["tasks"]) == {"alpha", "beta"}
    assert forgetting["tasks"] == ["alpha", "beta"]
    assert forgetting["dice"][0][1] is None  # M_alpha never sees beta
    assert forgetting["dice"][0][0] == pytest.approx(metrics["tasks"]["alpha"]["dice"])
    assert set(metrics["tasks"]["alpha"]["cases"]) == set(ws.task("alpha")["split"]["test"])
    assert (ws.metrics_dir / "forgetting.csv").is_file()

    # entry (beta, alpha) = E_beta + alpha's decoder/head on alpha's test cases, scored on the original label grid
    record = ws.task("alpha")
    model = load_task_model(ws, "alpha", encoder_from="beta")
    per_case = []
    for case in record["cases"]:
        if case["id"] not in record["split"]["test"]:
            continue
        pred = sitk.GetArrayFromImage(predict_case(model, case["images"], ws, record))
        lab_img = sitk.ReadImage(case["label"])
        assert pred.shape == sitk.GetArrayFromImage(lab_img).shape
        lab = sitk.GetArrayFromImage(lab_img)
        per_case.append(np.mean([_dice(pred == v, lab == v) for v in (1, 2)]))
    assert forgetting["dice"][1][0] == pytest.approx(np.mean(per_case), rel=1e-6)
    # diagonal predictions are kept for the report's overlays
    for cid in record["split"]["test"]:
        assert (ws.metrics_dir / "predictions" / "alpha" / f"{cid}.nii.gz").is_file()


def test_evaluate_single_task_keeps_other_rows(ws):
    assert main(["evaluate", str(ws.root)]) == 0
    before = json.loads((ws.metrics_dir / "forgetting.json").read_text())
    assert main(["evaluate", str(ws.root), "--task", "alpha"]) == 0
    after = json.loads((ws.metrics_dir / "forgetting.json").read_text())
    assert after["dice"][1] == before["dice"][1]  # beta's row was not recomputed, and not dropped
    assert after["dice"][0][0] == pytest.approx(before["dice"][0][0])


def test_evaluate_bad_task_exit_2(ws, capsys):
    assert main(["evaluate", str(ws.root), "--task", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
