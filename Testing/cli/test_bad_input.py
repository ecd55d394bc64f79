"""Every kind of bad input: exit code 2, one line naming the file and the problem, workspace untouched."""

import json
import os
import shutil

import numpy as np
import pytest

from cli_helpers import make_nnunet, make_plain, run_cli, snapshot, write_image


def _expect_refusal(capsys, workspace, dataset, *matches, extra=()):
    before = snapshot(workspace)
    code, out, err = run_cli("add-task", workspace, dataset, *extra, capsys=capsys)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    for m in matches:
        assert m.lower() in lines[0].lower(), (m, lines[0])
    assert snapshot(workspace) == before
    return lines[0]


def _label(ds, case="case00"):
    return ds / "labelsTr" / f"{case}.nii.gz"


def _image(ds, case="case00"):
    return ds / "imagesTr" / f"{case}_0000.nii.gz"


def test_missing_path(tmp_path, workspace, capsys):
    _expect_refusal(capsys, workspace, tmp_path / "nope", "nope")


def test_path_is_a_file(tmp_path, workspace, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    _expect_refusal(capsys, workspace, f, "file.txt")


def test_empty_folder(tmp_path, workspace, capsys):
    (tmp_path / "empty").mkdir()
    _expect_refusal(capsys, workspace, tmp_path / "empty", "empty")


def test_malformed_dataset_json(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    (ds / "dataset.json").write_text("{ broken")
    _expect_refusal(capsys, workspace, ds, "dataset.json", "json")


def test_inconsistent_dataset_json(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    meta = json.loads((ds / "dataset.json").read_text())
    del meta["file_ending"]
    (ds / "dataset.json").write_text(json.dumps(meta))
    _expect_refusal(capsys, workspace, ds, "dataset.json", "file_ending")


def test_labels_without_background(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", labels={"organ": 1, "lesion": 2})
    _expect_refusal(capsys, workspace, ds, "dataset.json", "background")


def test_image_without_label(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    _label(ds, "case01").unlink()
    _expect_refusal(capsys, workspace, ds, "case01")


def test_label_without_image(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    _image(ds, "case02").unlink()
    _expect_refusal(capsys, workspace, ds, "case02")


def test_truncated_image(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    data = _image(ds, "case01").read_bytes()
    _image(ds, "case01").write_bytes(data[: len(data) // 2])
    _expect_refusal(capsys, workspace, ds, "case01_0000.nii.gz")


def test_corrupt_image(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    _image(ds, "case01").write_bytes(b"this is not an image at all" * 10)
    _expect_refusal(capsys, workspace, ds, "case01_0000.nii.gz")


def test_unsupported_format(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    meta = json.loads((ds / "dataset.json").read_text())
    meta["file_ending"] = ".png"
    (ds / "dataset.json").write_text(json.dumps(meta))
    _expect_refusal(capsys, workspace, ds, ".png")


def test_shape_mismatch(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    write_image(_label(ds, "case01"), np.zeros((16, 16, 12), np.uint8))
    _expect_refusal(capsys, workspace, ds, "case01")


@pytest.mark.parametrize("what, kw", [
    ("spacing", {"spacing": (2.0, 2.0, 3.5)}),
    ("origin", {"origin": (5.0, 0.0, 0.0)}),
    ("direction", {"direction": (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)}),
])
def test_geometry_mismatch(tmp_path, workspace, capsys, what, kw):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    lab = np.zeros((16, 16, 16), np.uint8)
    lab[4:8, 4:8, 4:8] = 1
    write_image(_label(ds, "case01"), lab, **kw)
    _expect_refusal(capsys, workspace, ds, "case01", what)


def test_non_integer_labels(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    lab = np.zeros((16, 16, 16), np.float32)
    lab[4:8, 4:8, 4:8] = 0.5
    write_image(_label(ds, "case01"), lab)
    _expect_refusal(capsys, workspace, ds, "case01", "integer")


def test_negative_labels(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    lab = np.zeros((16, 16, 16), np.int16)
    lab[4:8, 4:8, 4:8] = -1
    write_image(_label(ds, "case01"), lab)
    _expect_refusal(capsys, workspace, ds, "case01", "negative")


def test_undeclared_label_value(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    lab = np.zeros((16, 16, 16), np.uint8)
    lab[4:8, 4:8, 4:8] = 7
    write_image(_label(ds, "case01"), lab)
    _expect_refusal(capsys, workspace, ds, "case01", "7")


def test_empty_label_map_is_a_warning(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    write_image(_label(ds, "case01"), np.zeros((16, 16, 16), np.uint8))
    code, out, err = run_cli("add-task", workspace, ds, capsys=capsys)
    assert code == 0, err
    assert "case01" in (out + err) and "empty" in (out + err).lower()


def test_2d_image(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    write_image(_image(ds, "case01"), np.zeros((16, 16), np.float32))
    _expect_refusal(capsys, workspace, ds, "case01", "2d")


def test_4d_image(tmp_path, workspace, capsys):
    import SimpleITK as sitk

    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    img = sitk.JoinSeries([sitk.GetImageFromArray(np.zeros((16, 16, 16), np.float32))] * 2)
    sitk.WriteImage(img, str(_image(ds, "case01")))
    _expect_refusal(capsys, workspace, ds, "case01", "4d")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_voxels(tmp_path, workspace, capsys, value):
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
    arr = np.zeros((16, 16, 16), np.float32)
    arr[3, 3, 3] = value
    write_image(_image(ds, "case01"), arr)
    _expect_refusal(capsys, workspace, ds, "case01", "nan" if np.isnan(value) else "inf")


def test_absurd_size(tmp_path, workspace, capsys):
    """A header that claims 5000^3 voxels is refused before any voxel is read."""
    ds = make_nnunet(tmp_path / "Dataset001_X", size=16, ending=".mha")
    (ds / "imagesTr" / "case01_0000.mha").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 5000 5000 5000\nElementType = MET_SHORT\n"
        "ElementSpacing = 2 2 2.5\nElementDataFile = LOCAL\n")
    _expect_refusal(capsys, workspace, ds, "case01_0000.mha", "5000")


def test_duplicate_task_name(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    assert run_cli("add-task", workspace, ds, "--name", "liver", capsys=capsys)[0] == 0
    _expect_refusal(capsys, workspace, ds, "liver", "already exists", extra=("--name", "liver"))


def test_workspace_locked_by_another_process(tmp_path, workspace, capsys):
    import subprocess
    import sys

    ds = make_nnunet(tmp_path / "Dataset001_X")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from MedSeqFTLib.sequence.lock import WorkspaceLock\n"
        "with WorkspaceLock(%r, 'refine'):\n"
        "    print('locked', flush=True); time.sleep(30)\n") % (os.getcwd(), str(workspace))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        _expect_refusal(capsys, workspace, ds, "locked", "refine")
    finally:
        holder.kill()
        holder.wait()


def test_workspace_of_newer_schema(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    m = json.loads((workspace / "workspace.json").read_text())
    m["schema_version"] = 99
    (workspace / "workspace.json").write_text(json.dumps(m))
    _expect_refusal(capsys, workspace, ds, "workspace.json", "newer")


def test_not_a_workspace(tmp_path, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    (tmp_path / "plain").mkdir()
    code, _, err = run_cli("add-task", tmp_path / "plain", ds, capsys=capsys)
    assert code == 2 and "not a MedSeqFT workspace" in err


@pytest.mark.parametrize("argv, match", [
    (("select", "{ws}", "--task", "nope"), "unknown task 'nope'"),
    (("refine", "{ws}", "--device", "cpu"), "no tasks"),
    (("predict", "{ws}", "--task", "nope", "--out", "{tmp}/out", "{tmp}/img.nii.gz"), "nope"),
    (("evaluate", "{ws}"), "refine"),
    (("refine", "{ws}", "--device", "tpu"), "tpu"),
])
def test_job_commands_refuse_bad_input_without_touching_the_workspace(tmp_path, workspace, capsys, argv, match):
    before = snapshot(workspace)
    code, _, err = run_cli(*[a.format(ws=workspace, tmp=tmp_path) for a in argv], capsys=capsys)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and match in lines[0], err
    assert snapshot(workspace) == before
    assert not (workspace / "jobs").exists()


def test_refine_with_moved_data_leaves_task_status_unchanged(tmp_path, workspace, capsys):
    import shutil

    from MedSeqFTLib.sequence.workspace import Workspace

    ds = make_nnunet(tmp_path / "Dataset001_X", n=4, size=16)
    assert run_cli("add-task", workspace, ds, "--name", "t1", capsys=capsys)[0] == 0
    assert run_cli("select", workspace, "--runs", 2, capsys=capsys)[0] == 0
    shutil.rmtree(ds)
    before = snapshot(workspace)
    code, _, err = run_cli("refine", workspace, "--device", "cpu", capsys=capsys)
    assert code == 2 and len([l for l in err.splitlines() if l.strip()]) == 1, err
    assert Workspace.open(workspace).task("t1")["status"] == "selected"
    assert snapshot(workspace) == before


def test_evaluate_folders_without_any_foreground_is_bad_input(tmp_path, capsys):
    for folder in ("pred", "lab"):
        write_image(tmp_path / folder / "c1.nii.gz", np.zeros((8, 8, 8), np.uint8))
    code, _, err = run_cli("evaluate", "--pred", tmp_path / "pred", "--labels", tmp_path / "lab", capsys=capsys)
    assert code == 2 and "no foreground label value" in err and "Traceback" not in err


@pytest.mark.parametrize("layout", ["nnunet", "plain"])
def test_every_label_map_empty(tmp_path, workspace, capsys, layout):
    if layout == "nnunet":
        ds = make_nnunet(tmp_path / "Dataset001_X", size=16)
        for i in range(4):
            write_image(_label(ds, f"case{i:02d}"), np.zeros((16, 16, 16), np.uint8))
    else:
        ds = make_plain(tmp_path / "Dataset001_X", empty_labels=True)
    line = _expect_refusal(capsys, workspace, ds, "every label map is empty")
    assert f"error: {ds}: every label map is empty" in line, line  # names the dataset folder, not one file


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_task_name(tmp_path, workspace, capsys, name):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    line = _expect_refusal(capsys, workspace, ds, "must not be empty", extra=("--name", name))
    assert "error: --name: " in line, line


def test_blank_task_name_in_the_python_api(tmp_path, workspace):
    from MedSeqFTLib.errors import InputError
    from MedSeqFTLib.sequence.workspace import Workspace

    ds = make_nnunet(tmp_path / "Dataset001_X")
    before = snapshot(workspace)
    with pytest.raises(InputError, match="^--name: "):
        Workspace.open(workspace).add_task(ds, name="")
    assert snapshot(workspace) == before


@pytest.mark.parametrize("value", ["XRAY", "", "ct scan"])
def test_unknown_modality(tmp_path, workspace, capsys, value):
    ds = make_nnunet(tmp_path / "Dataset001_X")
    line = _expect_refusal(capsys, workspace, ds, "unknown modality", "CT, MR, PET, other", extra=("--modality", value))
    assert "error: --modality: " in line, line


@pytest.mark.parametrize("value", ["MR", "pet", "other"])
def test_modality_contradicting_dataset_json(tmp_path, workspace, capsys, value):
    ds = make_nnunet(tmp_path / "Dataset001_X")  # dataset.json channel_names {"0": "CT"}
    _expect_refusal(capsys, workspace, ds, "--modality", "contradicts", str(ds / "dataset.json"),
                    extra=("--modality", value))
