"""MDS with a foundation model that has no SSL head: refused (exit 2) unless the user chooses."""

import hashlib
import json

import pytest

from MedSeqFTLib.cli import main


def _snapshot(ws):
    """sha256 of every workspace file except job bookkeeping (a refused job still gets its job folder)."""
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(ws.rglob("*")) if p.is_file() and p.relative_to(ws).parts[0] != "jobs"}


@pytest.fixture(scope="module")
def headless_ws(tmp_path_factory):
    """A workspace around an imported encoder-only checkpoint (small U-Net) with one phantom task."""
    import torch

    from MedSeqFTLib.config import ArchConfig
    from MedSeqFTLib.data.phantoms import generate_phantoms
    from MedSeqFTLib.models.registry import build_encoder

    root = tmp_path_factory.mktemp("headless")
    data = generate_phantoms(root / "ph", tasks=1, cases=5, seed=11, size=20, test_cases=0)
    torch.manual_seed(0)
    torch.save({"state_dict": build_encoder(ArchConfig(name="small_unet", feature_size=4)).state_dict()}, root / "enc.pt")
    ws = root / "ws"
    assert main(["init", str(ws), "--foundation", str(root / "enc.pt"), "--arch", "small_unet", "--feature-size", "4"]) == 0
    assert main(["add-task", str(ws), str(data[0])]) == 0
    return ws


def _task(ws):
    return json.loads((ws / "workspace.json").read_text())["tasks"][0]


def _error_line(err):
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0].split("error: ", 1)[1]


def test_select_and_refine_refuse_without_ssl_head_and_change_nothing(headless_ws, capsys):
    before = _snapshot(headless_ws)
    capsys.readouterr()
    assert main(["select", str(headless_ws), "--runs", "4"]) == 2
    message = _error_line(capsys.readouterr().err)
    assert message.startswith(str(headless_ws / "models" / "foundation.safetensors") + ": the foundation model has no SSL head")
    assert "enc.pt" in message and _task(headless_ws) in message
    for choice in ("--fit-ssl-head", "--random", "--random-ssl-head"):
        assert choice in message
    assert _snapshot(headless_ws) == before
    # refine selects the buffer first: the same refusal, the same message
    assert main(["refine", str(headless_ws), "--device", "cpu"]) == 2
    assert _error_line(capsys.readouterr().err) == message
    assert _snapshot(headless_ws) == before


def test_fit_ssl_head_is_an_explicit_recorded_step(headless_ws):
    task = _task(headless_ws)
    args = ["select", str(headless_ws), "--task", task, "--fit-ssl-head", "3", "--runs", "4", "--k", "2", "--seed", "1"]
    assert main(args) == 0
    buffer = headless_ws / "tasks" / task / "buffer.json"
    first = buffer.read_bytes()
    m = json.loads(first)
    h = m["ssl_head"]
    assert m["method"] == "mds" and m["pretext"] == "masked" and len(m["selected"]) == 2
    assert h["source"] == "fit" and h["pretext"] == "masked" and h["steps"] == 3 and h["seed"] == 1
    assert h["final_loss"] > 0 and "training cases of" in h["trained_on"]
    fitted = headless_ws / h["file"]
    assert fitted.name == "ssl_head_fitted.safetensors"
    assert hashlib.sha256(fitted.read_bytes()).hexdigest() == h["sha256"]
    # the same seed refits the same head and gives the same buffer, byte for byte (CPU)
    assert main(args) == 0
    assert buffer.read_bytes() == first


def test_random_head_and_random_buffer_are_explicit(headless_ws):
    task = _task(headless_ws)
    assert main(["select", str(headless_ws), "--task", task, "--random-ssl-head", "--runs", "4", "--k", "2"]) == 0
    m = json.loads((headless_ws / "tasks" / task / "buffer.json").read_text())
    assert m["method"] == "mds" and m["ssl_head"]["source"] == "random" and "untrained" in m["ssl_head"]["note"]
    assert main(["select", str(headless_ws), "--task", task, "--random", "--k", "2"]) == 0
    m = json.loads((headless_ws / "tasks" / task / "buffer.json").read_text())
    assert m["method"] == "random" and "ssl_head" not in m


@pytest.mark.parametrize("argv, needle", [
    (["--fit-ssl-head", "0"], "STEPS must be >= 1"),
    (["--random", "--fit-ssl-head"], "not allowed with argument"),
    (["--random-ssl-head", "--random"], "not allowed with argument"),
])
def test_bad_choices(headless_ws, capsys, argv, needle):
    assert main(["select", str(headless_ws)] + argv) == 2
    assert needle in capsys.readouterr().err


def test_which_heads_count_as_own():
    from MedSeqFTLib.models.foundation import load_foundation
    from MedSeqFTLib.selection.ssl_head import has_own_head

    head = object()
    assert not has_own_head(None, {"ssl_pretext": "voco"})
    assert not has_own_head(head, {"ssl_pretext": None})
    # what init gave imported checkpoints before heads were imported: a random "voco" head
    legacy = {"ssl_pretext": "voco", "source": "/models/VoCo_B.pt", "source_sha256": "0" * 64}
    assert not has_own_head(head, legacy)
    assert has_own_head(head, {**legacy, "ssl_head_origin": "VoCo SSL head (student/teacher projections)"})
    assert has_own_head(head, {"ssl_pretext": "masked", "source_sha256": "0" * 64})  # tests' own files
    # the project's demo foundation (pretrained with its head) keeps working unchanged
    from pathlib import Path

    import MedSeqFTLib

    demo = sorted((Path(MedSeqFTLib.__file__).parent / "resources").glob("demo_foundation_*.safetensors"))
    assert demo
    _, demo_head, demo_meta = load_foundation(demo[0])
    assert has_own_head(demo_head, demo_meta) and demo_meta["ssl_pretext"] == "masked"
