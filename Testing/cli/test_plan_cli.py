"""``medseqft plan``: the plan is stored at add-task, printed with reasons, overridden and validated."""

from __future__ import annotations

import json

from cli_helpers import make_nnunet, run_cli, snapshot

from MedSeqFTLib.io.atomic import read_json
from MedSeqFTLib.sequence.workspace import Workspace


def _add(workspace, tmp_path, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_Organ", n=5, size=20)
    code, out, err = run_cli("add-task", workspace, ds, "--name", "organ", capsys=capsys)
    assert code == 0, err
    return out


def test_add_task_stores_fingerprint_and_plan(workspace, tmp_path, capsys):
    out = _add(workspace, tmp_path, capsys)
    assert "plan (cpu): spacing" in out
    rec = read_json(workspace / "tasks" / "organ" / "task.json")
    fp = read_json(workspace / "tasks" / "organ" / "fingerprint.json")
    assert fp["n_cases"] == len(rec["split"]["train"])  # the plan sees the training split only
    values = rec["plan"]["values"]
    # make_nnunet writes spacing (2, 2, 2.5) for every case: the median spacing
    assert values["preprocess.spacing"] == [2.0, 2.0, 2.5]
    assert values["preprocess.normalization"] == "window"  # the foundation records a CT window
    assert all(p % 8 == 0 and p >= 16 for p in values["preprocess.patch_size"])
    cfg = Workspace.open(workspace).task_config("organ")
    assert cfg.preprocess.spacing == (2.0, 2.0, 2.5) and list(cfg.preprocess.patch_size) == values["preprocess.patch_size"]


def test_plan_prints_values_sources_and_reasons(workspace, tmp_path, capsys):
    _add(workspace, tmp_path, capsys)
    code, out, err = run_cli("plan", workspace, capsys=capsys)
    assert code == 0, err
    assert "preprocess.spacing" in out and "[plan] median spacing of" in out
    assert "retention.fft.iterations" in out and "[workspace]" in out
    code, out, _ = run_cli("plan", workspace, "--json", capsys=capsys)
    doc = json.loads(out)
    assert {r["key"] for r in doc["organ"]["settings"]} >= {"preprocess.spacing", "preprocess.patch_size"}


def test_overrides_are_validated_recorded_and_applied(workspace, tmp_path, capsys):
    _add(workspace, tmp_path, capsys)
    code, _, err = run_cli("plan", workspace, "--task", "organ", "--set", "preprocess.spacing=1.5,1.5,3",
                           "--set", "recipe.augment=false", "--set", "retention.fft.iterations=7", capsys=capsys)
    assert code == 0, err
    cfg = Workspace.open(workspace).task_config("organ")
    assert cfg.preprocess.spacing == (1.5, 1.5, 3.0) and cfg.recipe.augment is False and cfg.retention.fft.iterations == 7
    assert read_json(workspace / "tasks" / "organ" / "task.json")["overrides"]["retention.fft.iterations"] == 7
    code, out, _ = run_cli("plan", workspace, capsys=capsys)
    assert "[task override] set by the user" in out
    code, out, err = run_cli("status", workspace, capsys=capsys)
    assert "overrides: " in out and "augmentation off" in out
    # workspace-wide overrides sit under the task's own
    assert run_cli("plan", workspace, "--set", "retention.fft.iterations=9", "--set", "recipe.grad_clip=0",
                   capsys=capsys)[0] == 0
    cfg = Workspace.open(workspace).task_config("organ")
    assert cfg.retention.fft.iterations == 7 and cfg.recipe.grad_clip == 0
    assert run_cli("plan", workspace, "--task", "organ", "--unset", "retention.fft.iterations", capsys=capsys)[0] == 0
    assert Workspace.open(workspace).task_config("organ").retention.fft.iterations == 9


def test_bad_overrides_change_nothing(workspace, tmp_path, capsys):
    _add(workspace, tmp_path, capsys)
    before = snapshot(workspace)
    for args, words in [(["--set", "preprocess.spacing=1,2"], "preprocess.spacing"),
                        (["--set", "recipe.schedule=linear"], "recipe.schedule"),
                        (["--set", "nope.key=1"], "unknown setting 'nope.key'"),
                        (["--set", "arch.feature_size=16"], "shared by the whole sequence"),
                        (["--set", "novalue"], "KEY=VALUE"),
                        (["--unset", "recipe.augment"], "not overridden"),
                        (["--task", "missing", "--set", "recipe.augment=false"], "unknown task")]:
        code, out, err = run_cli("plan", workspace, *args, capsys=capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and words in lines[0], (args, err)
    assert snapshot(workspace) == before


def test_keys_lists_settable_settings(capsys):
    code, out, _ = run_cli("plan", "unused", "--keys", capsys=capsys)
    keys = out.split()
    assert code == 0 and "preprocess.spacing" in keys and "recipe.augment" in keys and "retention.kd_weight" in keys
    assert not any(k.startswith("arch.") for k in keys)
