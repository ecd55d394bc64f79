"""FSEFT's size prior: target proportions, the dead-zone penalty, and transductive adaptation."""

import numpy as np
import pytest
import torch

from MedSeqFTLib.adapters.size_prior import predicted_proportions, size_penalty, target_proportions
from MedSeqFTLib.adapters.surgery import build_adapter_net
from MedSeqFTLib.adapters.train import QueryPrior, adapt_on_queries, penalty_on, proportions_on, query_features
from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.models.registry import build_decoder, build_encoder

torch.set_num_threads(1)


def test_target_proportions_mean_and_trimmed_mean():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (1, 6, 6, 6)) for _ in range(4)]
    shares = [[np.count_nonzero(lab == c) / lab.size for c in (1, 2)] for lab in labels]
    assert np.allclose(target_proportions(labels, 3), np.mean(shares, axis=0))
    # from five masks on, the smallest and largest share of each class are dropped
    sizes = [0, 10, 20, 30, 1000]
    labels = []
    for s in sizes:
        lab = np.zeros(2000, np.uint8)
        lab[:s] = 1
        labels.append(lab)
    assert target_proportions(labels, 2)[0] == pytest.approx(20 / 2000)


def test_penalty_is_exactly_zero_inside_the_margin_and_grows_outside():
    target = np.array([0.1, 0.02])
    inside = torch.tensor([0.08, 0.025], requires_grad=True)  # relative errors 0.2 and 0.2
    pen = size_penalty(inside, target, margin=0.3, weight=0.1)
    assert pen.item() == 0.0
    pen.backward()
    assert torch.count_nonzero(inside.grad) == 0
    outside = torch.tensor([0.02, 0.02], requires_grad=True)  # class 1: e = (0.1 - 0.02) / 0.1 = 0.8
    assert size_penalty(outside, target, 0.3, 0.1).item() == pytest.approx(0.1 * (0.8 - 0.3) / 2)
    # a class without prior (target 0) is ignored
    assert size_penalty(torch.tensor([0.5, 0.02]), np.array([0.0, 0.02]), 0.3, 0.1).item() == 0.0
    probs = torch.softmax(torch.randn(2, 3, 4, 4, 4), 1)
    assert torch.allclose(predicted_proportions(probs), probs[:, 1:].mean(dim=(0, 2, 3, 4)))


class _Sampler:
    """Support patches of noise with a quarter of the voxels labelled foreground at random."""

    def __init__(self, shape):
        self.shape = shape
        self.gen = torch.Generator().manual_seed(0)

    def next_batch(self):
        label = (torch.rand(1, 1, *self.shape, generator=self.gen) < 0.25).long()
        return {"image": torch.randn(1, 1, *self.shape, generator=self.gen), "label": label}


@pytest.fixture
def adapter_and_query():
    arch = ArchConfig(name="small_unet", feature_size=4)
    torch.manual_seed(0)
    net = build_adapter_net(arch, 2, "spatial_adapter", build_encoder(arch).state_dict(), build_decoder(arch).state_dict())
    volume = np.random.default_rng(1).normal(size=(1, 24, 24, 24)).astype(np.float32)
    feats = query_features(net, [volume], (16, 16, 16), torch.device("cpu"), downsample=2)
    return net, feats


def _rel(target, p):
    return abs(target - p) / max(target, p)


def test_the_penalty_alone_brings_a_far_proportion_within_the_margin(adapter_and_query):
    net, feats = adapter_and_query
    assert feats[0].shape == (4, 12, 12, 12)
    target = np.array([0.25])  # far from the fresh head's ~1 % prior
    with torch.no_grad():
        start = float(proportions_on(net, feats[0])[0])
    assert _rel(0.25, start) > 0.9
    prior = QueryPrior(feats, target, margin=0.3, weight=0.1)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    for step in range(300):
        opt.zero_grad()
        pen, predicted = penalty_on(net, prior, step)
        if pen.item() == 0.0:
            break
        pen.backward()
        opt.step()
    assert step > 0 and pen.item() == 0.0 and _rel(0.25, float(predicted.detach()[0])) <= 0.3


def test_adapt_on_queries_reports_proportions_before_and_after(adapter_and_query):
    net, feats = adapter_and_query
    with torch.no_grad():
        start = float(proportions_on(net, feats[0])[0])
    prior = QueryPrior(feats, np.array([0.25]), margin=0.3, weight=0.1)
    out = adapt_on_queries(net, _Sampler((16, 16, 16)), prior, steps=60, lr=1e-2, weight_decay=0.0,
                           device=torch.device("cpu"))
    assert out["before"][0][0] == pytest.approx(start, abs=1e-6)
    assert out["target"] == [0.25]
    assert _rel(0.25, out["after"][0][0]) < _rel(0.25, start)
