"""Sequential continual-learning baselines on the product's trainer: EWC and LwF (as in Lifelong-nnUNet).

Both are Seq-FT (every task fine-tuned from M_{t-1}: encoder and decoder from the previous task's
model, a new seeded head) plus one regulariser added to the Dice + CE loss of task t > 1:

* ``ewc``: ``retention.ewc.ewc_penalty`` with the diagonal empirical Fisher of every earlier task's
  model on its own training patches (``ewc_fisher.safetensors`` in the task folder, computed once
  after the task is trained, resumable), lambda = ``BenchmarkSettings.ewc_lambda``;
* ``lwf``: ``retention.lwf.distillation_kl`` between the frozen old model (E_{t-1} with task j's
  decoder + head) and the student (E with task j's frozen decoder + head) on task t's patches,
  for every earlier task j, weight ``lwf_weight``, temperature ``lwf_temperature``.

Task 1 is plain FFT (identical to Seq-FT's). Everything else is the product's: the stage loop
(``retention.trainer.run_stage``: schedule, clipping, AMP, checkpoints, cancel), the samplers and
stage specs (``sequence.stage_setup``; the ``"task-data"`` tag, so the task patches and the head
initialisation are those of every other strategy for the same seed), post-processing decision,
validation and the task model files (``sequence.task_model``), so ``evaluate_workspace`` scores it
like any other workspace.
"""

from __future__ import annotations

import copy
import time

__all__ = ["train_cl_workspace", "REGULARISERS", "FISHER_FILE"]

REGULARISERS = ("ewc", "lwf")
FISHER_FILE = "ewc_fisher.safetensors"


def _fisher_of(ws, name: str, settings, dev) -> tuple[dict, dict]:
    """``(fisher, anchor)`` of finished task ``name``'s model: loaded, or estimated and written once."""
    import torch

    from ..inference.loader import load_task_model
    from ..models.checkpoint import load_safetensors, save_safetensors
    from ..retention.ewc import estimate_fisher
    from ..retention.losses import segmentation_loss
    from ..retention.trainer import derive_seed
    from ..sequence.stage_setup import sampler_factory

    path = ws.task_dir(name) / FISHER_FILE
    if not path.is_file():
        cfg = ws.task_config(name)
        model = load_task_model(ws, name).to(dev)
        cases = [case for _, case in ws.prepared(name, "train")]
        sampler = sampler_factory(cfg, cases, 1, augment=False)(derive_seed(cfg.seed, name, "ewc-fisher"))

        def batches():
            for i in range(int(settings.ewc_fisher_batches)):
                b = sampler.batch_at(i)
                yield torch.as_tensor(b["image"]).float(), torch.as_tensor(b["label"]).long()

        fisher = estimate_fisher(model, batches(), segmentation_loss(), dev, prefix="encoder.")
        tensors = {f"fisher.{k}": v for k, v in fisher.items()}
        tensors.update({f"anchor.{k}": p.detach().cpu() for k, p in model.named_parameters() if k in fisher})
        save_safetensors(path, tensors, {"kind": "ewc_fisher", "task": name,
                                         "batches": int(settings.ewc_fisher_batches)})
    tensors, _ = load_safetensors(path)
    fisher = {k[len("fisher."):]: v for k, v in tensors.items() if k.startswith("fisher.")}
    anchor = {k[len("anchor."):]: v for k, v in tensors.items() if k.startswith("anchor.")}
    return fisher, anchor


def _train_task(ws, net, method: str, index: int, earlier: list, name: str, cfg, settings, reporter, dev):
    """One stage (``fft`` events, folder ``stages/<method>``): Dice + CE (+ the regulariser from task 2 on)."""
    import torch

    from ..inference.loader import load_task_model
    from ..retention.batches import to_device
    from ..retention.deep_supervision import aux_head_seed, make_deep_supervision, segmentation_step
    from ..retention.ewc import ewc_penalty
    from ..retention.losses import segmentation_loss
    from ..retention.lwf import distillation_kl
    from ..retention.trainer import run_stage
    from ..sequence.stage_setup import sampler_factory, stage_spec

    stage_cfg = cfg.retention.fft
    spec = stage_spec(cfg, ws.task_dir(name) / "stages" / method, name, "fft", stage_cfg, dev, "task-data")
    cases = [case for _, case in ws.prepared(name, "train")]
    factory = sampler_factory(cfg, cases, int(stage_cfg.batch_size))
    loss_fn = segmentation_loss()
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    ds = make_deep_supervision(net, cfg.recipe.deep_supervision, seed=aux_head_seed(spec),
                               head_prior=getattr(spec.recipe, "head_prior", 0.01))
    if ds is not None:
        ds.to(dev)
        params.update({f"deep_supervision.{n}": p for n, p in ds.named_parameters()})
    regularise = index > 0
    fishers, old_heads, teacher = [], [], None
    fisher_s = 0.0
    if regularise and method == "ewc":
        t0 = time.perf_counter()
        fishers = [_fisher_of(ws, j, settings, dev) for j in earlier]
        fisher_s = time.perf_counter() - t0  # estimated once per task (loaded afterwards): counted as training time
    elif regularise and method == "lwf":
        for j in earlier:  # E_{t-1} with task j's decoder + head: the old model's answer for task j
            old = load_task_model(ws, j, encoder_from=earlier[-1]).to(dev).eval()
            for p in old.parameters():
                p.requires_grad_(False)
            old_heads.append(old)
        teacher = old_heads[0].encoder
    encoder_params = {f"encoder.{n}": p for n, p in net.encoder.named_parameters()}

    def make_step(start: int, streams):
        sampler = streams(factory, "task-batches")

        def step(_: int):
            image, label = to_device(sampler.next_batch(), dev)
            net.check_input(image)
            feats = net.encoder(image)
            seg = segmentation_step(net, feats, label, loss_fn, ds)
            losses = {"seg": float(seg.detach())}
            loss = seg
            if fishers:
                reg = ewc_penalty(encoder_params, fishers, float(settings.ewc_lambda))
                losses["ewc"] = float(reg.detach())
                loss = loss + reg
            elif old_heads:
                with torch.no_grad():
                    t_feats = teacher(image)
                reg = sum(distillation_kl(old.head(old.decoder(feats)), old.head(old.decoder(t_feats)),
                                          float(settings.lwf_temperature)) for old in old_heads) / len(old_heads)
                losses["lwf"] = float(reg.detach())
                loss = loss + float(settings.lwf_weight) * reg
            return loss, losses

        return step

    log = run_stage(spec, params, make_step, reporter, dev, modules=(net,) + ((ds,) if ds is not None else ()))
    return log, fisher_s


