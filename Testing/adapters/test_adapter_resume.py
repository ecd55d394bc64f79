"""An adapter task cancelled half-way resumes to exactly the result of an uninterrupted run."""

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from MedSeqFTLib.errors import Cancelled, InputError
from MedSeqFTLib.jobs.reporter import NullReporter
from MedSeqFTLib.sequence.runner import refine_workspace
from MedSeqFTLib.sequence.workspace import Workspace

torch.set_num_threads(1)
_HELPER = Path(__file__).resolve().parents[1] / "benchmarks" / "tiny_workspace.py"


class _CancelAt(NullReporter):
    def __init__(self, stage, step):
        super().__init__()
        self.at = (stage, step)

    def progress(self, stage, task, step, total, losses=None, message=None):
        if (stage, step) == self.at:
            self.request_cancel()


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("tiny_workspace", _HELPER)
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    root = tmp_path_factory.mktemp("adapter_resume")
    ws_dir = tiny.make_tiny_workspace(root)
    ws = Workspace.open(ws_dir)
    refine_workspace(ws, device="cpu")
    dataset = Path(ws.task(ws.task_names()[0])["source"]["path"])
    with ws.lock("test"):
        ws.add_task(dataset, name="probe", mode="adapter",
                    adapter={"method": "spatial_adapter", "shots": 2, "shots_seed": 1, "transductive": True})
        ws.update_manifest(lambda m: m["overrides"].update({"adapter.iterations": 10}))
    return ws_dir


def _adapter_bytes(ws_dir: Path) -> str:
    return hashlib.sha256((ws_dir / "tasks" / "probe" / "model" / "adapter.safetensors").read_bytes()).hexdigest()


def test_cancel_then_resume_equals_an_uninterrupted_run(refined, tmp_path):
    straight, halted = tmp_path / "straight", tmp_path / "halted"
    shutil.copytree(refined, straight)
    shutil.copytree(refined, halted)
    assert refine_workspace(Workspace.open(straight), device="cpu") == ["probe"]

    with pytest.raises(Cancelled):
        refine_workspace(Workspace.open(halted), _CancelAt("adapter", 4), device="cpu")
    ws = Workspace.open(halted)
    assert ws.task("probe")["status"] == "training"
    assert (halted / "tasks" / "probe" / "stages" / "adapter" / "checkpoint.pt").is_file()
    with pytest.raises(InputError, match="--resume"):
        refine_workspace(ws, device="cpu")
    assert refine_workspace(ws, device="cpu", resume=True) == ["probe"]
    assert _adapter_bytes(halted) == _adapter_bytes(straight)
