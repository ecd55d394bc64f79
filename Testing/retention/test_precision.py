"""Precision on the CPU: always fp32 (no scaler, autocast a no-op); ``step`` clips the global
gradient norm and steps the optimizer."""

from __future__ import annotations

import pytest
import torch

from MedSeqFTLib.retention.precision import Precision

torch.set_num_threads(1)
CPU = torch.device("cpu")
MODES = ["auto", "off", "bf16", "fp16"]


@pytest.mark.parametrize("device", [CPU, "cpu"])
@pytest.mark.parametrize("mode", MODES)
def test_cpu_is_fp32_whatever_the_mode(mode, device):
    prec = Precision(mode, device)
    assert prec.name == "fp32" and prec.dtype is None and prec.scaler is None
    assert prec.state_dict() == {}
    prec.load_state_dict({"scale": 1024.0})  # nothing to load into; must not fail or change anything
    assert prec.scaler is None
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with prec.autocast():
        assert not torch.is_autocast_enabled("cpu")
        out = a @ b
        conv = torch.nn.functional.conv3d(torch.randn(1, 1, 4, 4, 4), torch.randn(2, 1, 3, 3, 3))
    assert out.dtype == torch.float32 and conv.dtype == torch.float32
    torch.testing.assert_close(out, a @ b, rtol=0, atol=0)


def test_cpu_autocast_would_change_the_dtype():
    """The check above can fail: real CPU autocast does turn a matmul into bf16."""
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.randn(4, 4) @ torch.randn(4, 4)).dtype == torch.bfloat16


def _params_with_grads():
    w1 = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    w2 = torch.nn.Parameter(torch.tensor([2.0]))
    unused = torch.nn.Parameter(torch.tensor([5.0]))  # no gradient: skipped by clipping and SGD
    loss = (w1 * torch.tensor([30.0, 0.0])).sum() + 40.0 * w2.sum()  # grads (30, 0) and (40): norm 50
    return [w1, w2, unused], loss


@pytest.mark.parametrize("clip,scale", [(5.0, 0.1), (100.0, 1.0), (0.0, 1.0)])
def test_step_clips_the_global_norm_then_steps(clip, scale):
    params, loss = _params_with_grads()
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)
    prec = Precision("auto", CPU)
    opt.zero_grad(set_to_none=True)
    prec.backward(loss)
    torch.testing.assert_close(params[0].grad, torch.tensor([30.0, 0.0]))
    prec.step(opt, params, clip)
    # SGD with lr 1: the update is minus the gradient the optimizer saw
    expected = [torch.tensor([30.0, 0.0]) * scale, torch.tensor([40.0]) * scale]
    for p, b, g in zip(params[:2], before[:2], expected):
        torch.testing.assert_close(b - p.detach(), g, rtol=1e-5, atol=1e-6)
    assert params[2].grad is None and torch.equal(params[2].detach(), before[2])
    total = torch.linalg.vector_norm(torch.cat([(b - p.detach()).reshape(-1) for p, b in zip(params, before)]))
    assert float(total) <= (clip if clip > 0 else 50.0) * (1 + 1e-5)