def train_cl_workspace(ws, method: str, settings, reporter=None, device: str = "auto") -> list[str]:
    """Train every unfinished task of ``ws`` in order with Seq-FT + ``method`` (``"ewc"`` or ``"lwf"``).

    Args:
        ws: an open ``Workspace`` with the benchmark's tasks.
        method: ``"ewc"`` or ``"lwf"``.
        settings: ``BenchmarkSettings`` (``ewc_lambda``, ``ewc_fisher_batches``, ``lwf_weight``,
            ``lwf_temperature``).
        reporter: progress / cancel.
        device: ``auto``, ``cpu``, ``cuda``...

    Returns:
        The tasks trained by this call.

    Raises:
        ValueError: unknown ``method``.
        InputError: missing foundation or training data.
        errors.Cancelled: cancel requested; rerunning continues.
    """
    from ..errors import InputError
    from ..jobs.reporter import NullReporter
    from ..models.segnet import SegNet
    from ..sequence.runner import pending_tasks, resolve_device
    from ..sequence.task_model import save_task_model, start_network
    from ..sequence.validation import check_model, decide_postprocessing

    if method not in REGULARISERS:
        raise ValueError(f"method must be one of {list(REGULARISERS)}, got {method!r}")
    reporter = reporter or NullReporter()
    dev = resolve_device(device)
    trained = []
    with ws.lock("benchmark"):
        names = ws.task_names()
        for name in pending_tasks(ws):
            t0 = time.perf_counter()
            index = names.index(name)
            earlier = names[:index]
            cfg = ws.task_config(name)
            if not [1 for _ in ws.prepared(name, "train")]:
                raise InputError(ws.task_dir(name) / "task.json", "the task has no training cases")
            ws.set_task_status(name, "training")
            net, lineage = start_network(ws, cfg, index, name, earlier)  # as every strategy starts task t
            lineage = {"from": lineage["from"]}
            net.to(dev)
            log, fisher_s = _train_task(ws, net, method, index, earlier, name, cfg, settings, reporter, dev)
            final = SegNet(net.encoder, net.decoder, net.head, net.size_divisor)
            postprocess = decide_postprocessing(ws, name, final, dev, cfg)
            check = check_model(ws, name, final, dev, reporter, which=f"M{index + 1}",
                                keep_largest=postprocess["keep_largest"])
            reg = {"ewc": {"ewc_lambda": float(settings.ewc_lambda), "fisher_batches": int(settings.ewc_fisher_batches)},
                   "lwf": {"lwf_weight": float(settings.lwf_weight), "temperature": float(settings.lwf_temperature)}}
            record = {"task": name, "index": index, "strategy": f"seq_{method}" if index else "fft", "lineage": lineage,
                      "stages": {"fft": {**log.to_dict(), "regulariser": method if index else None,
                                         **(reg[method] if index else {})},
                                 **({"ewc_fisher": {"time_s": round(fisher_s, 3), "iterations": index}} if fisher_s else {})},
                      "n_classes": len(ws.labels(name)), "labels": ws.labels(name), "device": str(dev),
                      "patch_size": list(cfg.preprocess.patch_size), "seed": int(cfg.seed), "config": cfg.to_dict(),
                      "time_s": round(time.perf_counter() - t0, 3), "postprocess": postprocess,
                      "validation": {"M_t": check} if check is not None else {}}
            metadata = {"task": name, "index": index, "arch": cfg.arch.to_dict(), "lineage": lineage["from"]}
            save_task_model(ws.task_dir(name), copy.deepcopy(net.encoder).cpu(), net.decoder.cpu(), net.head.cpu(),
                            record, metadata)
            ws.set_task_status(name, "done")
            trained.append(name)
    return trained
