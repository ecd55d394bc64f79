"""Training step time with data loading included, per recipe variant (prints a Markdown table).

    python Testing/benchmarks/step_time.py WS TASK [--patch 32] [--steps 40] [--device cpu|cuda]

Reads TASK's prepared training cases from workspace WS (``WS/cache``), then times ``--steps``
steps of a full fine-tuning loop (sampler -> device -> forward -> Dice+CE -> backward -> AdamW)
for each variant:

* ``plain``: class-aware sampling, no augmentation, constant lr, no clipping, fp32, no workers
  (the cost profile of the recipe before this change: the old sampler cost the same ~1 ms);
* ``recipe``: nnU-Net's augmentation + poly lr + gradient clipping (the new default);
* ``recipe + 1 worker``: the same with batches built in a loader worker process;
* on CUDA also ``recipe + AMP`` (``Precision("auto")``) and the GPU-busy share (CUDA events
  around forward/backward/step over the wall time).

The first 5 steps of each variant are warm-up and not counted. Run it on an otherwise idle
machine; the ratios between variants measured in one run are what to report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _variants(device_type: str):
    out = [("plain", dict(augment=False, schedule="constant", clip=0.0, amp="off", workers=0)),
           ("recipe", dict(augment=True, schedule="poly", clip=12.0, amp="off", workers=0)),
           ("recipe + 1 worker", dict(augment=True, schedule="poly", clip=12.0, amp="off", workers=1))]
    if device_type == "cuda":
        out.append(("recipe + AMP + 4 workers", dict(augment=True, schedule="poly", clip=12.0, amp="auto", workers=4)))
    return out


def time_variant(cases, arch, n_classes, patch, steps, device, v) -> dict:
    import torch

    from MedSeqFTLib.config import RecipeConfig
    from MedSeqFTLib.data.augment import Augmenter
    from MedSeqFTLib.data.sampling import PatchSampler
    from MedSeqFTLib.models.registry import build_segnet
    from MedSeqFTLib.retention.batches import BatchStream, to_device
    from MedSeqFTLib.retention.losses import segmentation_loss
    from MedSeqFTLib.retention.precision import Precision

    torch.manual_seed(0)
    net = build_segnet(arch, n_classes).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    recipe = RecipeConfig(schedule=v["schedule"], grad_clip=v["clip"], amp=v["amp"])
    precision = Precision(recipe.amp, device)
    loss_fn = segmentation_loss()
    sampler = PatchSampler(cases, patch, 2, 0.5, seed=0, augment=Augmenter() if v["augment"] else None)
    stream = BatchStream(sampler, 0, v["workers"], pin_memory=device.type == "cuda")
    cuda = device.type == "cuda"
    busy, t_start, data_s = 0.0, None, 0.0
    try:
        for i in range(steps + 5):
            if i == 5:
                if cuda:
                    torch.cuda.synchronize()
                t_start, busy, data_s = time.perf_counter(), 0.0, 0.0
            t0 = time.perf_counter()
            x, y = to_device(stream.next_batch(), device)
            data_s += time.perf_counter() - t0
            for g in opt.param_groups:
                g["lr"] = 1e-3 * recipe.lr_factor(i, steps + 5)
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
            opt.zero_grad(set_to_none=True)
            with precision.autocast():
                loss = loss_fn(net(x), y)
            precision.backward(loss)
            precision.step(opt, list(net.parameters()), recipe.grad_clip)
            if cuda:
                end.record()
                end.synchronize()
                busy += start.elapsed_time(end) / 1000.0
            else:
                float(loss)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t_start
    finally:
        stream.close()
    return {"s_per_step": wall / steps, "data_s_per_step": data_s / steps,
            "gpu_busy": (busy / wall) if cuda else None, "precision": precision.name}


def main(argv=None) -> int:
    import torch

    from MedSeqFTLib.devices import resolve_device
    from MedSeqFTLib.sequence.workspace import Workspace

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workspace", type=Path)
    p.add_argument("task")
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    ws = Workspace.open(a.workspace)
    cases = [c for _, c in ws.prepared(a.task, "train")]
    arch = ws.config.arch
    rows = []
    for name, v in _variants(device.type):
        r = time_variant(cases, arch, len(ws.labels(a.task)), (a.patch,) * 3, a.steps, device, v)
        rows.append((name, r))
        print(f"{name}: {r['s_per_step']:.3f} s/step", flush=True)
    base = rows[0][1]["s_per_step"]
    print(f"\n{arch.name} f{arch.feature_size}, patch {a.patch}^3, batch 2, {a.steps} steps, {device}, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| variant | s/step (data included) | of which waiting for data | vs plain | precision | GPU busy |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        busy = f"{100 * r['gpu_busy']:.0f} %" if r["gpu_busy"] is not None else "-"
        print(f"| {name} | {r['s_per_step']:.3f} | {r['data_s_per_step']:.3f} | {r['s_per_step'] / base:.2f}x | "
              f"{r['precision']} | {busy} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
