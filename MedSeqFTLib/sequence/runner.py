"""The refinement sequence: for every pending task in order, buffer selection then K&G RFT.

Task 1 (index 0): FFT of M0's encoder with a new decoder and head -> E_{1-mid}; then, as in
the paper (Sec. III-B), LoRA-KD (E_0 + LoRA -> E_{1-mid}) and merge -> E_1, so E_1 - E_0 is
low-rank (``retention.first_task_lora = False``: E_1 = E_{1-mid}, plain FFT). Task t > 1 with
``retention.enabled``: KD-FFT (E, decoder from M_{t-1}, new head, distillation to E_{t-1} on
the union of earlier buffers) -> E_{t-mid}; LoRA-KD (E_{t-1} + LoRA -> E_{t-mid}) and merge
-> E_t. ``retention.lora_stage = False`` skips LoRA-KD and merge on every task (E_t = E_{t-mid}).
With ``retention.enabled = False`` every task is FFT from M_{t-1} (plain sequential fine-tuning).
Both M_{t-mid} and M_t are scored on the task's test split right after training (``validation``).

Resumability: each stage checkpoints into ``WS/tasks/<name>/stages/<stage>/`` (see
``retention.trainer``); a finished stage is loaded, not redone; a finished task (status
``done`` + model files) is skipped and its files are never touched again. All seeds derive from
``config.seed``, the task name and the stage name.

Under torchrun (``retention.distributed``, docs/scale_out.md) every rank runs this sequence: rank
0 holds the lock, selects the buffers, prepares the cache, validates and writes the task's
model; the other ranks wait at barriers and train their share of each stage's batches.
"""

from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path

from ..devices import resolve_device
from ..errors import InputError
from ..retention import distributed as ddp

__all__ = ["refine_workspace", "resolve_device", "pending_tasks", "partial_tasks", "STAGES"]

STAGES = ("fft", "kd_fft", "lora_kd", "merge")


def _is_done(ws, name: str) -> bool:
    from ..adapters.base import model_files
    from .task_model import model_dir

    folder = model_dir(ws.task_dir(name))
    record = ws.task(name)
    return record.get("status") == "done" and all((folder / f).is_file() for f in model_files(record))


def shared_tasks(ws, names: list) -> list:
    """The kg_rft tasks among ``names`` (those that refine the shared model), in order."""
    from ..adapters.base import is_adapter_task

    return [n for n in names if not is_adapter_task(ws, n)]


def pending_tasks(ws) -> list[str]:
    """Tasks without a finished model, in sequence order."""
    return [n for n in ws.task_names() if not _is_done(ws, n)]


def partial_tasks(ws) -> list[str]:
    """Pending tasks that already started training (status ``training``/``failed`` or stage files)."""
    out = []
    for name in pending_tasks(ws):
        stages = ws.task_dir(name) / "stages"
        started = stages.is_dir() and any(stages.glob("*/state.json"))
        if started or ws.task(name).get("status") in ("training", "failed"):
            out.append(name)
    return out


def refine_workspace(ws, reporter=None, device: str = "auto", resume: bool = False) -> list[str]:
    """Refine every pending task of ``ws`` in order; holds the workspace lock meanwhile.

    Args:
        ws: an open ``Workspace``.
        reporter: progress / cancel (``jobs.reporter.Reporter``); default ``NullReporter``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        resume: continue a task that was interrupted; without it such a task is an error.

    Returns:
        Names of the tasks refined by this call (empty if everything was already done).

    Raises:
        InputError: no tasks, a partly trained task without ``resume``, bad device, missing
            foundation / data, a patch size the backbone cannot take, or CUDA out of memory.
        errors.Cancelled: a cancel request; the workspace stays resumable.
    """
    from ..jobs.reporter import NullReporter
    from .workspace import Workspace

    reporter = reporter or NullReporter()
    dev = ddp.init_from_env(device) if ddp.launched_by_torchrun() else resolve_device(device)
    if ddp.world_size() > 1:
        ddp.check_same(Workspace.open(ws.root).manifest_path.read_text(encoding="utf-8"), "workspace.json")
    with ws.lock("refine") if ddp.is_main() else contextlib.nullcontext():
        ddp.barrier()  # the other ranks read the workspace once rank 0 holds the lock
        ws = Workspace.open(ws.root)  # the manifest as it is now, under the lock
        names = ws.task_names()
        if not names:
            raise InputError(ws.root, "the workspace has no tasks; add one with 'medseqft add-task'")
        partial = partial_tasks(ws)
        if partial and not resume:
            raise InputError(ws.root, f"task {partial[0]!r} was partly refined; rerun with --resume to continue it "
                                      f"(or delete {ws.task_dir(partial[0]) / 'stages'} to start it over)")
        todo = pending_tasks(ws)
        ddp.barrier()  # every rank decided before rank 0 changes a task's status
        if not todo:
            reporter.log("every task is already refined; nothing to do")
            return []
        for i, name in enumerate(todo):
            # this task's stages too: each leaves the plan once it starts reporting
            reporter.plan([st for later in todo[i:] for st in _task_plan(ws, names, later)])
            index = names.index(name)
            _guard_oom(lambda: _refine_one(ws, index, name, reporter, dev), ws, name, dev)
        return todo


