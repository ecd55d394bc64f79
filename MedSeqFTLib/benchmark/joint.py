"""Joint multi-task training: every task at once, shared encoder + decoder, one head per task.

The upper bound that needs all datasets at the same time (not possible in the sequential
setting the product is for). The product has no such mode; this adds the smallest extension
on its pieces: M0's encoder and a new decoder from ``models.registry.build_segnet``, one
1x1x1 ``Conv3d`` head per task, the product's loss (``retention.losses.segmentation_loss``)
and training loop (``retention.trainer.run_stage``: checkpoints, resume, progress, cancel).

Budget: ``iterations x T`` steps (T tasks), step ``i`` takes one batch of task ``i mod T``
(round robin), so every task gets as many patches and head updates as in the per-task FFT
and the total compute equals the parallel FFT's. Paired with the other strategies: task t's
k-th turn takes batch k of the same stream FFT reads at its step k (the task's ``"task-data"``
seed), and task t's head starts from the same initialisation (``derive_seed(seed, task,
"init")``; the shared decoder from the first task's). Each task's model file is then the shared
encoder + shared decoder + its own head (``sequence.task_model.save_task_model``), which
``evaluate_workspace`` scores like any other model.
"""

from __future__ import annotations

import time

__all__ = ["train_joint_workspace"]


def train_joint_workspace(ws, reporter=None, device: str = "auto") -> list[str]:
    """Jointly train every task of ``ws`` (unless every task already has its model).

    Args:
        ws: an open ``Workspace`` with at least one task.
        reporter: progress / cancel.
        device: ``auto``, ``cpu``, ``cuda``...

    Returns:
        The tasks whose models were written by this call.

    Raises:
        InputError: no tasks, missing foundation or training data.
    """
    import torch
    from torch import nn

    from ..errors import InputError
    from ..jobs.reporter import NullReporter
    from ..models.foundation import load_foundation
    from ..models.registry import build_segnet
    from ..retention.batches import to_device
    from ..retention.losses import segmentation_loss
    from ..retention.trainer import derive_seed, run_stage
    from ..sequence.stage_setup import sampler_factory, stage_spec
    from ..sequence.runner import pending_tasks, resolve_device
    from ..sequence.task_model import file_sha256, save_task_model

    reporter = reporter or NullReporter()
    dev = resolve_device(device)
    cfg, stage_cfg = ws.config, ws.config.retention.fft
    names = ws.task_names()
    if not names:
        raise InputError(ws.root, "the workspace has no tasks")
    if not pending_tasks(ws):
        return []
    with ws.lock("benchmark"):
        t0 = time.perf_counter()
        for name in names:
            ws.set_task_status(name, "training")
        task_seeds = [int(ws.task_config(n).seed) for n in names]
        net, heads = None, nn.ModuleList()
        for name, seed in zip(names, task_seeds):  # each head as the runner initialises the task's network
            torch.manual_seed(derive_seed(seed, name, "init"))
            built = build_segnet(cfg.arch, len(ws.labels(name)), cfg.recipe.head_prior)
            net = built if net is None else net  # encoder (from M0) and the shared decoder: the first task's network
            heads.append(built.head)
        encoder0, _, _ = load_foundation(ws.foundation_path)
        net.encoder.load_state_dict(encoder0.state_dict(), strict=True)
        net.to(dev)
        heads.to(dev)
        samplers = []
        for name in names:
            cases = [case for _, case in ws.prepared(name, "train")]
            if not cases:
                raise InputError(ws.task_dir(name) / "task.json", "the task has no training cases")
            samplers.append(sampler_factory(ws.task_config(name), cases, int(stage_cfg.batch_size)))
        params = {f"encoder.{k}": p for k, p in net.encoder.named_parameters()}
        params.update({f"decoder.{k}": p for k, p in net.decoder.named_parameters()})
        params.update({f"heads.{k}": p for k, p in heads.named_parameters()})
        spec = stage_spec(cfg, ws.root / "joint" / "stages", "joint", "fft",
                          stage_cfg.replace(iterations=int(stage_cfg.iterations) * len(names)), dev)
        loss_fn = segmentation_loss()

        def make_step(start: int, streams):
            # task t's stream serves steps t, t + T, ...: at its k-th turn it gives batch k, the batch
            # FFT of that task draws at step k (same data seed and tag); a resumed run starts each
            # stream after the turns already taken
            n_tasks = len(names)
            sources = [streams(make, "task-batches", start=(start - t + n_tasks - 1) // n_tasks,
                               data_seed=derive_seed(seed, name, "task-data"))
                       for t, (make, name, seed) in enumerate(zip(samplers, names, task_seeds))]

            def step(i: int):
                t = i % n_tasks
                image, label = to_device(sources[t].next_batch(), dev)
                loss = loss_fn(heads[t](net.decoder(net.encoder(image))), label)
                return loss, {"seg": float(loss.detach())}

            return step

        log = run_stage(spec, params, make_step, reporter, dev, modules=(net, heads))
        total_s = round(time.perf_counter() - t0, 3)
        net.cpu()
        heads.cpu()
        sha = file_sha256(ws.foundation_path)
        for t, name in enumerate(names):
            record = {"task": name, "index": t, "strategy": "joint",
                      "lineage": {"from": "M0", "from_file": "models/foundation.safetensors", "from_sha256": sha},
                      # the one joint stage is listed once, under the first task, so times add up
                      "stages": {"fft": log.to_dict()} if t == 0 else {},
                      "joint_tasks": names, "n_classes": len(ws.labels(name)), "labels": ws.labels(name),
                      "device": str(dev), "patch_size": list(ws.task_config(name).preprocess.patch_size), "seed": int(cfg.seed),
                      "config": cfg.to_dict(), "time_s": total_s if t == 0 else 0.0}
            metadata = {"task": name, "index": t, "arch": cfg.arch.to_dict(), "lineage": "M0 (joint)"}
            save_task_model(ws.task_dir(name), net.encoder, net.decoder, heads[t], record, metadata)
            ws.set_task_status(name, "done")
    return names
