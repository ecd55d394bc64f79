"""run_stage with a RecipeConfig: the learning rate each step really used, gradient clipping
as the optimizer sees it, and a resumed stage drawing exactly the batches of an
uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import RecipeConfig
from MedSeqFTLib.data.imageio import Geometry
from MedSeqFTLib.data.preprocess import PreparedCase
from MedSeqFTLib.data.sampling import PatchSampler
from MedSeqFTLib.errors import Cancelled
from MedSeqFTLib.jobs.reporter import NullReporter
from MedSeqFTLib.retention.trainer import StageSpec, run_stage, stage_state

torch.set_num_threads(1)
CPU = torch.device("cpu")


def _spec(folder, iterations, recipe, lr=0.1, weight_decay=0.0, seed=3):
    return StageSpec(stage="fft", task="t", folder=folder, iterations=iterations, lr=lr, weight_decay=weight_decay,
                     checkpoint_every_s=1e9, seed=seed, recipe=recipe)


class CancelAt(NullReporter):
    """Raises Cancelled from ``check_cancel`` right after progress step ``n`` (1-based)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.last, self.seen = n, 0, []

    def progress(self, stage, task, step, total, losses=None, message=None):
        self.last = step
        self.seen.append(step)

    def check_cancel(self):
        if self.last == self.n:
            raise Cancelled("test cancel")


class RecordingAdamW(torch.optim.AdamW):
    """AdamW that records, right before each step, the lr and the global gradient norm it sees."""

    log: list = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        RecordingAdamW.log.append((self.param_groups[0]["lr"], norm))
        return super().step(closure)


@pytest.fixture
def recording_adamw(monkeypatch):
    RecordingAdamW.log = []
    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    return RecordingAdamW.log


def _expected_lr(recipe, lr, total):
    return [lr * recipe.lr_factor(i, total) for i in range(total)]


@pytest.mark.parametrize("recipe", [
    RecipeConfig(schedule="poly", grad_clip=0.0, amp="off"),
    RecipeConfig(schedule="cosine", warmup_fraction=0.3, grad_clip=0.0, amp="auto"),
    RecipeConfig(schedule="constant", grad_clip=0.0),
], ids=["poly", "cosine-warmup", "constant"])
def test_each_step_uses_lr_times_schedule_factor(tmp_path, recipe, recording_adamw):
    """Two independent readings: the lr the optimizer holds at step(), and the parameter update.

    With a constant gradient and no weight decay, AdamW's update of step i is exactly -lr_i
    per element (m_hat / sqrt(v_hat) = 1, up to eps), so the parameter trace gives the lr back.
    """
    total, lr = 10, 0.1
    w = torch.nn.Parameter(torch.zeros(3))
    trace = []

    def make_step(start, streams):
        def step(i):
            trace.append(w.detach().clone())
            return (w * torch.tensor([1.0, 2.0, -3.0])).sum(), {"loss": 0.0}
        return step

    log = run_stage(_spec(tmp_path / "s", total, recipe, lr=lr), {"w": w}, make_step, NullReporter(), CPU)
    trace.append(w.detach().clone())
    expected = _expected_lr(recipe, lr, total)
    seen_lr = [entry[0] for entry in recording_adamw]
    assert seen_lr == pytest.approx(expected, rel=1e-12)
    updates = [(b - a) for a, b in zip(trace, trace[1:])]
    signs = torch.tensor([-1.0, -1.0, 1.0])  # the update opposes the gradient's sign
    for i, u in enumerate(updates):
        torch.testing.assert_close(u, signs * expected[i], rtol=1e-5, atol=1e-9)
    assert log.extra["schedule"] == recipe.schedule and log.extra["precision"] == "fp32"
    if recipe.schedule != "constant":
        assert len(set(round(v, 12) for v in expected)) > 3  # the schedule really varies


def _two_param_stage(tmp_path, grad_clip, iterations=1, cancel_at=None):
    """w1, w2 with gradients 300 and 400 (global norm 500) on every step."""
    w1 = torch.nn.Parameter(torch.tensor([1.0]))
    w2 = torch.nn.Parameter(torch.tensor([-2.0]))

    def make_step(start, streams):
        def step(i):
            return 300.0 * w1.sum() + 400.0 * w2.sum(), {"loss": 0.0}
        return step

    recipe = RecipeConfig(schedule="constant", grad_clip=grad_clip)
    spec = _spec(tmp_path / f"clip{grad_clip}", iterations, recipe, lr=0.01)
    reporter = CancelAt(cancel_at) if cancel_at else NullReporter()
    return spec, (lambda: run_stage(spec, {"w1": w1, "w2": w2}, make_step, reporter, CPU))