def _refine_one(ws, index: int, name: str, reporter, dev) -> None:
    """An adapter task trains its own modules on the current shared model; a kg_rft task refines
    the shared model from the latest kg_rft task before it (adapter tasks in between change nothing)."""
    from ..adapters.base import is_adapter_task

    if is_adapter_task(ws, name):
        from ..adapters.refine import refine_adapter_task

        if ddp.world_size() > 1:
            raise InputError("torchrun", f"adapter task {name!r}: adapter tasks train on one process; "
                                         "run 'medseqft refine' without torchrun for it")
        refine_adapter_task(ws, index, name, reporter, dev)
        return
    shared = shared_tasks(ws, ws.task_names()[:index])
    _refine_task(ws, len(shared), name, shared, reporter, dev, position=index)


def _task_plan(ws, names: list, name: str) -> list[tuple[str, str, int]]:
    from ..adapters.base import is_adapter_task

    if is_adapter_task(ws, name):
        return stage_plan(ws, 0, name, mode="adapter")
    return stage_plan(ws, len(shared_tasks(ws, names[: names.index(name)])), name)


def stage_plan(ws, index: int, name: str, mode: str = "kg_rft") -> list[tuple[str, str, int]]:
    """``(stage, task, iterations)`` of the training stages task ``name`` will run (for the ETA).

    ``index``: the number of kg_rft tasks before it (0: it refines M0); ``mode`` ``"adapter"``:
    the task's one adapter stage.
    """
    cfg = ws.task_config(name)
    if mode == "adapter":
        return [("adapter", name, int(cfg.adapter.iterations))]
    rc = cfg.retention
    if index == 0 or not rc.enabled:
        plan = [("fft", name, int(rc.fft.iterations))]
        lora = index == 0 and rc.lora_on_first_task()
    else:
        plan = [("kd_fft", name, int(rc.kd_fft.iterations))]
        lora = rc.lora_stage
    if lora:
        plan.append(("lora_kd", name, int(rc.lora_kd.iterations)))
    return plan


def _guard_oom(fn, ws, name, dev):
    import torch

    try:
        fn()
    except torch.cuda.OutOfMemoryError:
        pass
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
    else:
        return
    # outside the except block so the traceback (and the tensors it holds) are freed
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    if ddp.is_main():
        ws.set_task_status(name, "failed")
    cfg = ws.task_config(name)
    raise InputError("--device", f"{dev} ran out of memory while refining {name!r} (patch {list(cfg.preprocess.patch_size)}, "
                                 f"batch {cfg.retention.fft.batch_size}/{cfg.retention.kd_fft.batch_size}); lower "
                                 "preprocess.patch_size or retention.*.batch_size in workspace.json, or use --device cpu, "
                                 "then rerun with --resume")


def _spec(ws, cfg, name: str, stage: str, stage_cfg, dev, data_tag=None):
    from .stage_setup import stage_spec

    return stage_spec(cfg, ws.task_dir(name) / "stages" / stage, name, stage, stage_cfg, dev, data_tag)


def _buffer_cases(ws, earlier: list[str]) -> tuple[list, dict]:
    from ..selection.manifest import manifest_path, read_manifest

    return ddp.main_first(lambda: _read_buffer_cases(ws, earlier))  # rank 0 fills the cache


def _read_buffer_cases(ws, earlier: list[str]) -> tuple[list, dict]:
    from ..selection.manifest import manifest_path, read_manifest

    cases, ids = [], {}
    for prev in earlier:
        if not manifest_path(ws.task_dir(prev)).is_file():
            continue  # an earlier task without a buffer contributes nothing (reported in the record)
        selected = list(read_manifest(ws.task_dir(prev))["selected"])
        ids[prev] = selected
        if selected:
            cases += [case for _, case in ws.prepared(prev, ids=selected)]
    return cases, ids


def _check_patch(cfg) -> None:
    from ..models.registry import size_divisor

    div = size_divisor(cfg.arch)
    patch = cfg.preprocess.patch_size
    if any(int(p) % div for p in patch):
        raise InputError("preprocess.patch_size", f"{list(patch)} must be divisible by {div} for the "
                                                  f"{cfg.arch.name} backbone")


