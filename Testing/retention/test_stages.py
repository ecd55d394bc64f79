"""The K&G RFT stages on a tiny U-Net: what each stage updates, that its loss does its job,
determinism, and resuming a stage from its checkpoint."""

import copy

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import Cancelled
from MedSeqFTLib.jobs.reporter import NullReporter
from MedSeqFTLib.models.registry import build_segnet
from MedSeqFTLib.retention.fft import train_fft
from MedSeqFTLib.retention.kd_fft import train_kd_fft
from MedSeqFTLib.retention.lora_kd import train_lora_kd
from MedSeqFTLib.retention.losses import distillation_loss, resolve_scales
from MedSeqFTLib.retention.merge import add_lora, lora_parameters, merge_lora
from MedSeqFTLib.retention.trainer import StageSpec, stage_state

torch.set_num_threads(1)
ARCH = ArchConfig("small_unet", feature_size=4)
SIZE = 16
CPU = torch.device("cpu")


class Blobs:
    """Random volumes whose label is 'brighter than a threshold' (a learnable toy task)."""

    def __init__(self, seed, batch=2, shift=0.0):
        self.rng = np.random.default_rng(seed)
        self.batch, self.shift = batch, shift

    def next_batch(self):
        img = self.rng.normal(self.shift, 1.0, (self.batch, 1, SIZE, SIZE, SIZE)).astype(np.float32)
        return {"image": img, "label": (img > 0.5 + self.shift).astype(np.uint8)}


def _spec(tmp_path, stage, iterations, lr=1e-2, every=1e9, seed=3):
    return StageSpec(stage=stage, task="t", folder=tmp_path / stage, iterations=iterations, lr=lr,
                     weight_decay=1e-5, checkpoint_every_s=every, seed=seed)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def _kd_distance(encoder, teacher, seed=99):
    x = torch.as_tensor(Blobs(seed, shift=1.0).next_batch()["image"])
    with torch.no_grad():
        return float(distillation_loss(encoder(x), teacher(x), range(4)))


def _net(seed=0, n_classes=2):
    torch.manual_seed(seed)
    return build_segnet(ARCH, n_classes)


def test_kd_only_updates_only_the_encoder_and_pulls_it_to_the_teacher(tmp_path):
    net = _net()
    teacher = copy.deepcopy(net.encoder)
    with torch.no_grad():  # move the student away from E_{t-1}, as task training would
        for p in net.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    start = _kd_distance(net.encoder, teacher)
    dec, head, enc = _snapshot(net.decoder), _snapshot(net.head), _snapshot(net.encoder)
    log = train_kd_fft(net, teacher, _spec(tmp_path, "kd_fft", 40, lr=3e-3), lambda s: Blobs(s),
                       lambda s: Blobs(s, batch=1, shift=1.0), NullReporter(), CPU, kd_weight=1.0,
                       scales=resolve_scales(4, None), seg_weight=0.0)
    assert _changed(dec, net.decoder) == set() and _changed(head, net.head) == set()
    assert len(_changed(enc, net.encoder)) > 0
    assert _kd_distance(net.encoder, teacher) < 0.75 * start
    assert set(log.losses) == {"kd"}
    assert all(not p.requires_grad for p in teacher.parameters())


def test_kd_fft_gradient_routing_matches_two_separate_backward_passes():
    """``kd_update="joint"``: one backward of seg + w*kd == seg's gradients on decoder/head, seg + w*kd
    on the encoder (the default "independent" update: test_kd_independent.py)."""
    from MedSeqFTLib.retention.losses import segmentation_loss

    net = _net()
    teacher = copy.deepcopy(net.encoder)
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    task, buf = Blobs(1).next_batch(), Blobs(2, batch=1, shift=1.0).next_batch()
    x_t, y_t = torch.as_tensor(task["image"]), torch.as_tensor(task["label"]).long()
    x_b = torch.as_tensor(buf["image"])
    seg_fn, w = segmentation_loss(), 0.7

    def grads(use_seg, use_kd):
        net.zero_grad(set_to_none=False)
        loss = 0.0
        if use_seg:
            loss = loss + seg_fn(net(x_t), y_t)
        if use_kd:
            loss = loss + w * distillation_loss(net.encoder(x_b), teacher(x_b), range(4))
        loss.backward()
        return {n: p.grad.clone() for n, p in net.named_parameters()}

    g_seg, g_kd = grads(True, False), grads(False, True)
    # what the stage does: one forward on the concatenated batch, one backward of the sum
    net.zero_grad(set_to_none=False)
    feats = net.encoder(torch.cat([x_t, x_b]))
    seg = seg_fn(net.head(net.decoder([f[:2] for f in feats])), y_t)
    kd = distillation_loss([f[2:] for f in feats], teacher(x_b), range(4))
    (seg + w * kd).backward()
    for n, p in net.named_parameters():
        if n.startswith("encoder."):
            torch.testing.assert_close(p.grad, g_seg[n] + g_kd[n], rtol=1e-4, atol=1e-6)
        else:
            assert torch.count_nonzero(g_kd[n]) == 0
            torch.testing.assert_close(p.grad, g_seg[n], rtol=1e-4, atol=1e-6)


