"""``add-task --modality``: sets a plain folder's modality, must agree with an nnU-Net dataset.json."""

import pytest

from cli_helpers import make_nnunet, make_plain, run_cli

from MedSeqFTLib.sequence.workspace import Workspace


def _add(workspace, ds, capsys, *extra):
    code, out, err = run_cli("add-task", workspace, ds, "--name", "t1", *extra, capsys=capsys)
    assert code == 0, (out, err)
    return Workspace.open(workspace).task("t1"), out


@pytest.mark.parametrize("given, stored", [("MR", "MR"), ("mr", "MR"), ("Pet", "PET"), ("OTHER", "other"), ("ct", "CT")])
def test_plain_folder_takes_the_given_modality(tmp_path, workspace, capsys, given, stored):
    rec, out = _add(workspace, make_plain(tmp_path / "p"), capsys, "--modality", given)
    assert rec["modality"] == stored
    assert rec["channel_names"] == {"0": stored}
    assert not any("guessed" in w for w in rec["warnings"])
    assert f", {stored}):" in out


def test_plain_folder_without_modality_is_guessed_and_says_how_to_set_it(tmp_path, workspace, capsys):
    rec, out = _add(workspace, make_plain(tmp_path / "p"), capsys)
    assert rec["modality"] == "CT" and rec["channel_names"] == {"0": "CT"}
    guess = [w for w in rec["warnings"] if "modality guessed as CT" in w]
    assert len(guess) == 1 and "pass --modality to set it" in guess[0]


@pytest.mark.parametrize("given", ["CT", "ct"])
def test_nnunet_modality_equal_to_dataset_json_is_accepted(tmp_path, workspace, capsys, given):
    rec, _ = _add(workspace, make_nnunet(tmp_path / "Dataset001_X"), capsys, "--modality", given)
    assert rec["modality"] == "CT" and rec["channel_names"] == {"0": "CT"}


def test_channels_names_a_plain_folders_channel_and_excludes_modality(tmp_path, workspace, capsys):
    rec, _ = _add(workspace, make_plain(tmp_path / "p"), capsys, "--channels", "ct")
    assert rec["modality"] == "CT" and rec["channel_modalities"] == ["CT"]
    code, _, err = run_cli("add-task", workspace, make_plain(tmp_path / "q"), "--name", "q", "--channels", "CT",
                           "--modality", "MR", capsys=capsys)
    assert code == 2 and "either --modality or --channels" in err
    code, _, err = run_cli("add-task", workspace, make_plain(tmp_path / "r"), "--name", "r", "--channels", "CT,PET",
                           capsys=capsys)
    assert code == 2 and "channel suffix" in err  # two channels need CASE_0000 + CASE_0001 files
