"""The training loop under torch.distributed (Gloo, 2 CPU processes): what DDP promises, checked exactly.

* two ranks with batch b each give the parameters of one process trained on the union of their
  batches (batch 2b), step by step (float tolerance: the mean over 2b samples is summed in
  another order than the mean of two means);
* the ranks' parameters are identical after every step;
* rank 1 writes nothing (an audit hook records every file it opens for writing or renames);
* a cancel on rank 0 stops both ranks at the same step and a resume with 2 ranks ends where an
  uninterrupted 2-rank run ends (bit for bit), also with two optimisers (KD-FFT's layout);
* a checkpoint written by another number of processes is refused.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.multiprocessing as mp  # noqa: E402

STEPS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Source:
    """Indexed toy source: batch ``i`` = (image, target) drawn from ``(seed, i)``; ``union`` joins 2i, 2i+1."""

    def __init__(self, seed: int, union: bool = False) -> None:
        self.seed, self.union = seed, union

    def _one(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        return {"image": torch.randn(1, 2, 4, 4, 4, generator=g), "label": torch.randn(1, 3, 4, 4, 4, generator=g)}

    def batch_at(self, i: int) -> dict:
        if not self.union:
            return self._one(i)
        a, b = self._one(2 * i), self._one(2 * i + 1)
        return {k: torch.cat([a[k], b[k]]) for k in a}


class _CancelAt:
    """NullReporter that asks for a cancel after step ``at`` (rank 0 only, as the job's reporter would)."""

    def __init__(self, at):
        from MedSeqFTLib.jobs.reporter import NullReporter

        self.inner, self.at = NullReporter(), at

    def progress(self, stage, task, step, total, losses=None, message=None):
        if self.at is not None and step == self.at:
            self.inner.request_cancel()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _train(folder: Path, union: bool, cancel_at, two_optimisers: bool, trace: list):
    from MedSeqFTLib.errors import Cancelled
    from MedSeqFTLib.retention.trainer import OptimizerSpec, StageSpec, run_stage

    torch.manual_seed(123)
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 1))
    params = dict(net.named_parameters())
    optimizers = None
    if two_optimisers:  # "b" steps only the first conv with its own loss, like KD-FFT's encoder optimiser
        optimizers = {"a": OptimizerSpec(tuple(params)), "b": OptimizerSpec(("0.weight", "0.bias"), lr_scale=0.5)}
    spec = StageSpec(stage="fft", task="t", folder=folder, iterations=STEPS, lr=1e-2, weight_decay=1e-4,
                     checkpoint_every_s=3600.0, seed=7)

    def make_step(start, streams):
        stream = streams(lambda seed: _Source(seed, union), "task-batches")

        def step(_):
            trace.append([float(p.detach().double().sum()) for p in params.values()])
            batch = stream.next_batch()
            out = net(batch["image"])
            loss = torch.nn.functional.mse_loss(out, batch["label"])
            if two_optimisers:
                kd = (net[0](batch["image"]) ** 2).mean()
                return {"a": loss, "b": kd}, {"seg": float(loss.detach())}
            return loss, {"seg": float(loss.detach())}

        return step

    try:
        run_stage(spec, params, make_step, _CancelAt(cancel_at), torch.device("cpu"), modules=(net,),
                  optimizers=optimizers)
    except Cancelled:
        return None
    return {k: p.detach().clone() for k, p in params.items()}


def _worker(rank: int, world: int, port: int, folder: str, out: str, cancel_at, two_optimisers: bool):
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    writes = []
    stage_dir = str(Path(folder).resolve())

    def audit(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                if os.fspath(args[0]).__str__().startswith(stage_dir):
                    writes.append(str(args[0]))
        elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir") and str(args[0]).startswith(stage_dir):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(audit)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trace = []
        final = _train(Path(folder), False, cancel_at if rank == 0 else None, two_optimisers, trace)
        torch.save({"final": final, "trace": trace, "writes": writes}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _run_two(folder: Path, out: Path, cancel_at=None, two_optimisers=False) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(2, _free_port(), str(folder), str(out), cancel_at, two_optimisers), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)


def test_two_ranks_equal_one_process_on_the_union_batch(tmp_path):
    ranks = _run_two(tmp_path / "stage", tmp_path / "out")
    assert ranks[0]["trace"] == ranks[1]["trace"]  # identical replicas before every step
    for a, b in zip(ranks[0]["final"].values(), ranks[1]["final"].values()):
        assert torch.equal(a, b)
    assert ranks[1]["writes"] == []
    assert any("result.safetensors" in w for w in ranks[0]["writes"])
    assert json.loads((tmp_path / "stage" / "state.json").read_text())["done"] is True

    single = _train(tmp_path / "single", True, None, False, [])
    for k, p in single.items():
        torch.testing.assert_close(ranks[0]["final"][k], p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("two_optimisers", [False, True])
def test_cancel_and_resume_under_two_ranks_is_exact(tmp_path, two_optimisers):
    whole = _run_two(tmp_path / "whole", tmp_path / "o1", two_optimisers=two_optimisers)
    stopped = _run_two(tmp_path / "cut", tmp_path / "o2", cancel_at=3, two_optimisers=two_optimisers)
    assert stopped[0]["final"] is None and stopped[1]["final"] is None  # both ranks stopped
    assert len(stopped[0]["trace"]) == len(stopped[1]["trace"]) == 3
    assert (tmp_path / "cut" / "checkpoint.pt").is_file() and stopped[1]["writes"] == []
    resumed = _run_two(tmp_path / "cut", tmp_path / "o3", two_optimisers=two_optimisers)
    for r in range(2):
        for k, p in whole[r]["final"].items():
            assert torch.equal(resumed[r]["final"][k], p), k
    if two_optimisers:  # the union property with several optimisers too
        single = _train(tmp_path / "single", True, None, True, [])
        for k, p in single.items():
            torch.testing.assert_close(whole[0]["final"][k], p, rtol=1e-5, atol=1e-6)


def test_checkpoint_of_another_world_size_is_refused(tmp_path):
    from MedSeqFTLib.errors import InputError

    stopped = _run_two(tmp_path / "cut", tmp_path / "o", cancel_at=2)
    assert stopped[0]["final"] is None
    with pytest.raises(InputError, match="written by 2 process"):
        _train(tmp_path / "cut", False, None, False, [])


def test_init_from_env_refuses_wrong_launches(monkeypatch):
    from MedSeqFTLib.errors import InputError
    from MedSeqFTLib.retention import distributed as ddp

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ddp.launched_by_torchrun()
    with pytest.raises(InputError, match="RANK"):
        ddp.init_from_env("cpu")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    with pytest.raises(InputError, match="cuda:1"):
        ddp.init_from_env("cuda:1")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            ddp.init_from_env("cuda")
    assert ddp.world_size() == 1 and ddp.is_main()