def _refine_task(ws, index: int, name: str, earlier: list[str], reporter, dev, position: int | None = None) -> None:
    """Refine kg_rft task ``name``: ``index`` counts the kg_rft tasks before it (``earlier``, in
    order); ``position`` is its place in the whole sequence (default ``index``)."""
    from ..models.registry import build_encoder, encoder_out_channels
    from ..retention.fft import train_fft
    from ..retention.kd_fft import train_kd_fft
    from ..retention.losses import resolve_scales
    from ..selection.manifest import manifest_path
    from ..models.segnet import SegNet
    from .task_model import model_dir, save_task_model, start_network
    from .validation import check_model, decide_postprocessing

    from .stage_setup import sampler_factory

    cfg = ws.task_config(name)
    rc = cfg.retention
    _check_patch(cfg)
    kd = index > 0 and rc.enabled
    wants_lora = rc.lora_stage if kd else (index == 0 and rc.lora_on_first_task())
    # the layers LoRA-KD will adapt: a setting that selects none is refused before any work
    lora_targets = _lora_targets(cfg, build_encoder(cfg.arch)) if wants_lora else None
    if not manifest_path(ws.task_dir(name)).is_file():
        from ..selection.mds import select_task

        if ddp.is_main():
            select_task(ws, name, reporter, device=str(dev))
        ddp.barrier()
    t_task = time.perf_counter()

    # -- M_{t-1}: encoder (and decoder from task 2 on); new seeded decoder (task 1) and head ----
    n_classes = len(ws.labels(name))
    net, lineage = start_network(ws, cfg, index, name, earlier)
    # E_{t-1}: the frozen KD teacher and the base LoRA-KD puts its adapters into (kept on the CPU until needed)
    e_prev = copy.deepcopy(net.encoder) if (kd or wants_lora) else None
    net.to(dev)

    pp = cfg.preprocess
    task_cases = [case for _, case in ddp.main_first(lambda: ws.prepared(name, "train"))]
    if not task_cases:
        raise InputError(ws.task_dir(name) / "task.json", "the task has no training cases")
    if ddp.is_main():
        ws.set_task_status(name, "training")  # only now: the checks above leave the workspace as it was
    position = index if position is None else int(position)
    reporter.log(f"refining {name} (task {position + 1} of {len(ws.task_names())})", task=name)
    stages, record_extra, checks = {}, {}, {}
    scales = resolve_scales(len(encoder_out_channels(cfg.arch)), rc.distil_scales)
    if not kd:
        log = train_fft(net, _spec(ws, cfg, name, "fft", rc.fft, dev, "task-data"),
                        sampler_factory(cfg, task_cases, rc.fft.batch_size), reporter, dev,
                        deep_supervision=cfg.recipe.deep_supervision)
        stages["fft"] = log.to_dict()
        strategy = "fft" if index == 0 else "seq_fft"
    else:
        teacher = e_prev.to(dev)  # E_{t-1}, frozen
        buffer, buffer_ids = _buffer_cases(ws, earlier)
        record_extra["buffer"] = {"tasks": buffer_ids, "cases": len(buffer), "batch": rc.kd_batch}
        if not buffer:
            reporter.log(f"{name}: earlier tasks have no buffer cases; KD-FFT runs without distillation",
                         level="warning", task=name)
        buffer_batches = sampler_factory(cfg, buffer, rc.kd_batch) if buffer else None
        log = train_kd_fft(net, teacher, _spec(ws, cfg, name, "kd_fft", rc.kd_fft, dev, "task-data"),
                           sampler_factory(cfg, task_cases, rc.kd_fft.batch_size),
                           buffer_batches, reporter, dev, float(rc.kd_weight), scales, kd_every=int(rc.kd_every),
                           deep_supervision=cfg.recipe.deep_supervision, update=rc.kd_update)
        stages["kd_fft"] = {**log.to_dict(), "distilled_scales": scales, "kd_weight": float(rc.kd_weight),
                            "kd_every": int(rc.kd_every)}
        strategy = "kd_fft"
    encoder_t = net.encoder
    if wants_lora:
        checks["M_mid"] = None if not ddp.is_main() else check_model(ws, name, net, dev, reporter, which=f"M{position + 1}-mid")
        encoder_t = _lora_kd_and_merge(ws, cfg, name, e_prev, net.encoder, lora_targets, task_cases, scales, dev,
                                       reporter, stages, record_extra)
        strategy += "+lora_kd+merge"

    final = SegNet(encoder_t.to(dev), net.decoder, net.head, net.size_divisor)
    if not ddp.is_main():
        ddp.barrier()  # rank 0 validates and writes M_t; the next task starts from its files
        return
    postprocess = decide_postprocessing(ws, name, final, dev, cfg)
    record_extra["postprocess"] = postprocess
    # the record with this decision is not written yet: hand it to the check directly
    checks["M_t"] = check_model(ws, name, final, dev, reporter, which=f"M{position + 1}",
                                keep_largest=postprocess["keep_largest"])
    record_extra["validation"] = {k: v for k, v in checks.items() if v is not None}
    record_extra["failed_classes"] = (checks["M_t"] or {}).get("failed", [])
    record = {
        "task": name, "index": position, "mode": "kg_rft", "shared_index": index, "strategy": strategy, "lineage": lineage, "stages": stages,
        "n_classes": n_classes, "labels": ws.labels(name), "device": str(dev),
        "patch_size": list(pp.patch_size), "seed": int(cfg.seed), "config": cfg.to_dict(),
        "time_s": round(time.perf_counter() - t_task, 3), **record_extra,
    }
    metadata = {"task": name, "index": position, "arch": cfg.arch.to_dict(), "lineage": lineage["from"]}
    save_task_model(ws.task_dir(name), encoder_t.cpu(), net.decoder.cpu(), net.head.cpu(), record, metadata)
    ws.set_task_status(name, "done")
    _drop_stage_tensors(ws.task_dir(name) / "stages")
    reporter.log(f"{name}: M{position + 1} written to {model_dir(ws.task_dir(name))}", task=name)
    ddp.barrier()


