"""failed_classes on real case_metrics / summarize_cases output: a class present in some label
but never predicted is failed; one absent everywhere, or predicted somewhere, is not."""

from __future__ import annotations

import numpy as np
import pytest

from MedSeqFTLib.evaluation.metrics import case_metrics, summarize_cases
from MedSeqFTLib.sequence.validation import failed_classes

LABELS = {"background": 0, "liver": 1, "tumour": 2, "spleen": 3, "kidney": 4, "vessel": 5}
SPACING = (1.0, 1.0, 1.0)


def _cases():
    """Two 8^3 cases.

    liver (1): in case A's label, never predicted                          -> failed
    tumour (2): in no label and never predicted                            -> not failed
    spleen (3): in both labels, predicted in case B only                   -> not failed
    kidney (4): in case A's label; predicted only in case B (a false positive) -> not failed
                (the prediction is not empty on every case)
    vessel (5): predicted where it is, in both cases                      -> not failed
    """
    pred_a, lab_a = np.zeros((8, 8, 8), np.uint8), np.zeros((8, 8, 8), np.uint8)
    pred_b, lab_b = np.zeros((8, 8, 8), np.uint8), np.zeros((8, 8, 8), np.uint8)
    lab_a[0:2, 0:2, 0:2] = 1
    lab_a[4:6, 0:2, 0:2] = 3
    lab_b[4:6, 0:2, 0:2] = 3
    pred_b[4:6, 0:2, 0:3] = 3
    lab_a[0:2, 4:6, 0:2] = 4
    pred_b[0:2, 4:6, 0:2] = 4
    for lab, pred in ((lab_a, pred_a), (lab_b, pred_b)):
        lab[6:8, 6:8, 6:8] = 5
        pred[6:8, 6:8, 5:8] = 5
    return {"A": case_metrics(pred_a, lab_a, SPACING, LABELS), "B": case_metrics(pred_b, lab_b, SPACING, LABELS)}


def test_only_present_but_never_predicted_classes_fail():
    per_case = _cases()
    summary = summarize_cases(per_case)
    assert failed_classes(summary, per_case) == ["liver"]
    # the inputs say what the docstring of _cases says (guards against a wrong fixture)
    assert per_case["A"]["classes"]["liver"]["empty"] == "pred"
    assert per_case["B"]["classes"]["liver"]["empty"] == "both"
    assert {c["classes"]["tumour"]["empty"] for c in per_case.values()} == {"both"}
    assert summary["classes"]["kidney"]["n_empty_pred"] == 1 and summary["classes"]["kidney"]["n_empty_label"] == 1


def test_a_class_predicted_nowhere_and_present_everywhere_fails_and_order_follows_the_summary():
    per_case = _cases()
    # drop every prediction of spleen and vessel: both become failed, listed in the summary's order
    for case in per_case.values():
        for name in ("spleen", "vessel"):
            case["classes"][name]["empty"] = "pred"
    assert failed_classes(summarize_cases(per_case), per_case) == ["liver", "spleen", "vessel"]


def test_no_cases_or_no_classes_fail_nothing():
    assert failed_classes({"classes": {}}, {}) == []
    assert failed_classes({}, {}) == []
    assert failed_classes(summarize_cases({}), {}) == []


@pytest.mark.parametrize("flags,failed", [
    (["pred"], True),            # present, not predicted
    (["pred", "both"], True),    # present in one case only, predicted nowhere
    (["both", "both"], False),   # absent everywhere, predicted nowhere
    ([None, "pred"], False),     # predicted (and right) in one case
    (["label", "pred"], False),  # predicted in one case (false positive there)
    (["label"], False),          # only false positives: not "never predicted"
])
def test_flag_combinations(flags, failed):
    per_case = {f"c{i}": {"classes": {"x": {"empty": f}}} for i, f in enumerate(flags)}
    assert failed_classes({"classes": {"x": {}}}, per_case) == (["x"] if failed else [])
