"""``medseqft evaluate --pred DIR --labels DIR``: matching by case name, numbers, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.cli import main
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.evaluation.evaluate import evaluate_folders

SPACING = (0.8, 1.1, 2.7)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    # folder mode has no workspace: its job folder goes under ~/.medseqft
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _write(path, arr_xyz, spacing=SPACING, origin=(1.0, -2.0, 3.0)):
    img = sitk.GetImageFromArray(np.transpose(arr_xyz.astype(np.uint8), (2, 1, 0)))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def _pair(tmp_path, n=2):
    rng = np.random.default_rng(1)
    truth = {}
    for i in range(n):
        lab = np.zeros((16, 14, 9), np.uint8)
        lab[3:10, 4:11, 2:7] = 1
        lab[5:8, 6:9, 3:5] = 2
        pred = lab.copy()
        pred[rng.random(lab.shape) < 0.05] = 0
        pred[9:12, 4:8, 2:4] = 1
        _write(tmp_path / "labels" / f"case{i}.nii.gz", lab)
        _write(tmp_path / "pred" / f"case{i}.nrrd", pred)  # another format, same case name
        truth[f"case{i}"] = (pred, lab)
    return truth


def _dice(p, g):
    return 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum())


def test_folder_evaluation_numbers_match_numpy(tmp_path):
    truth = _pair(tmp_path)
    (tmp_path / "pred" / "case0.labels.json").write_text(json.dumps({"background": 0, "organ": 1, "core": 2}))
    res = evaluate_folders(tmp_path / "pred", tmp_path / "labels")
    assert res["classes_used"] == {"background": 0, "organ": 1, "core": 2}
    for case, (pred, lab) in truth.items():
        for name, v in (("organ", 1), ("core", 2)):
            assert res["cases"][case]["classes"][name]["dice"] == pytest.approx(_dice(pred == v, lab == v), rel=1e-6)
    expected_mean = np.mean([np.mean([_dice(p == v, g == v) for v in (1, 2)]) for p, g in truth.values()])
    assert res["dice"] == pytest.approx(expected_mean, rel=1e-6)


def test_cli_ok_and_json_out(tmp_path, capsys):
    _pair(tmp_path)
    out = tmp_path / "res.json"
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels"), "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data["cases"]) == {"case0", "case1"}
    assert data["classes_used"] == {"background": 0, "1": 1, "2": 2}  # names from the label values
    assert "mean over 2 case(s)" in capsys.readouterr().out


def test_cli_unmatched_files_exit_2(tmp_path, capsys):
    _pair(tmp_path)
    _write(tmp_path / "pred" / "stray.nii.gz", np.zeros((16, 14, 9), np.uint8))
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels")])
    err = capsys.readouterr().err
    assert code == 2
    assert "stray" in err and "no label file" in err and len(err.strip().splitlines()) <= 2


def test_cli_missing_prediction_exit_2(tmp_path, capsys):
    _pair(tmp_path)
    (tmp_path / "pred" / "case1.nrrd").unlink()
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels")]) == 2
    assert "no prediction for case 'case1'" in capsys.readouterr().err


def test_cli_geometry_mismatch_exit_2(tmp_path, capsys):
    _pair(tmp_path)
    _write(tmp_path / "pred" / "case1.nrrd", np.zeros((16, 14, 9), np.uint8), spacing=(0.8, 1.1, 3.0))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels")]) == 2
    assert "grid differs" in capsys.readouterr().err


def test_cli_needs_both_folders(tmp_path):
    assert main(["evaluate", "--pred", str(tmp_path)]) == 2
    with pytest.raises(InputError):
        evaluate_folders(tmp_path / "nope", tmp_path)