def test_lora_kd_moves_only_lora_and_reduces_distance_to_mid_encoder(tmp_path):
    net = _net()
    e_prev = copy.deepcopy(net.encoder)
    # a target E_mid that E_{t-1} + rank-2 LoRA can reach: E_{t-1} + a random rank-2 update
    e_mid = add_lora(copy.deepcopy(e_prev), rank=2, alpha=2.0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in lora_parameters(e_mid).values():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    e_mid = merge_lora(e_mid)
    torch.manual_seed(5)
    student = add_lora(copy.deepcopy(e_prev), rank=2, alpha=2.0)
    base_before = {k: v.clone() for k, v in student.state_dict().items() if "lora_" not in k}
    start = _kd_distance(student, e_mid)
    log = train_lora_kd(student, e_mid, _spec(tmp_path, "lora_kd", 30, lr=1e-2), lambda s: Blobs(s, shift=1.0),
                        NullReporter(), CPU, scales=list(range(4)))
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in base_before.items())
    assert any(torch.count_nonzero(p) for n, p in lora_parameters(student).items() if "lora_B" in n)
    assert _kd_distance(student, e_mid) < 0.85 * start


def test_fft_is_deterministic_and_learns(tmp_path):
    results = []
    for run in range(2):
        net = _net()
        log = train_fft(net, _spec(tmp_path / str(run), "fft", 8), lambda s: Blobs(s), NullReporter(), CPU)
        results.append(_snapshot(net))
        assert log.iterations == 8 and log.time_s > 0 and log.peak_memory_bytes > 0
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


class CancelAfter(NullReporter):
    def __init__(self, n):
        super().__init__()
        self.n, self.seen = n, []

    def progress(self, stage, task, step, total, losses=None, message=None):
        self.seen.append(step)
        if step == self.n:
            self.request_cancel()


def test_cancelled_stage_resumes_from_its_checkpoint(tmp_path):
    net = _net()
    spec = _spec(tmp_path, "fft", 6)
    with pytest.raises(Cancelled):
        train_fft(net, spec, lambda s: Blobs(s), CancelAfter(3), CPU)
    state = stage_state(spec.folder)
    assert state["step"] == 3 and not state["done"]
    ckpt = torch.load(spec.folder / "checkpoint.pt", weights_only=True)  # tensors and plain containers only
    assert ckpt["step"] == 3 and set(ckpt["params"]) == {n for n, _ in net.named_parameters()}
    torch.testing.assert_close(ckpt["params"]["head.weight"], net.head.weight.detach())

    fresh = _net(seed=123)  # different init: everything must come from the checkpoint
    reporter = CancelAfter(-1)
    log = train_fft(fresh, spec, lambda s: Blobs(s), reporter, CPU)
    assert reporter.seen == [4, 5, 6] and log.runs == 2
    assert stage_state(spec.folder)["done"] and not (spec.folder / "checkpoint.pt").exists()
    # a finished stage is loaded, not trained again
    again = _net(seed=7)
    reporter = CancelAfter(-1)
    train_fft(again, spec, lambda s: Blobs(s), reporter, CPU)
    assert reporter.seen == []
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), fresh.state_dict().values()))


def test_resolve_scales_rejects_missing_outputs():
    from MedSeqFTLib.errors import InputError

    assert resolve_scales(4, None) == [0, 1, 2, 3]
    assert resolve_scales(4, [3, 1, 3]) == [1, 3]
    with pytest.raises(InputError, match="distil_scales"):
        resolve_scales(4, [4])
