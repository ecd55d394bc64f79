"""phantoms -> init -> add-task (xN) -> status, through the real command line."""

import json

import pytest

from cli_helpers import make_nnunet, run_cli, snapshot

from MedSeqFTLib.sequence.workspace import SCHEMA_VERSION, Workspace


def test_help_lists_every_subcommand(capsys):
    code, out, _ = run_cli("--help", capsys=capsys)
    assert code == 0
    for name in ("demo", "phantoms", "pretrain", "init", "add-task", "status", "select", "refine",
                 "predict", "evaluate", "report", "cancel", "benchmark"):
        assert f"    {name}" in out, name


def test_python_m_is_the_same_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "MedSeqFTLib", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("medseqft ")


def test_phantoms_init_add_task_status(tmp_path, foundation_file, capsys):
    code, out, err = run_cli("phantoms", tmp_path / "ph", "--tasks", 2, "--cases", 4, "--size", 24, "--seed", 3, capsys=capsys)
    assert code == 0, err
    datasets = [line for line in out.splitlines() if line.strip()]
    assert len(datasets) == 2
    ws = tmp_path / "ws"
    assert run_cli("init", ws, "--foundation", foundation_file, capsys=capsys)[0] == 0
    for d in datasets:
        code, out, err = run_cli("add-task", ws, d, capsys=capsys)
        assert code == 0, err
        assert "added task" in out
    code, out, err = run_cli("status", ws, capsys=capsys)
    assert code == 0, err
    w = Workspace.open(ws)
    assert len(w.task_names()) == 2
    for name in w.task_names():
        rec = w.task(name)
        assert f"{name} [added]" in out
        assert f"train {len(rec['split']['train'])} / test {len(rec['split']['test'])}" in out
        assert set(rec["split"]["train"]) | set(rec["split"]["test"]) == {c["id"] for c in rec["cases"]}
        assert not set(rec["split"]["train"]) & set(rec["split"]["test"])
        for label_name in rec["labels"]:
            assert label_name in out
    code, out, _ = run_cli("status", ws, "--json", capsys=capsys)
    s = json.loads(out)
    assert [t["cases"] for t in s["tasks"]] == [4, 4]


def test_split_is_80_20_and_seedable(tmp_path, workspace, capsys):
    ds = make_nnunet(tmp_path / "Dataset001_Cube", n=10, size=12)
    assert run_cli("add-task", workspace, ds, "--name", "a", capsys=capsys)[0] == 0
    assert run_cli("add-task", workspace, ds, "--name", "b", capsys=capsys)[0] == 0
    assert run_cli("add-task", workspace, ds, "--name", "c", "--split-seed", 7, capsys=capsys)[0] == 0
    w = Workspace.open(workspace)
    a, b, c = (w.task(n)["split"] for n in "abc")
    assert len(a["train"]) == 8 and len(a["test"]) == 2
    assert a["train"] == b["train"]  # same seed, same split
    assert sorted(a["test"]) != sorted(c["test"]) or a["train"] != c["train"]


def test_workspace_json_has_schema_and_foundation(workspace):
    m = json.loads((workspace / "workspace.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION
    assert len(m["foundation"]["sha256"]) == 64
    assert (workspace / "models" / "foundation.safetensors").exists()


def test_init_refuses_non_empty_folder(tmp_path, foundation_file, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "something.txt").write_text("keep me")
    before = snapshot(tmp_path / "x")
    code, _, err = run_cli("init", tmp_path / "x", "--foundation", foundation_file, capsys=capsys)
    assert code == 2 and "folder is not empty" in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path / "x") == before
