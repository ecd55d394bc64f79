"""``medseqft benchmark --fewshot``: the grid of adapter tasks on M0 and on M_T, paired supports, tables."""

import csv
import json

import numpy as np
import pytest

from MedSeqFTLib.benchmark.fewshot import parse_methods, parse_shots, task_name
from MedSeqFTLib.benchmark.fewshot_table import write_fewshot_tables
from MedSeqFTLib.cli import main
from MedSeqFTLib.errors import InputError


def test_parsers():
    assert parse_shots("10,1,5,5") == [1, 5, 10]
    for bad in ("0,1", "a", ""):
        with pytest.raises(InputError):
            parse_shots(bad)
    assert "full" in parse_methods("all") and parse_methods("lora,decoder") == ["lora", "decoder"]
    with pytest.raises(InputError, match="unknown"):
        parse_methods("lora,prompt")


def test_tables_from_runs(tmp_path):
    runs = [{"base": b, "method": "lora", "shots": 5, "draw": d, "dice": v, "time_s": 1.0, "trainable": 10, "support": ["a"]}
            for b, vals in (("M0", [40.0, 50.0, 60.0]), ("M_T", [45.0, 58.0, 61.0])) for d, v in enumerate(vals)]
    paths = write_fewshot_tables(tmp_path, {"runs": runs, "methods": ["lora"], "shots": [5], "draws": 3})
    md = (tmp_path / "fewshot.md").read_text()
    assert f"| lora | {np.mean([40, 50, 60]):.1f} ± {np.std([40, 50, 60], ddof=1):.1f}" in md
    assert f"+{np.mean([5.0, 8.0, 1.0]):.1f}" in md  # M_T - M0 paired by draw
    rows = list(csv.DictReader(open(paths["csv"])))
    assert len(rows) == 6 and {r["base"] for r in rows} == {"M0", "M_T"}


def test_fewshot_benchmark_end_to_end(tmp_path, capsys):
    out = tmp_path / "fs"
    args = ["benchmark", "--fewshot", "--preset", "tiny", "--shots", "1", "--draws", "2", "--methods",
            "linear_probe,bitfit", "--out", str(out), "--threads", "1", "--iterations", "2"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "fewshot.csv")))
    assert sorted((r["base"], r["draw"]) for r in rows) == [("M0", "0"), ("M0", "1"), ("M_T", "0"), ("M_T", "1")]
    assert all(r["method"] == "linear_probe" and r["dice"] not in ("", "None") for r in rows)
    support = {(r["base"], r["draw"]): r["support"] for r in rows}
    assert support[("M0", "0")] == support[("M_T", "0")] and support[("M0", "1")] == support[("M_T", "1")]  # paired
    md = (out / "fewshot.md").read_text()
    assert "## Attached to M_T" in md and "bitfit: the small_unet encoder has no bias" in md
    # the M_T workspace: the sequence refined, every adapter task on its last kg_rft model
    rec = json.loads((out / "fewshot" / "M_T" / "tasks" / task_name("linear_probe", 1, 0) / "model" / "record.json").read_text())
    assert rec["base"]["task"] is not None and rec["mode"] == "adapter"
    m0 = json.loads((out / "fewshot" / "M0" / "tasks" / task_name("linear_probe", 1, 0) / "model" / "record.json").read_text())
    assert m0["base"]["model"] == "M0"
    # a rerun with other settings in the same folder is refused
    capsys.readouterr()
    assert main(args[:5] + ["2"] + args[6:]) == 2
    assert "other settings" in capsys.readouterr().err
