"""Same seed on CPU -> byte-identical buffer manifests and equal metrics (select + refine + evaluate).

Two workspaces are built independently from the same seed in different folders and run in this
process (one torch import), with one thread.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _pipeline(folder: Path, m0=None) -> Path:
    import torch

    from tiny_workspace import make_tiny_workspace
    from MedSeqFTLib.evaluation.evaluate import evaluate_workspace
    from MedSeqFTLib.sequence.runner import refine_workspace
    from MedSeqFTLib.sequence.workspace import Workspace

    torch.set_num_threads(1)
    ws_dir = make_tiny_workspace(folder, seed=5, m0=m0)
    refine_workspace(Workspace.open(ws_dir), device="cpu")
    evaluate_workspace(Workspace.open(ws_dir), device="cpu")
    return ws_dir


def test_same_seed_same_manifests_and_metrics(tmp_path):
    a = _pipeline(tmp_path / "a")
    # the same foundation file (pretraining is deterministic too, but its metadata holds a time stamp)
    b = _pipeline(tmp_path / "b", m0=tmp_path / "a" / "m0.safetensors")
    tasks = json.loads((a / "workspace.json").read_text())["tasks"]
    assert len(tasks) == 2
    for t in tasks:
        assert (a / "tasks" / t / "buffer.json").read_bytes() == (b / "tasks" / t / "buffer.json").read_bytes()
        # the trained weights are identical too
        for f in ("encoder.safetensors", "decoder.safetensors"):
            assert (a / "tasks" / t / "model" / f).read_bytes() == (b / "tasks" / t / "model" / f).read_bytes()
    fa = json.loads((a / "metrics" / "forgetting.json").read_text())
    fb = json.loads((b / "metrics" / "forgetting.json").read_text())
    assert fa["dice"] == fb["dice"] and fa["hd95"] == fb["hd95"]
    assert any(v is not None for row in fa["dice"] for v in row)
