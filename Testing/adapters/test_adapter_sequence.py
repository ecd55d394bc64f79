"""An adapter task inside a sequence, end to end through the CLI: kg_rft -> kg_rft -> adapter -> kg_rft.

Must show (issue 12): every earlier task's metrics after the adapter task are bitwise unchanged,
and the adapter task's predictions are unchanged after the last kg_rft task.
"""

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from MedSeqFTLib.cli import main
from MedSeqFTLib.data.phantoms import generate_phantoms

torch.set_num_threads(1)
_HELPER = Path(__file__).resolve().parents[1] / "benchmarks" / "tiny_workspace.py"


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_workspace", _HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _results(ws: Path) -> dict:
    return json.loads((ws / "metrics" / "results.json").read_text())["results"]


def _scores(entry: dict) -> dict:
    """A (model, task) result without its timing."""
    return {k: v for k, v in entry.items() if k not in ("seconds", "encoder_from")}


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapter_seq")
    ws = _tiny().make_tiny_workspace(root / "tiny")
    extra = generate_phantoms(root / "extra", tasks=4, cases=8, seed=23, size=24, test_cases=0)
    return ws, extra


def test_adapter_task_in_a_sequence(sequence, capsys):
    ws, extra = sequence
    assert main(["refine", str(ws)]) == 0
    first = ["PhantomLiver", "PhantomKidney"]
    assert main(["evaluate", str(ws)]) == 0
    before = _results(ws)
    files_before = {t: _hashes(ws / "tasks" / t / "model") for t in first}

    # the adapter task: 5 shots, spatial adapter, on M2
    assert main(["add-task", str(ws), str(extra[2]), "--name", "fewshot", "--mode", "adapter",
                 "--method", "spatial_adapter", "--shots", "5", "--shots-seed", "3"]) == 0
    task = json.loads((ws / "tasks" / "fewshot" / "task.json").read_text())
    assert task["mode"] == "adapter" and len(task["adapter"]["support"]) == 5
    assert set(task["adapter"]["support"]) <= set(task["split"]["train"])
    assert main(["select", str(ws), "--task", "fewshot"]) == 2  # no buffer: nothing distils on an adapter task
    assert main(["plan", str(ws), "--task", "fewshot", "--set", "adapter.iterations=8"]) == 0
    assert main(["refine", str(ws)]) == 0
    model = ws / "tasks" / "fewshot" / "model"
    assert sorted(p.name for p in model.iterdir()) == ["adapter.safetensors", "record.json"]
    record = json.loads((model / "record.json").read_text())
    assert record["base"]["task"] == "PhantomKidney" and record["mode"] == "adapter"
    assert record["n_params"]["trainable"] < record["n_params"]["total"] / 5
    # earlier tasks: files and metrics bitwise as before
    assert {t: _hashes(ws / "tasks" / t / "model") for t in first} == files_before
    assert main(["evaluate", str(ws)]) == 0
    after = _results(ws)
    for t in first:
        for j in before[t]:
            assert _scores(after[t][j]) == _scores(before[t][j]), (t, j)
    # after the adapter task the shared model is still M2: its row equals M2's on the earlier tasks
    for j in first:
        assert _scores(after["fewshot"][j]) == _scores(after["PhantomKidney"][j])

    images = sorted((extra[2] / "imagesTr").glob("*_0000.nii.gz"))[:2]
    assert main(["predict", str(ws), "--task", "fewshot", "--out", str(ws.parent / "p1"), *map(str, images)]) == 0
    preds_before = _hashes(ws.parent / "p1")
    # transductive prediction adapts in memory: outputs written, the workspace's models untouched
    models = {t: _hashes(ws / "tasks" / t / "model") for t in first + ["fewshot"]}
    assert main(["predict", str(ws), "--task", "fewshot", "--out", str(ws.parent / "pt"), "--transductive",
                 *map(str, images)]) == 0
    assert sorted(_hashes(ws.parent / "pt")) == sorted(preds_before)
    assert {t: _hashes(ws / "tasks" / t / "model") for t in first + ["fewshot"]} == models
    assert main(["predict", str(ws), "--task", "PhantomLiver", "--out", str(ws.parent / "px"), "--transductive",
                 str(images[0])]) == 2

    # a kg_rft task after it starts from M2 (not from the adapter task) and cannot change it
    assert main(["add-task", str(ws), str(extra[3]), "--name", "later"]) == 0
    assert main(["refine", str(ws)]) == 0
    later = json.loads((ws / "tasks" / "later" / "model" / "record.json").read_text())
    assert later["lineage"]["from"] == "M2 (PhantomKidney)"
    assert later["lineage"]["from_sha256"] == record["base"]["encoder_sha256"]
    assert main(["predict", str(ws), "--task", "fewshot", "--out", str(ws.parent / "p2"), *map(str, images)]) == 0
    assert _hashes(ws.parent / "p2") == preds_before
    assert main(["evaluate", str(ws)]) == 0
    final = _results(ws)
    assert _scores(final["later"]["fewshot"]) == _scores(final["fewshot"]["fewshot"])
    assert _scores(final["fewshot"]["fewshot"]) == _scores(after["fewshot"]["fewshot"])

    capsys.readouterr()
    assert main(["status", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "sequence: M0 -> M1(PhantomLiver) -> M2(PhantomKidney) -> M4(later)" in out
    assert "A3(fewshot: spatial_adapter on M2)" in out

    # a base file that changed is refused, not silently used
    enc = ws / "tasks" / "PhantomKidney" / "model" / "encoder.safetensors"
    saved = enc.read_bytes()
    enc.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
    try:
        code = main(["predict", str(ws), "--task", "fewshot", "--out", str(ws.parent / "p3"), str(images[0])])
        assert code == 2
        assert "sha256 differs" in capsys.readouterr().err
    finally:
        enc.write_bytes(saved)
