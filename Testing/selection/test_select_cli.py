"""``medseqft pretrain`` -> ``init`` -> ``add-task`` -> ``select`` on tiny phantoms, through the real CLI."""

import json

import pytest

from MedSeqFTLib.cli import main


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from MedSeqFTLib.data.phantoms import generate_phantoms

    root = tmp_path_factory.mktemp("select")
    data = generate_phantoms(root / "ph", tasks=2, cases=6, seed=11, size=20, test_cases=0)
    m0 = root / "m0.safetensors"
    assert main(["pretrain", str(m0), "--data", str(data[0]), "--steps", "2", "--size", "16", "--seed", "1"]) == 0
    ws = root / "ws"
    assert main(["init", str(ws), "--foundation", str(m0)]) == 0
    for d in data:
        assert main(["add-task", str(ws), str(d)]) == 0
    return ws


def _buffer(ws, task):
    return (ws / "tasks" / task / "buffer.json").read_bytes()


def _tasks(ws):
    return json.loads((ws / "workspace.json").read_text())["tasks"]


def test_select_all_tasks_then_same_seed_gives_identical_manifest(ws, capsys):
    t1, t2 = _tasks(ws)
    assert main(["select", str(ws), "--runs", "8", "--k", "2", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "mean_loss" in out and "yes (1)" in out
    first = _buffer(ws, t1)
    m = json.loads(first)
    train = json.loads((ws / "tasks" / t1 / "task.json").read_text())["split"]["train"]
    assert m["method"] == "mds" and m["pretext"] == "masked" and m["k"] == 2 and m["seed"] == 4
    assert m["ssl_head"] == {"source": "foundation", "pretext": "masked", "options": {}, "origin": "pretrained with the encoder"}
    assert sorted(c["id"] for c in m["cases"]) == sorted(train)
    assert all(c["runs"] == 8 for c in m["cases"]) and m["forward_passes"] == 8 * len(train)
    # selected = the k lowest mean losses, lowest first
    by_loss = sorted(m["cases"], key=lambda c: (c["mean_loss"], c["id"]))
    assert m["selected"] == [c["id"] for c in by_loss[:2]]
    timing = json.loads((ws / "tasks" / t1 / "buffer_timing.json").read_text())
    assert timing["wall_s"] > 0 and timing["forward_passes"] == m["forward_passes"]
    assert json.loads((ws / "tasks" / t2 / "task.json").read_text())["status"] == "selected"
    # nothing left to select without --task
    assert main(["select", str(ws)]) == 0
    assert "already has a buffer" in capsys.readouterr().out
    # rerun with the same seed: byte-identical manifest; another seed: different scores
    assert main(["select", str(ws), "--task", t1, "--runs", "8", "--k", "2", "--seed", "4"]) == 0
    assert _buffer(ws, t1) == first
    assert main(["select", str(ws), "--task", t1, "--runs", "8", "--k", "2", "--seed", "5"]) == 0
    assert _buffer(ws, t1) != first


def test_random_ablation_same_k_seeded(ws):
    t1 = _tasks(ws)[0]
    assert main(["select", str(ws), "--task", t1, "--random", "--k", "2", "--seed", "3"]) == 0
    a = _buffer(ws, t1)
    m = json.loads(a)
    assert m["method"] == "random" and m["k"] == 2 and len(m["selected"]) == 2 and m["forward_passes"] == 0
    assert set(m["selected"]) <= {c["id"] for c in m["cases"]}
    assert main(["select", str(ws), "--task", t1, "--random", "--k", "2", "--seed", "3"]) == 0
    assert _buffer(ws, t1) == a


def test_k_larger_than_training_set_is_clamped_with_warning(ws, capsys):
    t1 = _tasks(ws)[0]
    assert main(["select", str(ws), "--task", t1, "--k", "99", "--runs", "2", "--no-adaptive"]) == 0
    m = json.loads(_buffer(ws, t1))
    assert m["k"] == len(m["cases"]) == len(m["selected"]) and m["adaptive"] is False
    assert "larger than the" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--task", "NoSuchTask"], "unknown task"),
    (["--k", "0"], "--k"),
    (["--runs", "0"], "--runs"),
    (["--device", "bogus"], "--device"),
])
def test_bad_input_exits_2_with_one_line(ws, capsys, argv, needle):
    t1 = _tasks(ws)[0]
    before = _buffer(ws, t1)
    task = [] if "--task" in argv else ["--task", t1]
    assert main(["select", str(ws)] + task + argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and needle in err[0]
    assert _buffer(ws, t1) == before


def test_missing_workspace_exits_2(tmp_path):
    assert main(["select", str(tmp_path / "nope")]) == 2
