"""The headless sequence runner (MedSeqFTLogic.run_sequence) against the fake CLI process."""

import sys
from pathlib import Path

from MedSeqFTUI.batch import run_sequence, sequence_steps

FAKE = [sys.executable, str(Path(__file__).with_name("fake_cli.py"))]


def test_sequence_runs_every_step_in_order(tmp_path):
    d1, d2 = tmp_path / "liver", tmp_path / "pancreas"
    d1.mkdir()
    d2.mkdir()
    ws = tmp_path / "ws"
    assert run_sequence(ws, [d1, d2], device="cpu", cli_prefix=FAKE) == 0
    calls = (ws / "calls.txt").read_text().splitlines()
    assert calls == ["init --foundation demo --preset cpu_demo", f"add-task {d1}", f"add-task {d2}",
                     "select", "refine --device cpu", "evaluate"]
    # an existing workspace is not re-initialised
    assert sequence_steps(ws, [d1])[0] == ["add-task", ws, d1]


def test_sequence_stops_at_bad_input_with_its_exit_code(tmp_path):
    ws = tmp_path / "ws"
    code = run_sequence(ws, [tmp_path / "missing"], cli_prefix=FAKE)
    assert code == 2
    assert (ws / "calls.txt").read_text().splitlines() == ["init --foundation demo --preset cpu_demo"]
