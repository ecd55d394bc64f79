"""Benchmark statistics (``benchmark.stats``): bootstrap CI, large/small split, the 'significant' line, tables."""

from __future__ import annotations

import numpy as np
import pytest

from MedSeqFTLib.benchmark.stats import (paired_bootstrap, paired_differences, significance_line, split_classes,
                                         unit_metrics)


def test_equal_differences_give_a_point_interval():
    ci = paired_bootstrap([0.02] * 5)
    assert ci["low"] == pytest.approx(0.02) and ci["high"] == pytest.approx(0.02)
    assert ci["significant"] is True and ci["note"] == ""


def test_bootstrap_matches_an_independent_resampling():
    d = [0.01, -0.02, 0.03, 0.05, 0.00]
    ci = paired_bootstrap(d, resamples=10_000, seed=0)
    # independent: the same generator, drawn one resample at a time, sorted percentiles by hand
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, size=(10_000, 5))
    means = np.sort([np.mean([d[i] for i in row]) for row in idx])
    assert ci["low"] == pytest.approx(np.percentile(means, 2.5))
    assert ci["high"] == pytest.approx(np.percentile(means, 97.5))
    assert ci["mean"] == pytest.approx(0.014) and ci["sd"] == pytest.approx(np.std(d, ddof=1))
    # exact distribution of the bootstrap mean for n = 2: {a, (a+b)/2, b} with probs 1/4, 1/2, 1/4
    two = paired_bootstrap([0.0, 1.0], resamples=20_000)
    assert two["low"] == pytest.approx(0.0) and two["high"] == pytest.approx(1.0)
    assert "only 2 seeds" in two["note"] and two["significant"] is False


def test_bootstrap_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    d = np.array([0.031, 0.012, 0.044, 0.020, 0.027, 0.039, 0.015, 0.033])
    ours = paired_bootstrap(d)
    ref = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=10_000, method="percentile",
                          random_state=np.random.default_rng(1)).confidence_interval
    assert ours["low"] == pytest.approx(ref.low, abs=2e-3) and ours["high"] == pytest.approx(ref.high, abs=2e-3)


def test_one_seed_and_bad_arguments():
    one = paired_bootstrap([0.1])
    assert one["low"] is None and one["significant"] is None and "one seed" in one["note"]
    with pytest.raises(ValueError):
        paired_bootstrap([])
    with pytest.raises(ValueError):
        paired_bootstrap([0.1, 0.2], level=1.5)
    with pytest.raises(ValueError):
        split_classes({"a": 1.0}, threshold_mm3=0)


def test_large_small_split_and_unit_metrics():
    vols = {"liver": 1.5e6, "tumour": 800.0, "vessel": 4999.0, "kidney": 5000.0, "absent": None}
    assert split_classes(vols) == {"large": ["liver", "kidney"], "small": ["tumour", "vessel"]}
    result = {"strategy": "fft", "kind": "parallel", "seed": 0, "tasks": ["A", "B"],
              "final": {"A": {"dice": 0.8, "classes": {"liver": 0.9, "tumour": 0.3}},
                        "B": {"dice": 0.6, "classes": {"kidney": 0.7, "vessel": 0.5}}},
              "forgetting": None, "class_volume_mm3": {"A": {"liver": 1.5e6, "tumour": 800.0},
                                                      "B": {"kidney": 2e5, "vessel": 100.0}}}
    m = unit_metrics(result)
    assert m["final"] == pytest.approx(0.7) and m["bwt"] == 0.0
    assert m["large"] == pytest.approx(0.8) and m["small"] == pytest.approx(0.4)


def _unit(strategy, seed, dice, bwt=None):
    return {"strategy": strategy, "kind": "parallel" if strategy == "fft" else "sequential", "seed": seed,
            "tasks": ["A"], "final": {"A": {"dice": dice}}, "after_training": {"A": {"dice": dice}},
            "forgetting": None if strategy == "fft" else {"bwt_dice": bwt, "tasks": ["A"], "dice": [[dice]],
                                                           "average_dice": [dice]}}


