"""EWC and LwF (``retention.ewc``, ``retention.lwf``, ``benchmark.cl_baselines``) and the FFT curve mechanics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from MedSeqFTLib.retention.ewc import estimate_fisher, ewc_penalty
from MedSeqFTLib.retention.lwf import distillation_kl


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv3d(1, 2, 1)
        self.unused = nn.Linear(2, 2)  # never in the forward: its Fisher must be 0
        self.head = nn.Conv3d(2, 2, 1)

    def forward(self, x):
        return self.head(self.encoder(x))


def test_ewc_penalty_equals_an_independent_sum():
    torch.manual_seed(0)
    net = _Tiny()
    params = dict(net.named_parameters())
    fisher = {"encoder.weight": torch.rand(2, 1, 1, 1, 1), "encoder.bias": torch.rand(2)}
    anchor = {k: torch.randn_like(params[k]) for k in fisher}
    fisher2 = {"encoder.bias": torch.rand(2)}
    anchor2 = {"encoder.bias": torch.randn(2)}
    got = ewc_penalty(params, [(fisher, anchor), (fisher2, anchor2)], lam=3.0)
    want = 0.0
    for f, a in ((fisher, anchor), (fisher2, anchor2)):
        for k in f:
            for fv, pv, av in zip(f[k].flatten().tolist(), params[k].detach().flatten().tolist(), a[k].flatten().tolist()):
                want += fv * (pv - av) ** 2
    assert float(got.detach()) == pytest.approx(1.5 * want, rel=1e-5)
    got.backward()  # differentiable w.r.t. the parameters
    assert params["encoder.bias"].grad is not None
    assert float(ewc_penalty(params, [], 3.0)) == 0.0


def test_fisher_is_the_mean_squared_gradient_non_negative_and_zero_without_gradient():
    torch.manual_seed(0)
    net = _Tiny()
    for p in net.head.parameters():
        p.requires_grad_(False)
    loss_fn = lambda out, y: nn.functional.cross_entropy(out, y[:, 0])  # noqa: E731
    batches = [(torch.randn(1, 1, 2, 2, 2), torch.randint(0, 2, (1, 1, 2, 2, 2))) for _ in range(3)]
    fisher = estimate_fisher(net, batches, loss_fn, "cpu", prefix="")
    assert all(bool((f >= 0).all()) for f in fisher.values())
    assert float(fisher["unused.weight"].abs().sum()) == 0.0 and float(fisher["head.weight"].abs().sum()) == 0.0
    want = torch.zeros_like(net.encoder.weight)
    for x, y in batches:
        g, = torch.autograd.grad(loss_fn(net(x), y), net.encoder.weight)
        want += g ** 2
    assert torch.allclose(fisher["encoder.weight"], want / 3, atol=1e-7)
    with pytest.raises(ValueError):
        estimate_fisher(net, [], loss_fn, "cpu")


def test_lwf_loss_is_zero_for_equal_logits_and_positive_otherwise():
    z = torch.randn(2, 3, 4, 4, 4)
    assert float(distillation_kl(z.clone().requires_grad_(), z).detach()) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(2, 3, 4, 4, 4)
    loss = distillation_kl(other, z, temperature=2.0)
    p = torch.softmax(z / 2, 1)
    want = 4.0 * (p * (torch.log_softmax(z / 2, 1) - torch.log_softmax(other / 2, 1))).sum(1).mean()
    assert float(loss) == pytest.approx(float(want), rel=1e-5) and float(loss) > 0
    with pytest.raises(ValueError):
        distillation_kl(other, z[:, :2])
    with pytest.raises(ValueError):
        distillation_kl(other, z, temperature=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from MedSeqFTLib.benchmark.settings import bench_preset
    from tiny_inputs import make_tiny_inputs

    root = tmp_path_factory.mktemp("cl")
    m0, datasets = make_tiny_inputs(root)
    settings = bench_preset("tiny").replace(iterations=2)
    return root, Path(m0), datasets, settings


@pytest.mark.parametrize("name", ["seq_ewc", "seq_lwf"])
def test_strategy_runs_on_a_tiny_workspace(tiny, name):
    from MedSeqFTLib.benchmark.cl_baselines import FISHER_FILE
    from MedSeqFTLib.benchmark.run import run_unit
    from MedSeqFTLib.benchmark.strategies import STRATEGIES, parse_strategies
    from MedSeqFTLib.benchmark.stats import unit_metrics
    from MedSeqFTLib.io.atomic import read_json
    from MedSeqFTLib.jobs.reporter import NullReporter

    root, m0, datasets, settings = tiny
    assert name in parse_strategies("all")
    res = run_unit(root / "bench", STRATEGIES[name], 0, settings, m0, datasets, None, NullReporter(), "cpu")
    assert res["tasks"] and len(res["forgetting"]["dice"]) == 2
    from MedSeqFTLib.sequence.workspace import Workspace

    ws = Workspace.open(root / "bench" / "runs" / name / "seed0" / "ws")
    task1, task2 = (ws.task_dir(t) for t in ws.task_names())
    record = read_json(task2 / "model" / "record.json")
    stage = record["stages"]["fft"]
    assert stage["iterations"] == 2 and stage["regulariser"] == name[4:]
    assert {"ewc": "ewc", "lwf": "lwf"}[name[4:]] in stage["losses"]  # the regulariser really ran
    assert (task1 / FISHER_FILE).is_file() == (name == "seq_ewc")
    assert set(res["class_volume_mm3"]) == set(res["tasks"])
    assert all("classes" in v and "n_cases" in v for v in res["final"].values())
    m = unit_metrics(res)
    assert m["final"] is not None and m["bwt"] is not None


def test_curve_runs_each_budget_as_its_own_fft_unit(tiny):
    from MedSeqFTLib.benchmark.curve import load_curve, parse_budgets, run_curve
    from MedSeqFTLib.errors import InputError
    from MedSeqFTLib.io.atomic import read_json
    from MedSeqFTLib.jobs.reporter import NullReporter

    root, m0, datasets, settings = tiny
    assert parse_budgets("2, 1,2") == [1, 2] and parse_budgets(None) == []
    with pytest.raises(InputError):
        parse_budgets("1,x")
    out = root / "curve_bench"
    curve = run_curve(out, [1, 2], [0], settings, m0, datasets, NullReporter(), "cpu")
    assert sorted(curve) == ["1", "2"] and all(len(v) == 1 for v in curve.values())
    for b in (1, 2):
        ws = out / "curve" / f"b{b}" / "runs" / "fft" / "seed0" / "ws_1"
        rec = read_json(next((ws / "tasks").iterdir()) / "model" / "record.json")
        assert rec["stages"]["fft"]["iterations"] == b
    assert sorted(load_curve(out)) == ["1", "2"]
