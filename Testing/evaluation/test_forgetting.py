"""Forgetting matrix layout, averages, backward transfer and the CSV file."""

from __future__ import annotations

import csv

import pytest

from MedSeqFTLib.evaluation.forgetting import build_forgetting, format_table, write_forgetting


def _results():
    return {
        "a": {"a": {"dice": 0.80, "hd95": 4.0}},
        "b": {"a": {"dice": 0.70, "hd95": 6.0}, "b": {"dice": 0.60, "hd95": 5.0}},
        "c": {"a": {"dice": 0.65, "hd95": 7.0}, "b": {"dice": 0.50, "hd95": 9.0}, "c": {"dice": 0.90, "hd95": 2.0}},
    }


def test_matrix_averages_and_bwt():
    doc = build_forgetting(["a", "b", "c"], _results())
    assert doc["dice"] == [[0.80, None, None], [0.70, 0.60, None], [0.65, 0.50, 0.90]]
    assert doc["average_dice"] == pytest.approx([0.80, 0.65, (0.65 + 0.50 + 0.90) / 3])
    # BWT = mean over j < T of R[T, j] - R[j, j]
    assert doc["bwt_dice"] == pytest.approx(((0.65 - 0.80) + (0.50 - 0.60)) / 2)
    assert doc["bwt_hd95"] == pytest.approx(((7.0 - 4.0) + (9.0 - 5.0)) / 2)
    assert doc["final_model"] == "c"


def test_incomplete_last_row_uses_last_complete_model():
    res = _results()
    del res["c"]["a"]
    doc = build_forgetting(["a", "b", "c"], res)
    assert doc["final_model"] == "b"
    assert doc["bwt_dice"] == pytest.approx(0.70 - 0.80)
    assert build_forgetting(["a"], {"a": res["a"]})["bwt_dice"] is None


def test_files_and_table(tmp_path):
    doc = build_forgetting(["a", "b", "c"], _results())
    js, cs = write_forgetting(tmp_path, doc)
    rows = list(csv.DictReader(cs.open()))
    assert len(rows) == 12  # 6 entries x (dice, hd95)
    assert {"metric": "dice", "model": "c", "task": "b", "value": "0.5"} in rows
    table = format_table(doc, "dice")
    assert "M[c]" in table and "65.0" in table and "backward transfer" in table
