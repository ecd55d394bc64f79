"""The benchmark: a real tiny run (2 strategies x 1 seed x 2 phantom tasks) through the CLI, its files
and numbers checked against the product workspaces it made; resume and plan checks; the PEFT and joint
extensions' invariants (frozen encoder, shared encoder); strategy configuration; table statistics."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import pytest

from MedSeqFTLib.cli import main
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.io.atomic import read_json


@pytest.fixture(scope="module")
def foundation(tmp_path_factory) -> Path:
    import torch

    from MedSeqFTLib.config import ArchConfig, PreprocessConfig
    from MedSeqFTLib.models.foundation import save_foundation
    from MedSeqFTLib.models.registry import build_encoder, build_ssl_head

    torch.manual_seed(0)
    arch = ArchConfig(name="small_unet", feature_size=4)
    path = tmp_path_factory.mktemp("m0") / "m0.safetensors"
    save_foundation(path, build_encoder(arch), build_ssl_head(arch, "masked"), {
        "arch": arch.to_dict(), "ssl_pretext": "masked",
        "preprocess": PreprocessConfig(spacing=(3.0, 3.0, 3.0), patch_size=(16, 16, 16)).to_dict()})
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory, foundation) -> Path:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bench") / "out"
    code = main(["benchmark", "--preset", "tiny", "--seeds", "1", "--strategies", "seq_ft,fft",
                 "--foundation", str(foundation), "--out", str(out), "--device", "cpu"])
    assert code == 0
    return out


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_outputs_exist_and_table_has_one_row_per_strategy(bench):
    for name in ("results.md", "results.csv", "summary.csv", "benchmark.png", "benchmark.json"):
        assert (bench / name).is_file() and (bench / name).stat().st_size > 0, name
    assert (bench / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (bench / "results.md").read_text(encoding="utf-8")
    assert md.count("| FFT (parallel) | 1 |") >= 2  # Dice and HD95 tables
    assert md.count("| Seq-FT | 1 |") >= 3  # Dice, HD95, right-after-training
    assert "Command: `medseqft benchmark --preset tiny" in md
    summary = {r["strategy"]: r for r in _csv_rows(bench / "summary.csv")}
    assert set(summary) == {"fft", "seq_ft"}
    assert float(summary["fft"]["ratio_to_fft"]) == pytest.approx(1.0)


def test_numbers_are_in_range_and_match_the_product_workspaces(bench):
    rows = _csv_rows(bench / "results.csv")
    for r in rows:
        if r["value"] == "":
            continue
        v = float(r["value"])
        if r["metric"].startswith("dice"):
            assert 0.0 <= v <= 1.0, r
        else:
            assert v >= 0.0, r
    # Seq-FT's "final" numbers are the last row of the product's forgetting matrix, "after" its diagonal
    ws = bench / "runs" / "seq_ft" / "seed0" / "ws"
    doc = read_json(ws / "metrics" / "forgetting.json")
    final = {r["task"]: float(r["value"]) for r in rows if r["strategy"] == "seq_ft" and r["metric"] == "dice_final"}
    after = {r["task"]: float(r["value"]) for r in rows if r["strategy"] == "seq_ft" and r["metric"] == "dice_after"}
    assert set(final) == set(doc["tasks"]) and len(final) == 2
    for j, t in enumerate(doc["tasks"]):
        assert final[t] == pytest.approx(doc["dice"][-1][j], rel=1e-5)
        assert after[t] == pytest.approx(doc["dice"][j][j], rel=1e-5)
    # FFT: one workspace per task, each the product's own metrics
    fft = {r["task"]: float(r["value"]) for r in rows if r["strategy"] == "fft" and r["metric"] == "dice_final"}
    for i, t in enumerate(doc["tasks"], start=1):
        metrics = read_json(bench / "runs" / "fft" / "seed0" / f"ws_{i}" / "metrics" / "metrics.json")
        assert fft[t] == pytest.approx(metrics["tasks"][t]["dice"], rel=1e-5)
    # summary average = mean over tasks (one seed: no std)
    summary = {r["strategy"]: r for r in _csv_rows(bench / "summary.csv")}
    assert float(summary["seq_ft"]["avg_dice_mean"]) == pytest.approx(sum(final.values()) / 2, rel=1e-5)
    assert summary["seq_ft"]["avg_dice_std"] == ""


def test_same_split_and_budget_and_the_strategy_configuration(bench):
    seq = bench / "runs" / "seq_ft" / "seed0" / "ws"
    names = read_json(seq / "workspace.json")["tasks"]
    for i, name in enumerate(names, start=1):
        par = bench / "runs" / "fft" / "seed0" / f"ws_{i}"
        assert read_json(seq / "tasks" / name / "task.json")["split"] == read_json(par / "tasks" / name / "task.json")["split"]
        for ws in (seq, par):
            record = read_json(ws / "tasks" / name / "model" / "record.json")
            assert record["stages"]["fft"]["iterations"] == 3  # the tiny preset's budget, for every strategy
    cfg = read_json(seq / "workspace.json")["config"]
    assert cfg["retention"]["enabled"] is False and cfg["seed"] == 0
    assert read_json(seq / "tasks" / names[1] / "model" / "record.json")["strategy"] == "seq_fft"


def test_rerun_reuses_finished_units_and_refuses_other_settings(bench, foundation, capsys):
    result = bench / "runs" / "fft" / "seed0" / "result.json"
    before = result.stat().st_mtime_ns
    args = ["benchmark", "--preset", "tiny", "--seeds", "1", "--strategies", "fft", "--foundation", str(foundation),
            "--out", str(bench), "--device", "cpu"]
    assert main(args) == 0
    assert result.stat().st_mtime_ns == before
    capsys.readouterr()
    assert main(args + ["--iterations", "4"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
    assert len(err) == 1 and "different settings (iterations 3 there vs 4 now)" in err[0]
    assert main(["benchmark", "--strategies", "fft,nope", "--out", str(bench)]) == 2
    foreign = bench.parent / "voco.pt"
    foreign.write_bytes(b"not ours")
    assert main(["benchmark", "--foundation", str(foreign), "--out", str(bench.parent / "other")]) == 2
    assert "medseqft init WS --foundation FILE" in capsys.readouterr().err
    import torch

    from MedSeqFTLib.models.foundation import load_foundation, save_foundation

    enc, head, meta = load_foundation(foundation)
    with torch.no_grad():
        next(enc.parameters()).add_(1.0)
    other_m0 = save_foundation(bench.parent / "other_m0.safetensors", enc, head, meta)
    assert main(["benchmark", "--preset", "tiny", "--seeds", "1", "--strategies", "fft", "--foundation", str(other_m0),
                 "--out", str(bench), "--device", "cpu"]) == 2
    assert "another foundation" in capsys.readouterr().err
    (bench / "results.md").unlink()
    assert main(["benchmark", "--tables-only", "--out", str(bench)]) == 0
    assert "| FFT (parallel) | 1 |" in (bench / "results.md").read_text(encoding="utf-8")
    missing = bench.parent / "no_benchmark_here"
    assert main(["benchmark", "--tables-only", "--out", str(missing)]) == 2 and not missing.exists()


def test_peft_keeps_the_encoder_frozen_and_joint_shares_it(bench, foundation, tmp_path):
    import torch

    from MedSeqFTLib.benchmark.joint import train_joint_workspace
    from MedSeqFTLib.benchmark.peft_baselines import train_peft_workspace
    from MedSeqFTLib.benchmark.settings import bench_preset
    from MedSeqFTLib.benchmark.strategies import STRATEGIES, configure
    from MedSeqFTLib.benchmark.workspaces import open_or_create
    from MedSeqFTLib.inference.loader import load_encoder_state, load_foundation_encoder_state
    from MedSeqFTLib.models.checkpoint import load_safetensors

    settings = bench_preset("tiny")
    datasets = sorted((bench / "phantoms").glob("Dataset*"))
    fn = lambda cfg: configure(cfg, STRATEGIES["head_only"], settings, 0)  # noqa: E731
    ws = open_or_create(tmp_path / "head", foundation, datasets[:1], fn, settings)
    assert train_peft_workspace(ws, "head", device="cpu") == ws.task_names()
    m0 = load_foundation_encoder_state(ws)
    enc = load_encoder_state(ws, ws.task_names()[0])
    assert set(enc) == set(m0) and all(torch.equal(enc[k], m0[k]) for k in m0)

    ws = open_or_create(tmp_path / "lora", foundation, datasets[:1], fn, settings)
    train_peft_workspace(ws, "lora", rank=2, device="cpu")
    enc = load_encoder_state(ws, ws.task_names()[0])
    assert set(enc) == set(m0)  # merged: plain weights, no LoRA keys
    changed = [k for k in m0 if not torch.equal(enc[k], m0[k])]
    assert changed and all(k.endswith("weight") for k in changed)  # LoRA moves weights, never norms/biases

    ws = open_or_create(tmp_path / "joint", foundation, datasets, fn, settings)
    assert train_joint_workspace(ws, device="cpu") == ws.task_names()
    a, b = (load_encoder_state(ws, n) for n in ws.task_names())
    assert all(torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], m0[k]) for k in a)
    heads = [load_safetensors(ws.task_dir(n) / "model" / "decoder.safetensors")[0] for n in ws.task_names()]
    assert torch.equal(heads[0]["decoder.ups.0.transp_conv.conv.weight"], heads[1]["decoder.ups.0.transp_conv.conv.weight"])
    assert read_json(ws.root / "joint" / "stages" / "state.json")["total"] == 2 * settings.iterations
    assert train_joint_workspace(ws, device="cpu") == []  # finished: nothing to do


def test_strategy_parsing_and_configuration():
    from MedSeqFTLib.benchmark.settings import bench_preset
    from MedSeqFTLib.benchmark.strategies import STRATEGIES, configure, parse_strategies
    from MedSeqFTLib.presets import preset

    assert parse_strategies("all")[0] == "tfs" and parse_strategies(None)[-1] == "transfer"
    assert parse_strategies("transfer,fft") == ["fft", "medseqft", "transfer"]
    with pytest.raises(InputError, match="unknown strategy"):
        parse_strategies("fft,sgd")
    s = bench_preset("cpu")
    expect = {"seq_ft": (False, False, "random"), "seq_random": (True, False, "random"), "seq_mds": (True, False, "mds"),
              "seq_kg": (True, True, "random"), "medseqft": (True, True, "mds")}
    for name, (enabled, lora, method) in expect.items():
        cfg = configure(preset("cpu_demo"), STRATEGIES[name], s, 5)
        assert (cfg.retention.enabled, cfg.retention.lora_stage, cfg.selection.method) == (enabled, lora, method)
        assert cfg.retention.fft.iterations == cfg.retention.kd_fft.iterations == s.iterations
        assert cfg.retention.lora_kd.iterations == s.lora_iterations and cfg.selection.k == s.buffer_k
        assert cfg.preprocess.patch_size == (s.patch_size,) * 3 and cfg.seed == 5
        # task 1 gets LoRA-KD + merge only in the strategies with the K&G LoRA stage
        assert cfg.retention.lora_on_first_task() == (name in ("seq_kg", "medseqft"))
    for name in ("tfs", "fft", "transfer"):  # FFT baselines stay plain FFT on their (only) task
        assert not configure(preset("cpu_demo"), STRATEGIES[name], s, 5).retention.lora_on_first_task()
    with pytest.raises(InputError, match="iterations"):
        bench_preset("cpu", iterations=0)


def test_mean_std_matches_statistics():
    from MedSeqFTLib.benchmark.table import mean_std

    vals = [0.61, 0.72, 0.55]
    m, s, n = mean_std(vals + [None, math.nan])
    assert n == 3 and m == pytest.approx(statistics.mean(vals)) and s == pytest.approx(statistics.stdev(vals))
    assert mean_std([0.5]) == (0.5, None, 1) and mean_std([None]) == (None, None, 0)