def test_paired_differences_and_the_significant_line():
    results = [_unit("fft", k, 0.5 + 0.01 * k) for k in range(5)]
    results += [_unit("medseqft", k, 0.53 + 0.01 * k + 0.001 * (k % 2), bwt=-0.01) for k in range(5)]
    results += [_unit("seq_ft", k, 0.5 + 0.01 * k + (0.02 if k % 2 else -0.02), bwt=-0.05) for k in range(5)]
    diffs = paired_differences(results)
    assert diffs["fft"]["final"]["ci"] is None
    med = diffs["medseqft"]["final"]
    assert med["diff"][3] == pytest.approx(0.031)
    assert med["ci"]["significant"] is True
    assert diffs["medseqft"]["bwt"]["ci"]["mean"] == pytest.approx(-0.01)  # FFT's BWT is 0 by construction
    line = significance_line("MedSeqFT", "final", med["ci"])
    assert "significant at 95 %: yes (CI excludes 0)" in line
    assert "significant at 95 %: no (CI includes 0)" in significance_line("Seq-FT", "final", diffs["seq_ft"]["final"]["ci"])


def test_tables_show_the_ci_columns_and_the_curve(tmp_path):
    from MedSeqFTLib.benchmark.table import write_tables

    results = [_unit("fft", k, 0.5 + 0.01 * k) for k in range(3)] + [_unit("seq_ft", k, 0.52 + 0.01 * k, -0.01)
                                                                      for k in range(3)]
    for r in results:
        r["timing"] = {"train_s": 1.0, "stage_s": {"fft": 1.0}, "peak_memory_bytes": {}, "memory_kind": None}
        r["final"]["A"].update({"hd95": 1.0, "n_cases": 8})
        r["after_training"] = r["final"]
    curve = {"100": [_unit("fft", 0, 0.4)], "200": [_unit("fft", 0, 0.5)]}
    paths = write_tables(tmp_path, results, {"settings": {}, "datasets": ["A"]}, curve=curve)
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Seq-FT | final average Dice |" in md and "95 % CI" in md
    assert "only 3 seeds" in md and "significant at 95 %" in md
    assert "| 100 | 1 |" in md and "| 200 | 1 |" in md and paths["curve_plot"]
    assert "Test cases per task: 8" in md


def test_curve_table_keeps_the_task_order_not_the_json_key_order(tmp_path):
    from MedSeqFTLib.benchmark.table import write_tables

    unit = {"strategy": "fft", "kind": "parallel", "seed": 0, "tasks": ["Liver", "Kidney"],
            # as read back from result.json (sorted keys): Kidney before Liver
            "final": {"Kidney": {"dice": 0.2}, "Liver": {"dice": 0.6}}}
    write_tables(tmp_path, [], {"settings": {}, "datasets": []}, curve={"60": [unit]})
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| steps per task | seeds | Liver | Kidney | **Average** |" in md
    assert "| 60 | 1 | 60.0 | 20.0 | **40.0** |" in md


def test_cost_table_has_a_column_for_every_stage(tmp_path):
    """EWC's Fisher estimation (stage ``ewc_fisher``) is training time: it needs its own column."""
    from MedSeqFTLib.benchmark.table import write_tables

    results = []
    for k in range(2):
        fft = _unit("fft", k, 0.5)
        fft["timing"] = {"train_s": 10.0, "stage_s": {"fft": 10.0}, "peak_memory_bytes": {}, "memory_kind": None}
        ewc = _unit("seq_ewc", k, 0.4, bwt=-0.1)
        ewc["timing"] = {"train_s": 12.0, "stage_s": {"fft": 9.0, "ewc_fisher": 3.0}, "peak_memory_bytes": {},
                         "memory_kind": None}
        results += [fft, ewc]
    for r in results:
        r["final"]["A"].update({"hd95": 1.0, "n_cases": 8})
        r["after_training"] = r["final"]
    write_tables(tmp_path, results, {"settings": {}, "datasets": ["A"]})
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| fft s | ewc_fisher s | × FFT time |" in md
    assert "| Seq-FT + EWC | 12.0 ± 0.0 | 9.0 | 3.0 | 1.20 ± 0.00 |" in md
