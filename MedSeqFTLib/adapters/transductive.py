"""``predict --transductive``: adapt a finished adapter task on the volumes being segmented.

FSEFT's transductive inference: starting from the task's trained modules, ``adapter.transductive_steps``
AdamW steps of the support segmentation loss plus the size-prior penalty on the frozen features
of the given (unlabelled) volumes, then prediction. The adapted modules live in memory only:
the workspace is not changed, and the next plain ``predict`` gives the task's usual result.

Cost: one sliding-window pass of the frozen base per volume (its features are cached, pooled by
``adapter.query_downsample``), then ``transductive_steps`` training steps on support patches plus
one adapter + classifier pass over a cached map per step (docs/fewshot.md has measured times).
"""

from __future__ import annotations

__all__ = ["adapt_for_volumes"]


def adapt_for_volumes(ws, name: str, model, arrays: list, device, reporter=None) -> dict:
    """Adapt ``model`` (the adapter task's ``SegNet``, on ``device``) in place on ``arrays``.

    Args:
        ws: the ``Workspace``.
        name: a finished adapter task with a black-box method.
        model: ``load_task_model(ws, name)`` moved to ``device``.
        arrays: the preprocessed (C, X, Y, Z) images to segment.

    Returns:
        ``{"before", "after", "target", "steps"}``: per volume, the predicted proportion of each
        foreground class before and after adaptation, and the support's prior.

    Raises:
        InputError: not an adapter task, or a method whose features are not frozen.
    """
    from ..errors import InputError
    from ..inference.loader import read_record
    from ..retention.trainer import derive_seed
    from ..sequence.stage_setup import sampler_factory
    from .config import BLACK_BOX, TaskAdapter
    from .refine import query_prior, support_cases
    from .train import adapt_on_queries

    record = read_record(ws, name)
    if record.get("mode") != "adapter":
        raise InputError("--transductive", f"task {name!r} is not an adapter task; transductive inference adapts an "
                                           "adapter task's modules (add one with --mode adapter)")
    task_adapter = TaskAdapter.from_dict(record["adapter"])
    if task_adapter.method not in BLACK_BOX:
        raise InputError("--transductive", f"task {name!r} uses {task_adapter.method}; transductive inference needs a "
                                           f"black-box method ({', '.join(BLACK_BOX)}) whose input features are frozen")
    cfg = ws.task_config(name)
    support = support_cases(ws, name, task_adapter)
    prior = query_prior(model, support, arrays, cfg, device)
    sampler = sampler_factory(cfg, support, int(cfg.adapter.batch_size))(derive_seed(cfg.seed, name, "transductive"))
    steps = int(cfg.adapter.transductive_steps)
    out = adapt_on_queries(model, sampler, prior, steps, cfg.adapter.lr_for(task_adapter.method),
                           float(cfg.adapter.weight_decay), device, reporter=reporter, task=name)
    out["steps"] = steps
    return out
