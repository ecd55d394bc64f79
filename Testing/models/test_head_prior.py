"""A fresh segmentation head starts at the configured foreground prior (``init_head_prior``)."""

import math

import pytest
import torch
from torch import nn

from MedSeqFTLib.config import ArchConfig, RecipeConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models.registry import build_segnet
from MedSeqFTLib.models.segnet import init_head_prior
from MedSeqFTLib.retention.deep_supervision import make_deep_supervision


def _softmax_of_bias(head):
    return torch.softmax(head.bias.detach().double(), dim=0)


def test_bias_softmax_equals_prior():
    head = init_head_prior(nn.Conv3d(8, 5, 1), 0.01)
    probs = _softmax_of_bias(head)
    assert probs[1:].tolist() == pytest.approx([0.01] * 4, rel=1e-6)
    assert float(probs[0]) == pytest.approx(0.96, rel=1e-6)


def test_many_classes_lower_the_prior_so_background_keeps_half():
    head = init_head_prior(nn.Conv3d(8, 105, 1), 0.01)  # 104 foreground classes: 1.04 > 1
    probs = _softmax_of_bias(head)
    assert float(probs[0]) == pytest.approx(0.5, rel=1e-6)
    assert float(probs[1]) == pytest.approx(0.5 / 104, rel=1e-6)


def test_zero_prior_keeps_pytorch_default():
    torch.manual_seed(0)
    ref = nn.Conv3d(8, 3, 1)
    torch.manual_seed(0)
    head = init_head_prior(nn.Conv3d(8, 3, 1), 0.0)
    assert torch.equal(head.bias, ref.bias) and torch.equal(head.weight, ref.weight)


def test_prior_does_not_consume_random_numbers():
    # strategies compared on paired seeds must draw the same weights with or without the prior
    torch.manual_seed(3)
    a = build_segnet(ArchConfig(name="small_unet", feature_size=4), 3, head_prior=0.0)
    after_a = torch.rand(4)
    torch.manual_seed(3)
    b = build_segnet(ArchConfig(name="small_unet", feature_size=4), 3, head_prior=0.01)
    after_b = torch.rand(4)
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.bias, b.head.bias)
    assert torch.equal(after_a, after_b)


def test_fresh_net_predicts_mostly_background_and_default_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        prior = build_segnet(ArchConfig(name="small_unet", feature_size=4), 3, head_prior=0.01).eval()(x)
        torch.manual_seed(0)
        plain = build_segnet(ArchConfig(name="small_unet", feature_size=4), 3, head_prior=0.0).eval()(x)
    fg_prior = float((prior.argmax(1) > 0).float().mean())
    fg_plain = float((plain.argmax(1) > 0).float().mean())
    assert fg_prior < 0.01
    assert fg_plain > 0.05


def test_deep_supervision_heads_get_the_prior():
    net = build_segnet(ArchConfig(name="small_unet", feature_size=4), 4, head_prior=0.02)
    ds = make_deep_supervision(net, True, seed=1, head_prior=0.02)
    for head in ds.heads:
        assert _softmax_of_bias(head)[1:].tolist() == pytest.approx([0.02] * 3, rel=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 0.5, "x"])
def test_recipe_refuses_bad_prior(bad):
    with pytest.raises(InputError, match="head_prior"):
        RecipeConfig(head_prior=bad)


def test_log_values():
    head = init_head_prior(nn.Conv3d(2, 2, 1), 0.1)
    assert float(head.bias[1]) == pytest.approx(math.log(0.1))
    assert float(head.bias[0]) == pytest.approx(math.log(0.9))
