"""Parallel PEFT baselines: M0's encoder frozen, only LoRA (or nothing) in it, decoder + head trained.

The product has no such mode, so this is the smallest extension on top of its pieces: the
network comes from ``sequence.task_model.start_network`` (M0's encoder), LoRA from
``retention.merge.add_lora`` (the layers ``retention.lora_targets`` selects, the same injection
K&G RFT uses: every Linear of SwinUNETR, every Conv3d of the small U-Net), and the
training loop is the product's FFT stage (``retention.fft.train_fft`` trains exactly the
parameters that require a gradient: LoRA + decoder + head, or decoder + head). The LoRA is
then merged (``retention.merge.merge_lora``) and the model is written with the product's
``sequence.task_model.save_task_model``, so ``evaluate_workspace`` scores it like any other
task model. Stage checkpoints make it resumable like the runner.
"""

from __future__ import annotations

import time

__all__ = ["train_peft_workspace"]


def _stage_spec(ws, cfg, name: str, stage_cfg, dev):
    from ..sequence.stage_setup import stage_spec

    # stage "fft" keeps the event protocol's stage names; the folder says what it really is;
    # the task's FFT data stream, so the PEFT baselines see the same patches as FFT
    return stage_spec(cfg, ws.task_dir(name) / "stages" / "peft", name, "fft", stage_cfg, dev, "task-data")


def train_peft_workspace(ws, mode: str, rank: int = 0, reporter=None, device: str = "auto") -> list[str]:
    """Train every unfinished task of ``ws`` from M0 with a frozen encoder.

    Args:
        ws: an open ``Workspace`` (usually with one task: the parallel setting).
        mode: ``"lora"`` (LoRA rank ``rank`` in the frozen encoder, alpha = rank) or ``"head"``
            (no adapter; decoder + head only).
        rank: LoRA rank for ``mode == "lora"``.
        reporter: progress / cancel.
        device: ``auto``, ``cpu``, ``cuda``...

    Returns:
        The tasks trained by this call.

    Raises:
        ValueError: unknown ``mode`` or a rank < 1 with ``mode == "lora"``.
        InputError: missing foundation or training data.
    """
    import torch

    from ..sequence.stage_setup import sampler_factory
    from ..errors import InputError
    from ..jobs.reporter import NullReporter
    from ..models.registry import lora_target_kinds
    from ..retention.fft import train_fft
    from ..retention.merge import add_lora, lora_parameters, merge_lora
    from ..retention.trainer import derive_seed
    from ..sequence.runner import pending_tasks, resolve_device
    from ..sequence.task_model import save_task_model, start_network

    if mode not in ("lora", "head") or (mode == "lora" and int(rank) < 1):
        raise ValueError(f"mode must be 'lora' (rank >= 1) or 'head', got {mode!r} rank {rank}")
    reporter = reporter or NullReporter()
    dev = resolve_device(device)
    trained = []
    with ws.lock("benchmark"):
        for name in pending_tasks(ws):
            t0 = time.perf_counter()
            cfg = ws.task_config(name)
            pp, stage_cfg = cfg.preprocess, cfg.retention.fft
            ws.set_task_status(name, "training")
            net, lineage = start_network(ws, cfg, 0, name, [])  # every parallel task starts from M0
            if mode == "lora":
                torch.manual_seed(derive_seed(cfg.seed, name, "lora-init"))
                kinds = lora_target_kinds(cfg.arch, cfg.retention.lora_targets)
                add_lora(net.encoder, int(rank), float(rank), kinds=kinds)  # freezes every non-LoRA encoder weight
                n_adapter = int(sum(p.numel() for p in lora_parameters(net.encoder).values()))
            else:
                for p in net.encoder.parameters():
                    p.requires_grad_(False)
                n_adapter = 0
            net.to(dev)
            cases = [case for _, case in ws.prepared(name, "train")]
            if not cases:
                raise InputError(ws.task_dir(name) / "task.json", "the task has no training cases")
            factory = sampler_factory(cfg, cases, int(stage_cfg.batch_size))
            n_trainable = int(sum(p.numel() for p in net.parameters() if p.requires_grad))
            log = train_fft(net, _stage_spec(ws, cfg, name, stage_cfg, dev), factory, reporter, dev,
                            deep_supervision=cfg.recipe.deep_supervision)
            encoder_t = merge_lora(net.encoder) if mode == "lora" else net.encoder
            strategy = f"peft_lora_r{rank}" if mode == "lora" else "peft_head_only"
            stages = {"fft": {**log.to_dict(), "trainable_params": n_trainable, "adapter_params": n_adapter}}
            record = {"task": name, "index": ws.task_names().index(name), "strategy": strategy,
                      "lineage": lineage,
                      "stages": stages, "n_classes": len(ws.labels(name)), "labels": ws.labels(name),
                      "device": str(dev), "patch_size": list(pp.patch_size), "seed": int(cfg.seed),
                      "config": cfg.to_dict(), "time_s": round(time.perf_counter() - t0, 3)}
            metadata = {"task": name, "index": record["index"], "arch": cfg.arch.to_dict(), "lineage": "M0"}
            save_task_model(ws.task_dir(name), encoder_t.cpu(), net.decoder.cpu(), net.head.cpu(), record, metadata)
            ws.set_task_status(name, "done")
            trained.append(name)
    return trained
