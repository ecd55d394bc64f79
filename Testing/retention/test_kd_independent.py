"""KD-FFT's independent updates (the paper's default): the segmentation loss and the distillation
loss each step their own parameters with their own AdamW state; checkpoint and resume keep both."""

import copy

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import Cancelled, InputError
from MedSeqFTLib.jobs.reporter import NullReporter
from MedSeqFTLib.models.registry import build_segnet
from MedSeqFTLib.retention.kd_fft import train_kd_fft
from MedSeqFTLib.retention.optimizers import OptimizerSpec, StageOptimizers
from MedSeqFTLib.retention.precision import Precision
from MedSeqFTLib.retention.trainer import StageSpec, stage_state

torch.set_num_threads(1)
ARCH = ArchConfig("small_unet", feature_size=4)
SIZE = 16
CPU = torch.device("cpu")


class IndexedBlobs:
    """Batch ``i`` depends only on ``(seed, i)`` (like ``PatchSampler``), so a resumed stage sees the same stream."""

    def __init__(self, seed, batch=2, shift=0.0):
        self.seed, self.batch, self.shift = int(seed), batch, shift

    def batch_at(self, i):
        rng = np.random.default_rng([self.seed, int(i)])
        img = rng.normal(self.shift, 1.0, (self.batch, 1, SIZE, SIZE, SIZE)).astype(np.float32)
        return {"image": img, "label": (img > 0.5 + self.shift).astype(np.uint8)}

    def next_batch(self):  # not used: the stage reads batch_at through its BatchStream
        raise AssertionError("indexed source read in order")


TASK = lambda s: IndexedBlobs(s)  # noqa: E731
BUFFER = lambda s: IndexedBlobs(s, batch=1, shift=1.0)  # noqa: E731


def _spec(folder, iterations, lr=3e-3, every=1e9):
    return StageSpec(stage="kd_fft", task="t", folder=folder, iterations=iterations, lr=lr, weight_decay=1e-2,
                     checkpoint_every_s=every, seed=5)


def _pair(seed=0):
    """(student net, frozen teacher E_{t-1}) with the student moved away from the teacher."""
    torch.manual_seed(seed)
    net = build_segnet(ARCH, 2)
    teacher = copy.deepcopy(net.encoder)
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net, teacher


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _run(tmp_path, tag, net, teacher, buffer=BUFFER, seg_weight=1.0, iterations=1, reporter=None, **kw):
    return train_kd_fft(net, teacher, _spec(tmp_path / tag, iterations), TASK, buffer, reporter or NullReporter(), CPU,
                        kd_weight=1.0, scales=[0, 1, 2, 3], seg_weight=seg_weight, **kw)


def test_kd_loss_never_changes_decoder_or_head_and_adds_its_own_encoder_step(tmp_path):
    """One step from the same state: both losses / segmentation only / distillation only.

    Decoder and head move exactly as with the segmentation loss alone; the encoder moves by the
    segmentation step plus exactly the step distillation alone makes.
    """
    start = _pair()
    nets = {}
    for tag, buffer, seg_weight in (("both", BUFFER, 1.0), ("seg", None, 1.0), ("kd", BUFFER, 0.0)):
        net, teacher = copy.deepcopy(start[0]), copy.deepcopy(start[1])
        # two student forwards: the exact statement (the fused forward: test_kd_fused.py, up to rounding)
        log = _run(tmp_path, tag, net, teacher, buffer=buffer, seg_weight=seg_weight, fuse=False)
        nets[tag] = net
        assert log.extra["kd_update"] == ("none" if buffer is None else "independent")
    before = _state(start[0])
    both, seg, kd = (_state(nets[k]) for k in ("both", "seg", "kd"))
    for k in before:
        if k.startswith(("decoder.", "head.")):
            assert torch.equal(both[k], seg[k]), k  # bit-identical: the KD loss is nowhere near them
            assert torch.equal(kd[k], before[k]), k
        else:
            torch.testing.assert_close(both[k] - seg[k], kd[k] - before[k], rtol=1e-4, atol=1e-7)
    moved = [k for k in before if k.startswith("encoder.") and not torch.equal(kd[k], before[k])]
    assert moved  # the comparison is not trivial: distillation really moved the encoder


class CancelAt(NullReporter):
    def __init__(self, n):
        super().__init__()
        self.n, self.last = n, 0

    def progress(self, stage, task, step, total, losses=None, message=None):
        self.last = step

    def check_cancel(self):
        if self.last == self.n:
            raise Cancelled("test cancel")


def test_each_loss_has_its_own_optimiser_state_in_the_checkpoint(tmp_path):
    net, teacher = _pair()
    with pytest.raises(Cancelled):
        _run(tmp_path, "ckpt", net, teacher, iterations=6, reporter=CancelAt(3), kd_every=2)
    ckpt = torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=True)
    assert "optimizer" not in ckpt and set(ckpt["optimizers"]) == {"seg", "kd"}
    seg, kd = ckpt["optimizers"]["seg"], ckpt["optimizers"]["kd"]
    n_enc = sum(1 for n in ckpt["params"] if n.startswith("encoder."))
    assert len(seg["state"]) == len(ckpt["params"]) > n_enc  # encoder + decoder + head
    assert len(kd["state"]) == n_enc  # the encoder only
    # kd_every 2: three segmentation steps (0, 1, 2), two distillation steps (0, 2)
    assert {int(s["step"]) for s in seg["state"].values()} == {3}
    assert {int(s["step"]) for s in kd["state"].values()} == {2}
    assert kd["param_groups"][0]["weight_decay"] == 0.0 and seg["param_groups"][0]["weight_decay"] == 1e-2
    # the two states hold different moments for the same encoder weight
    assert not torch.equal(seg["state"][0]["exp_avg"], kd["state"][0]["exp_avg"])