def _lora_targets(cfg, encoder) -> list[str]:
    """The encoder layers LoRA goes into (``retention.lora_targets``, resolved for the backbone).

    Raises:
        InputError: the setting selects no layer of this backbone (``linear`` on the small U-Net).
    """
    from ..models.registry import lora_target_kinds, lora_target_modules

    kinds = lora_target_kinds(cfg.arch, cfg.retention.lora_targets)
    targets = lora_target_modules(encoder, kinds)
    if not targets:
        raise InputError("retention.lora_targets", f"{cfg.retention.lora_targets!r} selects no layer of the "
                                                   f"{cfg.arch.name} encoder (it has no {' or '.join(kinds)} layer); "
                                                   "use 'auto'")
    return targets


def _lora_kd_and_merge(ws, cfg, name, e_prev, e_mid, targets, task_cases, scales, dev, reporter, stages, record_extra):
    """LoRA-KD (E_{t-1} + LoRA in ``targets`` learns E_{t-mid} on task data) and the merge; returns E_t.

    ``e_prev`` becomes the student (modified in place); ``e_mid`` stays frozen. Fills
    ``stages["lora_kd"]``, ``stages["merge"]`` and ``record_extra["n_params"]``.
    """
    import torch

    from ..models.registry import lora_target_kinds
    from ..retention.lora_kd import train_lora_kd
    from ..retention.merge import add_lora, lora_parameters, merge_lora
    from ..retention.trainer import derive_seed
    from .stage_setup import sampler_factory

    rc = cfg.retention
    kinds = lora_target_kinds(cfg.arch, rc.lora_targets)
    torch.manual_seed(derive_seed(cfg.seed, name, "lora-init"))
    student = add_lora(e_prev, int(rc.lora_rank), rc.alpha, targets=targets).to(dev)
    n_lora = count_params_of(lora_parameters(student))
    log = train_lora_kd(student, e_mid, _spec(ws, cfg, name, "lora_kd", rc.lora_kd, dev),
                        sampler_factory(cfg, task_cases, rc.lora_kd.batch_size), reporter, dev, scales)
    stages["lora_kd"] = {**log.to_dict(), "rank": int(rc.lora_rank), "alpha": rc.alpha, "lora_params": n_lora,
                         "targets": "+".join(kinds), "lora_layers": len(targets)}
    t0 = time.perf_counter()
    reporter.progress("merge", name, 0, 1)
    encoder_t = merge_lora(student)
    reporter.progress("merge", name, 1, 1)
    stages["merge"] = {"time_s": round(time.perf_counter() - t0, 3), "iterations": 1}
    record_extra["n_params"] = {"lora": n_lora}
    return encoder_t


def count_params_of(params: dict) -> int:
    return int(sum(p.numel() for p in params.values()))


def _drop_stage_tensors(folder: Path) -> None:
    """Once the model is saved the stage tensors are redundant; keep only the small ``state.json`` logs."""
    if not folder.is_dir():
        return
    for path in list(folder.glob("*/*.safetensors")) + list(folder.glob("*/checkpoint.pt")):
        path.unlink(missing_ok=True)
