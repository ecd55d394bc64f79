"""Paired streams: for one seed, every benchmark strategy trains each task on the identical sequence
of task patches and starts the task's head (and deep-supervision heads) from the identical
initialisation, so a difference between two strategies is the method, not the draw.

Every strategy is trained here exactly as ``benchmark.run.run_unit`` trains it (product
workspaces from ``benchmark.workspaces.open_or_create`` with ``strategies.configure``; the runner,
the PEFT baselines or joint training), on 2 tiny phantom tasks, without the evaluation. Two
recording hooks watch what the training really consumes: the batch streams the stages open
(``retention.trainer._Streams``) and the parameters each training stage starts from
(``run_stage``, wherever it is imported).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from MedSeqFTLib.retention.trainer import derive_seed

SEED = 0
STEPS = 3  # the tiny preset's iterations: every step of every first stage is compared
STRATEGIES = ("tfs", "fft", "lora_r2", "head_only", "seq_ft", "seq_random", "seq_mds", "seq_kg", "medseqft", "seq_ewc", "seq_lwf",
              "joint")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """``{strategy: {"batches": {task: [(image, label), ...]}, "heads": {task: {name: tensor}}}}``."""
    import MedSeqFTLib.retention.fft as fft_module
    import MedSeqFTLib.retention.kd_fft as kd_module
    import MedSeqFTLib.retention.trainer as trainer
    from MedSeqFTLib.benchmark.joint import train_joint_workspace
    from MedSeqFTLib.benchmark.peft_baselines import train_peft_workspace
    from MedSeqFTLib.benchmark.settings import bench_preset
    from MedSeqFTLib.benchmark.strategies import STRATEGIES as TABLE, configure, workspace_overrides
    from MedSeqFTLib.benchmark.workspaces import open_or_create, random_foundation
    from MedSeqFTLib.sequence.runner import refine_workspace

    from tiny_inputs import make_tiny_inputs

    root = tmp_path_factory.mktemp("paired")
    m0, datasets = make_tiny_inputs(root)
    settings = bench_preset("tiny")

    out, current = {}, {}
    seed_to_task = {}  # the task-data seed of each task name (filled once the names are known)

    def first_stage(spec) -> bool:
        return spec.stage in ("fft", "kd_fft")  # the stage that trains the task's head on task patches

    real_streams = trainer._Streams.__call__

    def recording_streams(self, factory, tag, start=None, data_seed=None):
        stream = real_streams(self, factory, tag, start, data_seed)
        if tag != "task-batches" or not first_stage(self.spec):
            return stream
        seed = data_seed if data_seed is not None else self.spec.data_seed
        task = seed_to_task.get(seed, f"unpaired stream of {self.spec.task} (data seed {seed})")
        log = current["batches"].setdefault(task, [])
        real_next = stream.next_batch

        def next_batch():
            batch = real_next()
            log.append((torch.as_tensor(batch["image"]).clone(), torch.as_tensor(batch["label"]).clone()))
            return batch

        stream.next_batch = next_batch
        return stream

    def recording_run_stage(real):
        def run_stage(spec, params, *args, **kwargs):
            if first_stage(spec):
                heads = {k: p.detach().clone() for k, p in params.items() if "head" in k}
                if spec.task == "joint":  # one stage for every task: heads.<t>.* is task t's head
                    for t, name in enumerate(names):
                        current["heads"][name] = {"head." + k.split(".", 2)[2]: v for k, v in heads.items()
                                                  if k.startswith(f"heads.{t}.")}
                else:
                    current["heads"][spec.task] = heads
            return real(spec, params, *args, **kwargs)
        return run_stage

    mp = pytest.MonkeyPatch()
    mp.setattr(trainer._Streams, "__call__", recording_streams)
    for module in (trainer, fft_module, kd_module):
        mp.setattr(module, "run_stage", recording_run_stage(module.run_stage))
    names = []
    try:
        for name in STRATEGIES:
            strategy = TABLE[name]
            current.clear()
            current.update({"batches": {}, "heads": {}})
            cfg_fn = lambda cfg, s=strategy: configure(cfg, s, settings, SEED)  # noqa: E731
            folder = root / "runs" / name
            over = workspace_overrides(settings)
            if strategy.kind in ("sequential", "joint"):
                ws = open_or_create(folder / "ws", m0, datasets, cfg_fn, settings, None, over)
                names[:] = ws.task_names()
                seed_to_task.update({derive_seed(SEED, n, "task-data"): n for n in names})
                if strategy.kind == "joint":
                    train_joint_workspace(ws, device="cpu")
                elif strategy.regulariser is not None:
                    from MedSeqFTLib.benchmark.cl_baselines import train_cl_workspace

                    train_cl_workspace(ws, strategy.regulariser, settings, device="cpu")
                else:
                    refine_workspace(ws, device="cpu")
            else:
                foundation = random_foundation(folder / "random.safetensors", m0, SEED) if strategy.random_foundation else m0
                for i, dataset in enumerate(datasets):
                    ws = open_or_create(folder / f"ws_{i + 1}", foundation, [dataset], cfg_fn, settings, None, over)
                    seed_to_task.update({derive_seed(SEED, n, "task-data"): n for n in ws.task_names()})
                    if strategy.kind == "parallel":
                        refine_workspace(ws, device="cpu")
                    else:
                        train_peft_workspace(ws, strategy.peft, strategy.rank, device="cpu")
            out[name] = {"batches": dict(current["batches"]), "heads": dict(current["heads"])}
    finally:
        mp.undo()
    return out


def test_every_strategy_draws_the_same_task_patches(recorded):
    ref = recorded["fft"]["batches"]
    assert len(ref) == 2 and all(len(v) == STEPS for v in ref.values())
    for name, rec in recorded.items():
        assert set(rec["batches"]) == set(ref), f"{name}: streams of {sorted(rec['batches'])}"
        for task, batches in rec["batches"].items():
            assert len(batches) == STEPS, (name, task)
            for step, ((img, lab), (img0, lab0)) in enumerate(zip(batches, ref[task])):
                assert torch.equal(img, img0) and torch.equal(lab, lab0), f"{name}, {task}, step {step}: other patches than FFT"
    # the comparison means something: the patches differ from step to step and from task to task
    tasks = sorted(ref)
    assert not torch.equal(ref[tasks[0]][0][0], ref[tasks[0]][1][0])
    assert not torch.equal(ref[tasks[0]][0][0], ref[tasks[1]][0][0])


def test_every_strategy_starts_each_task_head_alike(recorded):
    ref = recorded["fft"]["heads"]
    assert len(ref) == 2
    for task, heads in ref.items():
        assert {"head.weight", "head.bias"} <= set(heads)
        assert any(k.startswith("deep_supervision.") for k in heads)  # the small U-Net's auxiliary heads
    for name, rec in recorded.items():
        assert set(rec["heads"]) == set(ref), name
        for task, heads in rec["heads"].items():
            assert heads, (name, task)
            for key, value in heads.items():  # joint has no deep supervision: it compares its task heads
                assert torch.equal(value, ref[task][key]), f"{name}, {task}: {key} starts elsewhere than in FFT"
    first, second = sorted(ref)
    assert not torch.equal(ref[first]["head.weight"], ref[second]["head.weight"])  # per-task initialisations
