"""KD-FFT's cost-saving paths (docs/overhead.md): one student forward on task + buffer patches, the
teacher in inference mode. Each must leave the method as it was: the same losses and gradients as two
forwards (up to float rounding), distillation never reaching decoder or head, no graph through the
teacher, and an exact resume."""

import copy

import pytest
import torch

from MedSeqFTLib.errors import Cancelled
from MedSeqFTLib.retention.kd_fft import fuse_default
from MedSeqFTLib.retention.optimizers import StageOptimizers

from test_kd_independent import BUFFER, CPU, CancelAt, IndexedBlobs, _pair, _run, _state  # noqa: E402

torch.set_num_threads(1)


def _step_gradients(monkeypatch, tmp_path, tag, **kw):
    """Losses and per-loss gradients (``{loss: (value, {param: grad or None})}``) of a KD-FFT stage's first step."""
    net, teacher = _pair()
    params = dict(net.named_parameters())
    seen = []
    real = StageOptimizers.backward_and_step

    def spy(self, loss, precision, grad_clip):
        named = loss if isinstance(loss, dict) else {"total": loss}
        record = {}
        for name, value in named.items():
            grads = torch.autograd.grad(value, list(params.values()), retain_graph=True, allow_unused=True)
            record[name] = (float(value.detach()), dict(zip(params, grads)))
        seen.append(record)
        return real(self, loss, precision, grad_clip)

    monkeypatch.setattr(StageOptimizers, "backward_and_step", spy)
    log = _run(tmp_path, tag, net, teacher, **kw)
    monkeypatch.undo()
    return seen[0], log


@pytest.mark.parametrize("update", ["independent", "joint"])
def test_one_fused_forward_gives_the_losses_and_gradients_of_two_forwards(tmp_path, monkeypatch, update):
    fused, log_f = _step_gradients(monkeypatch, tmp_path, "fused", update=update, fuse=True)
    apart, log_a = _step_gradients(monkeypatch, tmp_path, "apart", update=update, fuse=False)
    assert log_f.extra["kd_fused_forward"] is True and log_a.extra["kd_fused_forward"] is False
    assert set(fused) == set(apart) == ({"kd", "seg"} if update == "independent" else {"total"})
    for name in fused:
        (v_f, g_f), (v_a, g_a) = fused[name], apart[name]
        assert v_f == pytest.approx(v_a, rel=1e-5)
        for k in g_f:
            if g_a[k] is None:
                assert g_f[k] is None, (name, k)
            else:
                torch.testing.assert_close(g_f[k], g_a[k], rtol=1e-4, atol=1e-6, msg=f"{name} {k}")
    if update == "independent":  # the fused graph does not let distillation reach decoder or head
        kd_grads = fused["kd"][1]
        assert all(kd_grads[k] is None for k in kd_grads if not k.startswith("encoder."))
        assert all(kd_grads[k] is not None for k in kd_grads if k.startswith("encoder."))


def test_fused_independent_step_moves_decoder_and_head_as_segmentation_alone(tmp_path):
    """The whole step through both optimisers: decoder and head as after a segmentation-only step (up to the
    rounding of the batched encoder forward), the KD optimiser's state only on the encoder."""
    start = _pair()
    nets = {}
    for tag, buffer in (("both", BUFFER), ("seg", None)):
        net, teacher = copy.deepcopy(start[0]), copy.deepcopy(start[1])
        _run(tmp_path, tag, net, teacher, buffer=buffer, fuse=True)
        nets[tag] = _state(net)
    for k, v in nets["both"].items():
        if k.startswith(("decoder.", "head.")):
            torch.testing.assert_close(v, nets["seg"][k], rtol=1e-5, atol=1e-6, msg=k)


def test_teacher_runs_without_a_graph_in_inference_mode_and_stays_frozen(tmp_path):
    net, teacher = _pair()
    before = _state(teacher)
    modes = []
    teacher.register_forward_hook(lambda m, i, o: modes.append((torch.is_inference_mode_enabled(),
                                                                 torch.is_grad_enabled(), m.training)))
    _run(tmp_path, "t", net, teacher, iterations=3)
    assert modes == [(True, False, False)] * 3
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in _state(teacher).items())


@pytest.mark.parametrize("fuse", [True, False])
def test_resume_is_exact_with_either_forward(tmp_path, fuse):
    """Cancel at step 3 of 6 (kd_every 2) and resume: the tensors of an uninterrupted run."""
    start = _pair()
    net, teacher = copy.deepcopy(start[0]), copy.deepcopy(start[1])
    _run(tmp_path, "straight", net, teacher, iterations=6, kd_every=2, fuse=fuse)
    straight = _state(net)
    net, teacher = copy.deepcopy(start[0]), copy.deepcopy(start[1])
    with pytest.raises(Cancelled):
        _run(tmp_path, "cut", net, teacher, iterations=6, reporter=CancelAt(3), kd_every=2, fuse=fuse)
    fresh, _ = _pair(seed=9)
    _run(tmp_path, "cut", fresh, copy.deepcopy(start[1]), iterations=6, kd_every=2, fuse=fuse)
    resumed = _state(fresh)
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-6, atol=1e-7, msg=k)


def test_buffer_patches_of_another_size_take_two_forwards(tmp_path):
    net, teacher = _pair()
    small = lambda s: _Resized(IndexedBlobs(s, batch=1, shift=1.0))  # noqa: E731
    log = _run(tmp_path, "sizes", net, teacher, buffer=small, iterations=2, fuse=True)
    assert set(log.losses) == {"seg", "kd"}


class _Resized:
    """Buffer batches cropped to 16 x 16 x 8 (the task's are 16^3): no common batch, so no fused forward."""

    def __init__(self, source):
        self.source = source

    def batch_at(self, i):
        b = self.source.batch_at(i)
        return {"image": b["image"][..., :8], "label": None}

    def next_batch(self):
        raise AssertionError("indexed source read in order")


def test_fuse_default():
    assert fuse_default(CPU, "joint") and fuse_default(torch.device("cuda"), "joint")
    with pytest.raises(ValueError, match="update"):
        fuse_default(CPU, "both")
