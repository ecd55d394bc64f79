"""Resuming a stage with other settings (another LoRA rank) is a clear error, never a broadcast."""

import pytest
import torch

from MedSeqFTLib.errors import InputError
from MedSeqFTLib.retention.precision import Precision
from MedSeqFTLib.retention.trainer import _load_checkpoint, _save_checkpoint

CPU = torch.device("cpu")
FP32 = Precision("off", CPU)


def test_checkpoint_with_other_shapes_is_refused(tmp_path):
    old = {"lora_A": torch.nn.Parameter(torch.randn(1, 4))}  # rank 1 would broadcast into rank 2
    opt = torch.optim.AdamW(old.values())
    _save_checkpoint(tmp_path, old, opt, step=3, device=CPU, precision=FP32)
    new = {"lora_A": torch.nn.Parameter(torch.zeros(2, 4))}
    with pytest.raises(InputError, match=r"other settings \(lora_A: shape \(1, 4\), now \(2, 4\)\)"):
        _load_checkpoint(tmp_path, new, torch.optim.AdamW(new.values()), CPU, FP32)
    assert torch.count_nonzero(new["lora_A"]) == 0


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80garbage" * 10)
    p = {"w": torch.nn.Parameter(torch.zeros(2))}
    with pytest.raises(InputError, match="unreadable stage checkpoint"):
        _load_checkpoint(tmp_path, p, torch.optim.AdamW(p.values()), CPU, FP32)