@pytest.mark.parametrize("update", ["independent", "joint"])
def test_resume_after_a_cancel_mid_kd_fft_equals_an_uninterrupted_run(tmp_path, update):
    """Both optimiser states, the schedule and both streams resume; with kd_every 2 the buffer stream
    continues after the batches the distillation steps before the cut took (not at the step index)."""
    start = _pair()
    net, teacher = copy.deepcopy(start[0]), copy.deepcopy(start[1])
    _run(tmp_path, "straight", net, teacher, iterations=6, kd_every=2, update=update)
    straight = _state(net)

    net, teacher = copy.deepcopy(start[0]), copy.deepcopy(start[1])
    with pytest.raises(Cancelled):
        _run(tmp_path, "cut", net, teacher, iterations=6, reporter=CancelAt(3), kd_every=2, update=update)
    assert stage_state(tmp_path / "cut")["step"] == 3
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ("optimizers" in ckpt) == (update == "independent")
    fresh, _ = _pair(seed=9)  # as in a new process: every trained tensor comes from the checkpoint
    teacher = copy.deepcopy(start[1])
    log = _run(tmp_path, "cut", fresh, teacher, iterations=6, kd_every=2, update=update)
    assert log.runs == 2
    resumed = _state(fresh)
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-6, atol=1e-7, msg=k)
    assert any(not torch.equal(straight[k], v) for k, v in _state(start[0]).items())


def test_resume_with_the_other_update_mode_is_refused(tmp_path):
    net, teacher = _pair()
    with pytest.raises(Cancelled):
        _run(tmp_path, "s", net, teacher, iterations=4, reporter=CancelAt(1), update="independent")
    with pytest.raises(InputError, match="other settings.*kd_update"):
        _run(tmp_path, "s", net, teacher, iterations=4, update="joint")


def test_bad_arguments():
    net, teacher = _pair()
    with pytest.raises(ValueError, match="update"):
        train_kd_fft(net, teacher, None, TASK, BUFFER, NullReporter(), CPU, 1.0, [0], update="both")
    w = {"a": torch.nn.Parameter(torch.zeros(2)), "b": torch.nn.Parameter(torch.zeros(2))}
    with pytest.raises(ValueError, match="no optimiser"):
        StageOptimizers(w, 0.1, 0.0, {"x": OptimizerSpec(("a",))})
    with pytest.raises(ValueError, match="unknown"):
        StageOptimizers(w, 0.1, 0.0, {"x": OptimizerSpec(("a", "b", "c"))})
    opts = StageOptimizers(w, 0.1, 0.0, {"x": OptimizerSpec(("a",)), "y": OptimizerSpec(("b",), lr_scale=0.5)})
    with pytest.raises(ValueError, match="needs"):
        opts.backward_and_step(w["a"].sum(), Precision("off", CPU), 0.0)
    opts.set_lr(0.2)
    assert [o.param_groups[0]["lr"] for o in opts.optimizers.values()] == [0.2, 0.1]


def _scaled_precision(scale):
    """fp16's loss-scaling path, exercised on the CPU: a CPU GradScaler in place of the CUDA one."""
    prec = Precision("off", CPU)
    prec.scaler = torch.amp.GradScaler("cpu", init_scale=scale, growth_interval=1000)
    return prec


def test_one_loss_scaler_serves_both_optimisers():
    """Scaled losses step both optimisers as unscaled ones would; an inf gradient skips only its optimiser."""
    def setup():
        w = {"enc": torch.nn.Parameter(torch.tensor([1.0, -1.0])), "dec": torch.nn.Parameter(torch.tensor([0.5]))}
        specs = {"seg": OptimizerSpec(("enc", "dec")), "kd": OptimizerSpec(("enc",), lr_scale=0.5, weight_decay=0.0)}
        return w, StageOptimizers(w, 0.1, 0.01, specs)

    def losses(w, bad=False):
        kd = (w["enc"] ** 2).sum() * (float("inf") if bad else 1.0)
        return {"kd": kd, "seg": (w["enc"] * w["dec"]).sum() + 3.0 * w["dec"].sum()}

    w_plain, opts = setup()
    opts.backward_and_step(losses(w_plain), Precision("off", CPU), grad_clip=0.0)
    w_scaled, opts = setup()
    prec = _scaled_precision(1024.0)
    opts.backward_and_step(losses(w_scaled), prec, grad_clip=0.0)
    for k in w_plain:
        torch.testing.assert_close(w_scaled[k].detach(), w_plain[k].detach())
    assert prec.scaler.get_scale() == 1024.0

    w_bad, opts = setup()
    prec = _scaled_precision(1024.0)
    opts.backward_and_step(losses(w_bad, bad=True), prec, grad_clip=1.0)
    seg_only, opts_ref = setup()  # what the segmentation optimiser alone does with the same gradients
    opts_ref.backward_and_step({"seg": losses(seg_only)["seg"]}, Precision("off", CPU), grad_clip=1.0)
    for k in w_bad:
        torch.testing.assert_close(w_bad[k].detach(), seg_only[k].detach())
    assert prec.scaler.get_scale() == 512.0  # backed off once for the whole iteration
    assert opts.optimizers["kd"].state == {} or all(int(s["step"]) == 0 for s in opts.optimizers["kd"].state.values())
