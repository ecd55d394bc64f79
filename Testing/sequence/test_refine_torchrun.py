"""``torchrun --nproc_per_node 2 -m MedSeqFTLib refine WS --device cpu`` on the tiniest workspace (Gloo).

The run completes with one job folder (rank 0's), every task gets exactly one model, and the
MDS buffers equal those of a one-process run (rank 0 selects them with the same seeds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("tiny_workspace", BENCH / "tiny_workspace.py")
tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny)


def _refine(ws: Path, nproc: int, port: int, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    if nproc == 1:
        cmd = [sys.executable, "-m", "MedSeqFTLib", "refine", str(ws), "--device", "cpu", *extra]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port),
               "-m", "MedSeqFTLib", "refine", str(ws), "--device", "cpu", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_refine_completes_with_one_model_and_the_same_buffer(tmp_path):
    two = tiny.make_tiny_workspace(tmp_path / "two")
    one = tiny.make_tiny_workspace(tmp_path / "one", m0=tmp_path / "two" / "m0.safetensors")
    res = _refine(two, 2, _free_port())
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list((two / "jobs").iterdir())) == 1  # rank 0's job only
    for task in (two / "tasks").iterdir():
        files = sorted(p.name for p in (task / "model").iterdir())
        assert any(f.endswith(".safetensors") for f in files), files
        assert not list(task.glob("model/*.tmp*")), files
    res1 = _refine(one, 1, 0)
    assert res1.returncode == 0, res1.stderr[-3000:]
    for task in (two / "tasks").iterdir():
        a = json.loads((task / "buffer.json").read_text())["selected"] if (task / "buffer.json").is_file() else None
        b = json.loads((one / "tasks" / task.name / "buffer.json").read_text())["selected"] \
            if (one / "tasks" / task.name / "buffer.json").is_file() else None
        assert a == b


def test_other_commands_refuse_torchrun(tmp_path, monkeypatch, capsys):
    from MedSeqFTLib.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["status", str(tmp_path)]) == 2
    assert "only 'refine'" in capsys.readouterr().err
