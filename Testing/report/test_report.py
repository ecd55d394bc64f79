"""``medseqft report WS`` on a tiny synthetic workspace: every section, every PNG, correct numbers."""

from __future__ import annotations

import json
import re
from html import escape

import pytest
import torch

from MedSeqFTLib.cli import main
from MedSeqFTLib.inference.loader import load_encoder_state, load_foundation_encoder_state
from MedSeqFTLib.report.plots import layer_changes
from MedSeqFTLib.report.report import SECTIONS, collect_stages, rft_overhead

from synthetic_workspace import build_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("report") / "ws", tasks=("alpha", "beta"), n_cases=3)


def test_report_has_every_section_and_its_pngs(ws, capsys):
    assert main(["report", str(ws.root), "--slices", "2"]) == 0  # evaluates first: no metrics yet
    html_path, md_path = ws.reports_dir / "report.html", ws.reports_dir / "report.md"
    html, md = html_path.read_text(), md_path.read_text()
    for section in SECTIONS:
        assert f">{escape(section)}</h2>" in html, section
        assert f"## {section}" in md, section
    srcs = re.findall(r"<img src='([^']+)'", html)
    assert srcs == re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    for src in srcs:
        png = ws.reports_dir / src
        assert "/" not in src and png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = set(srcs)
    assert {"forgetting.png", "param_change.png", "loss_alpha.png", "loss_beta.png"} <= names
    assert {"overlay_alpha_0.png", "overlay_alpha_1.png", "overlay_beta_0.png", "overlay_beta_1.png"} <= names
    # numbers in the report come from the metrics files
    metrics = json.loads((ws.metrics_dir / "metrics.json").read_text())
    assert f"{100 * metrics['tasks']['alpha']['dice']:.1f}" in html
    # RFT overhead from the records: kd_fft 26 s / 200 it over fft 10 s / 100 it = 1.30;
    # per task (0.13 * 200 + 3 + 1) / (0.1 * 200) = 1.50
    assert "<td>1.30</td>" in html and "<td>1.50</td>" in html
    assert "50 MiB" in html


def test_overhead_ratio_and_stage_reading():
    stages = {"a": collect_stages({"stages": [{"stage": "fft", "iterations": 10, "time_s": 5.0}]}),
              "b": collect_stages({"stages": {"kd_fft": {"iterations": 10, "time_s": 6.0, "s_per_iter": 0.7}}})}
    ov = rft_overhead(stages)
    assert ov["ratio_per_iter"] == pytest.approx(0.7 / 0.5)  # an explicit s_per_iter wins over time/iterations
    assert rft_overhead({"a": stages["a"]}) is None


def test_layer_changes_against_direct_computation(ws):
    m0, e1 = load_foundation_encoder_state(ws), load_encoder_state(ws, "alpha")
    changes = dict(layer_changes(m0, e1))
    name = next(k for k in e1 if k.endswith("conv1.conv.weight"))
    layer = name.rsplit(".", 1)[0]
    parts = [k for k in e1 if k.rsplit(".", 1)[0] == layer and k.rsplit(".", 1)[1] in ("weight", "bias")]
    diff = torch.cat([(e1[k] - m0[k]).abs().flatten() for k in parts])
    assert changes[layer] == pytest.approx(float(diff.mean()), rel=1e-6)
    assert not any("running" in k or "num_batches" in k for k in changes)