@pytest.mark.parametrize("clip", [5.0, 0.5])
def test_grad_clip_bounds_the_norm_the_optimizer_sees(tmp_path, clip, recording_adamw):
    _, run = _two_param_stage(tmp_path, clip, iterations=3)
    run()
    norms = [entry[1] for entry in recording_adamw]
    assert len(norms) == 3
    assert all(n <= clip * (1 + 1e-5) for n in norms)
    assert norms == pytest.approx([clip] * 3, rel=1e-5)  # clipped down to the bound, not below it


def test_grad_clip_zero_leaves_the_gradient_alone(tmp_path, recording_adamw):
    _, run = _two_param_stage(tmp_path, 0.0, iterations=2)
    run()
    assert [entry[1] for entry in recording_adamw] == pytest.approx([500.0, 500.0], rel=1e-6)


@pytest.mark.parametrize("clip,expected_grad", [(5.0, (3.0, 4.0)), (0.0, (300.0, 400.0))])
def test_clipping_is_global_in_the_checkpointed_optimizer_state(tmp_path, clip, expected_grad):
    """After one step AdamW keeps exp_avg = (1 - beta1) * g and exp_avg_sq = (1 - beta2) * g^2 of the
    gradient it stepped with: the saved state shows the clipped gradient scaled as a whole
    (300, 400) -> (3, 4), not per tensor (5, 5)."""
    spec, run = _two_param_stage(tmp_path, clip, iterations=4, cancel_at=1)
    with pytest.raises(Cancelled):
        run()
    assert stage_state(spec.folder)["step"] == 1
    ckpt = torch.load(spec.folder / "checkpoint.pt", weights_only=True)
    state = ckpt["optimizer"]["state"]
    for k, g in enumerate(expected_grad):
        torch.testing.assert_close(state[k]["exp_avg"], torch.tensor([0.1 * g]), rtol=1e-5, atol=0)
        torch.testing.assert_close(state[k]["exp_avg_sq"], torch.tensor([0.001 * g * g]), rtol=1e-5, atol=0)


# --- resume with an indexed source -------------------------------------------------------------

GEO = Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), (16, 16, 16))


def _cases():
    rng = np.random.default_rng(0)
    out = []
    for i in range(2):
        image = rng.normal(size=(1, 16, 16, 16)).astype(np.float32)
        label = np.zeros((1, 16, 16, 16), np.uint8)
        label[0, 4 + i:8 + i, 5:9, 6:10] = 1
        out.append(PreparedCase(image, label, GEO, np.eye(4)))
    return out


def _resumable_stage(folder, total, reporter, record):
    cases = _cases()
    w = torch.nn.Parameter(torch.zeros(2))

    def factory(seed):
        return PatchSampler(cases, (8, 8, 8), batch_size=2, pos_fraction=0.5, seed=seed)

    def make_step(start, streams):
        sampler = streams(factory, "task-batches")

        def step(i):
            batch = sampler.next_batch()
            record.append((i, batch["image"].clone(), batch["label"].clone()))
            target = torch.stack([batch["image"].mean(), batch["label"].float().mean()])
            return ((w - target) ** 2).sum(), {"loss": 0.0}
        return step

    recipe = RecipeConfig(schedule="poly", grad_clip=1.0)
    spec = StageSpec(stage="fft", task="t", folder=folder, iterations=total, lr=0.05, weight_decay=1e-3,
                     checkpoint_every_s=1e9, seed=11, recipe=recipe)
    return w, (lambda: run_stage(spec, {"w": w}, make_step, reporter, CPU))


def test_resumed_stage_draws_the_batches_of_an_uninterrupted_run(tmp_path):
    total = 6
    straight = []
    w_straight, run = _resumable_stage(tmp_path / "straight", total, NullReporter(), straight)
    run()

    first, second = [], []
    _, run = _resumable_stage(tmp_path / "cut", total, CancelAt(3), first)
    with pytest.raises(Cancelled):
        run()
    assert stage_state(tmp_path / "cut")["step"] == 3
    w_resumed, run = _resumable_stage(tmp_path / "cut", total, NullReporter(), second)  # a fresh process, as after a restart
    log = run()

    assert [r[0] for r in straight] == list(range(total))
    assert [r[0] for r in first] == [0, 1, 2] and [r[0] for r in second] == [3, 4, 5]
    for a, b in zip(straight, first + second):
        assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]), f"batch {a[0]} differs after the resume"
    # the comparison means something: the batches differ from step to step
    assert not torch.equal(straight[3][1], straight[0][1]) and not torch.equal(straight[4][1], straight[3][1])
    # and the trained tensors end where the uninterrupted run ended (schedule, optimizer state resumed)
    assert log.runs == 2
    torch.testing.assert_close(w_resumed.detach(), w_straight.detach(), rtol=1e-6, atol=1e-7)
