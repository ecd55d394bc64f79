"""``add-task --mode adapter``: the recorded support draw, and bad flags refused with exit 2 and nothing written."""

import json

import pytest

from cli_helpers import make_nnunet, run_cli, snapshot


def _task(ws, name):
    return json.loads((ws / "tasks" / name / "task.json").read_text())


def test_adapter_task_records_a_reproducible_support_draw(tmp_path, workspace, capsys):
    data = make_nnunet(tmp_path / "Dataset001_Cube", n=10)
    code, out, _ = run_cli("add-task", workspace, data, "--name", "a", "--mode", "adapter", "--method", "linear_probe",
                           "--shots", "3", "--shots-seed", "7", capsys=capsys)
    assert code == 0 and "linear_probe on 3 support case(s)" in out
    code, _, _ = run_cli("add-task", workspace, data, "--name", "b", "--mode", "adapter", "--method", "linear_probe",
                         "--shots", "3", "--shots-seed", "7", capsys=capsys)
    a, b = _task(workspace, "a"), _task(workspace, "b")
    assert a["mode"] == "adapter" and a["adapter"]["support"] == b["adapter"]["support"]
    assert len(a["adapter"]["support"]) == 3 and set(a["adapter"]["support"]) <= set(a["split"]["train"])
    run_cli("add-task", workspace, data, "--name", "c", "--mode", "adapter", "--method", "linear_probe",
            "--shots", "3", "--shots-seed", "8", capsys=capsys)
    assert _task(workspace, "c")["adapter"]["support"] != a["adapter"]["support"]
    run_cli("add-task", workspace, data, "--name", "plain", capsys=capsys)
    assert _task(workspace, "plain")["mode"] == "kg_rft" and "adapter" not in _task(workspace, "plain")
    code, out, _ = run_cli("status", workspace, "--json", capsys=capsys)
    tasks = {t["name"]: t for t in json.loads(out)["tasks"]}
    assert tasks["a"]["adapter"] == {"method": "linear_probe", "shots": 3, "transductive": False}


@pytest.mark.parametrize("flags, message", [
    (["--method", "lora"], "--mode adapter"),
    (["--shots", "2"], "--mode adapter"),
    (["--mode", "adapter", "--shots", "50"], "only 8 training case"),
    (["--mode", "adapter", "--shots", "0"], "must be >= 1"),
    (["--mode", "adapter", "--method", "bitfit"], "no bias"),
    (["--mode", "adapter", "--method", "lora", "--transductive"], "black-box"),
])
def test_bad_adapter_flags_exit_2_and_change_nothing(tmp_path, workspace, capsys, flags, message):
    data = make_nnunet(tmp_path / "Dataset001_Cube", n=10)
    before = snapshot(workspace)
    code, _, err = run_cli("add-task", workspace, data, *flags, capsys=capsys)
    assert code == 2 and message in err and len([line for line in err.splitlines() if "error" in line]) == 1
    assert snapshot(workspace) == before
