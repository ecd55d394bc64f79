"""Refining an adapter task: train its own modules on its frozen base, check, save.

Called by the sequence runner for tasks added with ``--mode adapter``. Nothing outside the
task's folder is written, so every earlier task stays bitwise as it was, and tasks refined later
(which start from the latest kg_rft model, not from this task) cannot change it.
"""

from __future__ import annotations

import time

__all__ = ["refine_adapter_task", "build_task_net", "support_cases", "query_prior"]


def build_task_net(ws, name: str, cfg, task_adapter, base: dict):
    """The task's network on ``base`` with fresh modules (seeded from the task's init seed), CPU."""
    import torch

    from ..retention.trainer import derive_seed
    from .base import load_base
    from .surgery import build_adapter_net

    encoder_state, decoder_state = load_base(ws, base, f"task {name!r}")
    torch.manual_seed(derive_seed(cfg.seed, name, "init"))
    return build_adapter_net(cfg.arch, len(ws.labels(name)), task_adapter.method, encoder_state, decoder_state,
                             lora_rank=int(cfg.adapter.lora_rank), head_prior=float(cfg.recipe.head_prior))


def support_cases(ws, name: str, task_adapter) -> list:
    """The task's support cases (``PreparedCase``s with labels)."""
    return [case for _, case in ws.prepared(name, ids=task_adapter.support)]


def query_prior(net, support: list, images: list, cfg, device):
    """``QueryPrior`` from the support masks and the frozen features of ``images`` (preprocessed arrays)."""
    import numpy as np

    from .size_prior import target_proportions
    from .train import QueryPrior, query_features

    ac = cfg.adapter
    target = target_proportions([np.asarray(c.label) for c in support], net.n_classes)
    feats = query_features(net, images, cfg.preprocess.patch_size, device, int(ac.query_downsample),
                           float(cfg.recipe.sw_overlap))
    return QueryPrior(feats, target, float(ac.transductive_margin), float(ac.transductive_weight))


def refine_adapter_task(ws, index: int, name: str, reporter, dev) -> None:
    """Train, check and save adapter task ``name`` (number ``index`` in the sequence, 0-based).

    Raises:
        InputError: a missing base model, no support case, a method the backbone cannot take.
        errors.Cancelled: a cancel request (the stage checkpoint is kept; ``--resume`` continues).
    """
    from ..config import StageConfig
    from ..errors import InputError
    from ..sequence.stage_setup import sampler_factory, stage_spec
    from ..sequence.task_model import count_params
    from ..sequence.validation import check_model, decide_postprocessing
    from .config import TaskAdapter
    from .base import resolve_base
    from .files import save_adapter_model
    from .surgery import owned_state
    from .train import train_adapter

    record = ws.task(name)
    task_adapter = TaskAdapter.from_dict(record.get("adapter") or {}, where=ws.task_dir(name) / "task.json")
    cfg = ws.task_config(name)
    ac = cfg.adapter
    base = resolve_base(ws, name)
    net = build_task_net(ws, name, cfg, task_adapter, base)
    support = support_cases(ws, name, task_adapter)
    if not support:
        raise InputError(ws.task_dir(name) / "task.json", "the adapter task has no support case")
    ws.set_task_status(name, "training")
    t_task = time.perf_counter()
    reporter.log(f"refining {name} (task {index + 1} of {len(ws.task_names())}): {task_adapter.method} on "
                 f"{base['model']}, {len(support)} support case(s)", task=name)
    net.to(dev)
    prior, prior_info = None, None
    if task_adapter.transductive:
        queries = [case.image for _, case in ws.prepared(name, "test")]
        if queries:
            prior = query_prior(net, support, queries, cfg, dev)
            prior_info = {"queries": len(queries), "target": [round(float(t), 6) for t in prior.target],
                          "weight": prior.weight, "margin": prior.margin, "on": "the task's test images (labels unused)"}
        else:
            reporter.log(f"{name}: no test images to adapt on; trained without the size prior", level="warning", task=name)
    stage_cfg = StageConfig(int(ac.iterations), ac.lr_for(task_adapter.method), int(ac.batch_size), float(ac.weight_decay))
    spec = stage_spec(cfg, ws.task_dir(name) / "stages" / "adapter", name, "adapter", stage_cfg, dev, "task-data")
    log = train_adapter(net, spec, sampler_factory(cfg, support, int(ac.batch_size)), reporter, dev, prior)
    net.eval()
    postprocess = decide_postprocessing(ws, name, net, dev, cfg)
    check = check_model(ws, name, net, dev, reporter, which=f"adapter ({task_adapter.method})",
                        keep_largest=postprocess["keep_largest"])
    owned = owned_state(net)
    rec = {
        "task": name, "index": index, "mode": "adapter", "strategy": f"adapter:{task_adapter.method}",
        "adapter": task_adapter.to_dict(), "base": base, "lineage": {"from": base["model"]},
        "stages": {"adapter": {**log.to_dict(), "lr": stage_cfg.lr, "transductive": prior_info}},
        "n_classes": net.n_classes, "labels": ws.labels(name), "device": str(dev),
        "patch_size": list(cfg.preprocess.patch_size), "seed": int(cfg.seed), "config": cfg.to_dict(),
        "postprocess": postprocess, "validation": {"M_t": check} if check else {},
        "failed_classes": (check or {}).get("failed", []),
        "n_params": {"trainable": int(sum(t.numel() for t in owned.values())), "total": count_params(net)},
        "time_s": round(time.perf_counter() - t_task, 3),
    }
    save_adapter_model(ws.task_dir(name), owned, rec, {"task": name, "index": index, "method": task_adapter.method,
                                                        "arch": cfg.arch.to_dict(), "base": base["model"]})
    ws.set_task_status(name, "done")
    for path in list((ws.task_dir(name) / "stages").glob("*/*.safetensors")):
        path.unlink(missing_ok=True)
    reporter.log(f"{name}: adapter ({rec['n_params']['trainable']} trained parameters) written", task=name)
