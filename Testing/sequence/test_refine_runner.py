"""``refine`` end to end on a tiny phantom workspace: model files, lineage, resume, CLI exit codes."""

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from MedSeqFTLib.cli import main
from MedSeqFTLib.config import WorkspaceConfig
from MedSeqFTLib.errors import Cancelled, InputError
from MedSeqFTLib.jobs.reporter import NullReporter
from MedSeqFTLib.plan.overrides import effective_config
from MedSeqFTLib.sequence.runner import refine_workspace, resolve_device
from MedSeqFTLib.sequence.workspace import Workspace

torch.set_num_threads(1)
_HELPER = Path(__file__).resolve().parents[1] / "benchmarks" / "tiny_workspace.py"


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_workspace", _HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """2 phantom tasks, small_unet f=4, 16^3 patches, 10 iterations per stage (built once)."""
    return _tiny().make_tiny_workspace(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def ws_dir(template, tmp_path):
    dst = tmp_path / "ws"
    shutil.copytree(template, dst)
    return dst


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


class Recorder(NullReporter):
    """Records (stage, task, step) progress; asks to cancel at ``cancel_at`` = (stage, task index, step)."""

    def __init__(self, cancel_at=None):
        super().__init__()
        self.cancel_at, self.seen, self.tasks = cancel_at, [], []

    def progress(self, stage, task, step, total, losses=None, message=None):
        self.seen.append((stage, task, step))
        if task not in self.tasks:
            self.tasks.append(task)
        if self.cancel_at is not None and (stage, self.tasks.index(task), step) == self.cancel_at:
            self.request_cancel()


def test_two_task_refine_writes_models_with_lineage(ws_dir):
    ws = Workspace.open(ws_dir)
    first, second = ws.task_names()
    rep = Recorder()
    assert refine_workspace(ws, rep, device="cpu") == [first, second]
    stages_seen = [(s, t) for s, t, _ in rep.seen if s != "select"]
    assert sorted(set(stages_seen)) == sorted({("fft", first), ("lora_kd", first), ("merge", first),
                                               ("kd_fft", second), ("lora_kd", second), ("merge", second)})

    ws = Workspace.open(ws_dir)
    from MedSeqFTLib.models.checkpoint import load_safetensors
    from MedSeqFTLib.inference.loader import load_task_model

    foundation, _ = load_safetensors(ws.foundation_path)
    enc0 = {k[len("encoder."):]: v.shape for k, v in foundation.items() if k.startswith("encoder.")}
    records = {}
    for name in (first, second):
        model = ws.task_dir(name) / "model"
        assert ws.task(name)["status"] == "done"
        enc, _ = load_safetensors(model / "encoder.safetensors")
        assert {k: v.shape for k, v in enc.items()} == enc0  # E_t has exactly E_{t-1}'s names and shapes
        dec, _ = load_safetensors(model / "decoder.safetensors")
        assert dec["head.weight"].shape[0] == len(ws.labels(name))
        records[name] = rec = json.loads((model / "record.json").read_text())
        assert rec["lineage"]["encoder_sha256"] == _sha(model / "encoder.safetensors")
        assert rec["lineage"]["decoder_sha256"] == _sha(model / "decoder.safetensors")
        assert rec["n_params"]["encoder"] == sum(v.numel() for v in enc.values())
        # the record holds what the task trained with: workspace config + its plan + overrides
        assert WorkspaceConfig.from_dict(rec["config"]) == effective_config(ws.config, ws.task(name), ws.manifest["overrides"])
        assert list(WorkspaceConfig.from_dict(rec["config"]).preprocess.patch_size) == [16, 16, 16]
        # stage tensors are dropped once the model is written; loss logs stay
        assert not list((ws.task_dir(name) / "stages").glob("*/*.safetensors"))
        net = load_task_model(ws, name)
        with torch.no_grad():
            out = net(torch.zeros(1, 1, 16, 16, 16))
        assert out.shape == (1, len(ws.labels(name)), 16, 16, 16)

    r1, r2 = records[first], records[second]
    assert r1["lineage"]["from"] == "M0" and r1["lineage"]["from_sha256"] == _sha(ws.foundation_path)
    # task 1 as in the paper: FFT, then LoRA-KD into M0's encoder and the merge
    assert r1["strategy"] == "fft+lora_kd+merge" and set(r1["stages"]) == {"fft", "lora_kd", "merge"}
    assert r1["stages"]["lora_kd"]["targets"] == "conv3d" and r1["n_params"]["lora"] > 0
    assert r2["stages"]["kd_fft"]["kd_update"] == "independent"
    _assert_low_rank_update(ws, ws.task_dir(first) / "model" / "encoder.safetensors", rank=2)
    for rec, index in ((r1, 1), (r2, 2)):  # M_{t-mid} and the merged M_t were both scored right after training
        if rec["validation"]:
            assert [v["model"] for v in rec["validation"].values()] == [f"M{index}-mid", f"M{index}"]
    assert r2["lineage"]["from"] == f"M1 ({first})"
    assert r2["lineage"]["from_sha256"] == r1["lineage"]["encoder_sha256"]
    assert r2["strategy"] == "kd_fft+lora_kd+merge" and set(r2["stages"]) == {"kd_fft", "lora_kd", "merge"}
    kd = r2["stages"]["kd_fft"]
    assert set(kd["losses"]) == {"seg", "kd"} and len(kd["losses"]["kd"]) == 10
    assert kd["distilled_scales"] == [0, 1, 2, 3] and kd["time_s"] > 0 and kd["peak_memory_bytes"] > 0
    buffer_ids = json.loads((ws.task_dir(first) / "buffer.json").read_text())["selected"]
    assert r2["buffer"]["tasks"] == {first: buffer_ids}
    assert r2["n_params"]["lora"] > 0
    # the merged encoder differs from E_{t-1}: LoRA-KD really changed it
    e1, _ = load_safetensors(ws.task_dir(first) / "model" / "encoder.safetensors")
    e2, _ = load_safetensors(ws.task_dir(second) / "model" / "encoder.safetensors")
    assert any(not torch.equal(e1[k], e2[k]) for k in e1)

    # nothing left: a second run does nothing and rewrites nothing
    before = _files(ws_dir / "tasks")
    assert refine_workspace(Workspace.open(ws_dir), NullReporter(), device="cpu") == []
    assert _files(ws_dir / "tasks") == before


def _assert_low_rank_update(ws, encoder_file, rank):
    """E_1 - E_0: rank <= r in every LoRA-targeted weight (reshaped to C_out x rest), bit-equal elsewhere."""
    from MedSeqFTLib.models.checkpoint import load_safetensors
    from MedSeqFTLib.models.registry import build_encoder, lora_target_kinds, lora_target_modules

    e0 = {k[len("encoder."):]: v for k, v in load_safetensors(ws.foundation_path)[0].items() if k.startswith("encoder.")}
    e1, _ = load_safetensors(encoder_file)
    arch = ws.config.arch
    targets = {f"{name}.weight" for name in lora_target_modules(build_encoder(arch), lora_target_kinds(arch, "auto"))}
    assert targets and targets <= set(e0) and set(e1) == set(e0)
    ranks = {}
    for key in e0:
        delta = (e1[key].double() - e0[key].double())
        if key in targets:
            # W + BA is rounded to float32: singular values of that rounding noise stay below
            # sqrt(numel) * eps32 * max|W| (a 4x margin); the LoRA directions are orders above it
            noise = 4 * delta.numel() ** 0.5 * torch.finfo(torch.float32).eps * float(e0[key].abs().max())
            ranks[key] = int(torch.linalg.matrix_rank(delta.reshape(delta.shape[0], -1), atol=noise, rtol=0.0))
            assert ranks[key] <= rank, (key, ranks[key])
        else:
            assert torch.equal(e1[key], e0[key]), f"{key} changed but carries no LoRA"
    assert max(ranks.values()) == rank  # LoRA-KD really moved E_1 away from E_0


def test_first_task_lora_off_gives_plain_fft(ws_dir):
    """``medseqft plan --set retention.first_task_lora=false``: task 1 is FFT only (E_1 = the FFT encoder)."""
    assert main(["plan", str(ws_dir), "--set", "retention.first_task_lora=false"]) == 0
    ws = Workspace.open(ws_dir)
    first, second = ws.task_names()
    assert ws.task_config(first).retention.first_task_lora is False
    with pytest.raises(Cancelled):  # task 2 is not needed here
        refine_workspace(ws, Recorder(cancel_at=("kd_fft", 1, 1)), device="cpu")
    rec = json.loads((ws_dir / "tasks" / first / "model" / "record.json").read_text())
    assert rec["strategy"] == "fft" and set(rec["stages"]) == {"fft"}
    assert main(["plan", str(ws_dir), "--set", "retention.first_task_lora=maybe"]) == 2


def test_lora_targets_the_backbone_lacks_are_refused_before_training(ws_dir, capsys):
    assert main(["plan", str(ws_dir), "--set", "retention.lora_targets=linear"]) == 0
    capsys.readouterr()
    assert main(["refine", str(ws_dir), "--device", "cpu"]) == 2
    assert "retention.lora_targets" in capsys.readouterr().err
    ws = Workspace.open(ws_dir)
    assert not (ws.task_dir(ws.task_names()[0]) / "stages").exists()


def test_cancel_between_stages_then_resume(ws_dir, template, tmp_path):
    ws = Workspace.open(ws_dir)
    first, second = ws.task_names()
    with pytest.raises(Cancelled):
        refine_workspace(ws, Recorder(cancel_at=("lora_kd", 1, 3)), device="cpu")
    ws = Workspace.open(ws_dir)
    assert ws.task(first)["status"] == "done" and ws.task(second)["status"] == "training"
    stages = ws.task_dir(second) / "stages"
    assert json.loads((stages / "kd_fft" / "state.json").read_text())["done"]
    assert json.loads((stages / "lora_kd" / "state.json").read_text())["step"] == 3
    first_files = _files(ws.task_dir(first))

    # without --resume: a clear refusal, exit 2, nothing changed
    with pytest.raises(InputError, match="--resume"):
        refine_workspace(ws, NullReporter(), device="cpu")
    assert main(["refine", str(ws_dir), "--device", "cpu"]) == 2

    assert main(["refine", str(ws_dir), "--device", "cpu", "--resume"]) == 0
    ws = Workspace.open(ws_dir)
    assert ws.task(second)["status"] == "done"
    assert _files(ws.task_dir(first)) == first_files  # the finished task's files are byte-identical
    record = json.loads((ws.task_dir(second) / "model" / "record.json").read_text())
    assert record["stages"]["lora_kd"]["runs"] == 2 and record["stages"]["kd_fft"]["runs"] == 1
    assert len(record["stages"]["lora_kd"]["losses"]["lora_kd"]) >= 10

    # same seed, uninterrupted task 1 in another copy: identical bytes (deterministic on CPU)
    other = tmp_path / "other"
    shutil.copytree(template, other)
    refine_workspace(Workspace.open(other), NullReporter(), device="cpu")
    for f in ("encoder.safetensors", "decoder.safetensors"):
        assert _sha(other / "tasks" / first / "model" / f) == _sha(ws_dir / "tasks" / first / "model" / f)


def test_resume_continues_without_redoing_finished_stages(ws_dir):
    ws = Workspace.open(ws_dir)
    _, second = ws.task_names()
    with pytest.raises(Cancelled):
        refine_workspace(ws, Recorder(cancel_at=("lora_kd", 1, 3)), device="cpu")
    rep = Recorder()
    assert refine_workspace(Workspace.open(ws_dir), rep, device="cpu", resume=True) == [second]
    assert [(s, step) for s, _, step in rep.seen if s == "lora_kd"] == [("lora_kd", i) for i in range(4, 11)]
    assert not any(s in ("fft", "kd_fft", "select") for s, _, _ in rep.seen)


def test_bad_device_and_empty_workspace(tmp_path, ws_dir):
    assert main(["refine", str(ws_dir), "--device", "tpu"]) == 2
    if not torch.cuda.is_available():
        assert main(["refine", str(ws_dir), "--device", "cuda:0"]) == 2
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert main(["refine", str(tmp_path / "missing")]) == 2


def test_retention_disabled_is_plain_sequential_fft(ws_dir):
    ws = Workspace.open(ws_dir)
    first, second = ws.task_names()
    with ws.lock("test"):
        cfg = ws.config
        cfg.retention = cfg.retention.replace(enabled=False)
        ws.save_config(cfg)
    rep = Recorder()
    refine_workspace(Workspace.open(ws_dir), rep, device="cpu")
    assert {s for s, _, _ in rep.seen if s != "select"} == {"fft"}
    rec = json.loads((ws_dir / "tasks" / second / "model" / "record.json").read_text())
    assert rec["strategy"] == "seq_fft" and set(rec["stages"]) == {"fft"}
    assert rec["lineage"]["from"] == f"M1 ({first})"
