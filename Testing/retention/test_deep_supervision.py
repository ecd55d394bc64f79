"""Deep supervision: auxiliary heads on the small U-Net's coarser decoder outputs, training only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.jobs.reporter import NullReporter
from MedSeqFTLib.models.registry import build_segnet
from MedSeqFTLib.retention.deep_supervision import make_deep_supervision, segmentation_step
from MedSeqFTLib.retention.fft import train_fft
from MedSeqFTLib.retention.losses import segmentation_loss
from MedSeqFTLib.retention.trainer import StageSpec

torch.set_num_threads(1)


def _net():
    torch.manual_seed(0)
    return build_segnet(ArchConfig("small_unet", feature_size=4), 3)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, 16, 16, 16, generator=g)
    y = torch.zeros(2, 1, 16, 16, 16, dtype=torch.long)
    y[:, :, 4:12, 4:12, 4:12] = 1
    y[:, :, 6:8, 6:8, 6:8] = 2
    return x, y


def test_loss_is_the_weighted_sum_of_each_scale():
    net, (x, y) = _net(), _batch()
    ds = make_deep_supervision(net, True)
    assert [h.in_channels for h in ds.heads] == [8, 16] and all(h.out_channels == 3 for h in ds.heads)
    loss_fn = segmentation_loss()
    got = segmentation_step(net, net.encoder(x), y, loss_fn, ds)
    outs = net.decoder(net.encoder(x), all_scales=True)
    assert torch.allclose(outs[0], net.decoder(net.encoder(x)))  # the finest output is the usual one
    expected = loss_fn(net.head(outs[0]), y) * (1 / 1.75)
    for head, w, out in zip(ds.heads, (0.5 / 1.75, 0.25 / 1.75), outs[1:]):
        expected = expected + w * loss_fn(head(out), F.interpolate(y.float(), size=out.shape[2:], mode="nearest").long())
    assert torch.allclose(got, expected)
    assert torch.allclose(segmentation_step(net, net.encoder(x), y, loss_fn, None), loss_fn(net(x), y))


def test_disabled_or_unsupported_decoder_means_no_heads():
    net = _net()
    assert make_deep_supervision(net, False) is None
    net.decoder = torch.nn.Identity()  # a decoder without per-scale outputs (SwinUNETR's)
    assert make_deep_supervision(net, True) is None


class _Batches:
    def __init__(self, seed):
        self.seed = seed

    def batch_at(self, i):
        x, y = _batch(self.seed * 1000 + i)
        return {"image": x, "label": y}

    def next_batch(self):  # pragma: no cover - the stream uses batch_at
        raise AssertionError


def test_training_with_deep_supervision_keeps_the_model_layout(tmp_path):
    net = _net()
    keys = set(net.state_dict())
    spec = StageSpec("fft", "t", tmp_path / "fft", iterations=6, lr=1e-2, weight_decay=0.0, checkpoint_every_s=1e9, seed=1)
    before = {k: v.clone() for k, v in net.head.state_dict().items()}
    log = train_fft(net, spec, _Batches, NullReporter(), torch.device("cpu"), deep_supervision=True)
    assert set(net.state_dict()) == keys  # the auxiliary heads are not part of the model
    assert any(not torch.equal(v, net.head.state_dict()[k]) for k, v in before.items())
    assert log.iterations == 6 and "seg" in log.losses
