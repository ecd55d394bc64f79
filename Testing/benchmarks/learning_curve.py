"""Per-class test Dice of full fine-tuning against training steps (prints a Markdown table).

    python Testing/benchmarks/learning_curve.py WS TASK [--steps 1000] [--every 200]
        [--lr 3e-3] [--optimizer adamw|sgd] [--schedule constant|poly|cosine] [--augment on|off]
        [--deep-supervision on|off] [--width 8] [--scratch] [--patch 40] [--batch 2] [--head-prior 0.01] [--seed 0]

Trains a fresh ``SegNet`` on TASK's prepared training cases of workspace WS (``add-task`` must
have run) with the product's parts (class-aware ``PatchSampler``, ``Augmenter``, Dice + CE,
deep supervision, lr schedule, gradient clipping) and every ``--every`` steps scores it on the
task's labelled test cases in the preprocessed grid (sliding window, no test-time
augmentation, no post-processing). The encoder starts from the workspace's foundation model
unless ``--scratch`` or a ``--width`` other than the foundation's is given.

It answers "how many steps, and which settings, does this task need?" for plans and presets,
and shows where a stage's Dice plateaus. Settings not given on the command line come from the
task's effective configuration (``medseqft plan WS --task TASK``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time


def dice_per_class(pred, label, n_classes: int) -> list:
    """Dice (%) per foreground class; ``None`` where the class is absent from both."""
    import numpy as np

    out = []
    for c in range(1, n_classes):
        p, g = pred == c, label == c
        denom = int(p.sum()) + int(g.sum())
        out.append(None if denom == 0 else 200.0 * int(np.logical_and(p, g).sum()) / denom)
    return out


def evaluate(net, cases, patch, n_classes, device, detail=None) -> list:
    """Mean Dice (%) per foreground class over ``cases`` (prepared, with labels).

    ``detail``: a list that receives one line per case and class with the voxel counts of the
    label, the prediction and their overlap (under- or over-segmentation, misplaced classes).
    """
    import numpy as np

    from MedSeqFTLib.inference.predict import sliding_window_predict

    net.eval()
    scores = []
    for k, case in enumerate(cases):
        pred = np.asarray(sliding_window_predict(net, case.image, patch, device=device, overlap=0.5, sw_batch_size=1))
        label = np.asarray(case.label[0])
        scores.append(dice_per_class(pred, label, n_classes))
        if detail is not None:
            for c in range(1, n_classes):
                p, g = pred == c, label == c
                detail.append(f"test case {k} class {c}: label {int(g.sum())} voxels, predicted {int(p.sum())}, "
                              f"overlap {int((p & g).sum())}, predicted as other classes "
                              f"{[int((g & (pred == o)).sum()) for o in range(n_classes)]}")
    net.train()
    return [float(np.mean([s[c] for s in scores if s[c] is not None] or [0.0])) for c in range(n_classes - 1)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workspace")
    ap.add_argument("task")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    ap.add_argument("--schedule", choices=("constant", "poly", "cosine"), default=None)
    ap.add_argument("--augment", choices=("on", "off"), default=None)
    ap.add_argument("--deep-supervision", choices=("on", "off"), default=None)
    ap.add_argument("--width", type=int, default=None, help="feature size (other than M0's: trained from scratch)")
    ap.add_argument("--scratch", action="store_true", help="do not start from the foundation's encoder")
    ap.add_argument("--patch", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--head-prior", type=float, default=None, help="recipe.head_prior (0: PyTorch's default head)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detail", action="store_true", help="after the last step: voxel counts per test case and class")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import torch

    from MedSeqFTLib.models.foundation import load_foundation
    from MedSeqFTLib.models.registry import build_segnet
    from MedSeqFTLib.retention.batches import to_device
    from MedSeqFTLib.retention.deep_supervision import make_deep_supervision, segmentation_step
    from MedSeqFTLib.retention.losses import segmentation_loss
    from MedSeqFTLib.sequence.stage_setup import sampler_factory
    from MedSeqFTLib.sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    cfg = ws.task_config(args.task)
    recipe = cfg.recipe
    if args.schedule:
        recipe = dataclasses.replace(recipe, schedule=args.schedule)
    if args.augment:
        recipe = dataclasses.replace(recipe, augment=args.augment == "on")
    if args.deep_supervision:
        recipe = dataclasses.replace(recipe, deep_supervision=args.deep_supervision == "on")
    if args.head_prior is not None:
        recipe = dataclasses.replace(recipe, head_prior=args.head_prior)
    pp = cfg.preprocess
    if args.patch:
        pp = dataclasses.replace(pp, patch_size=(args.patch,) * 3)
    cfg = dataclasses.replace(cfg, recipe=recipe, preprocess=pp)
    arch = cfg.arch if args.width is None else dataclasses.replace(cfg.arch, feature_size=args.width)
    lr = args.lr if args.lr is not None else cfg.retention.fft.lr
    batch = args.batch or cfg.retention.fft.batch_size
    device = torch.device(args.device)

    n_classes = len(ws.labels(args.task))
    torch.manual_seed(args.seed)
    net = build_segnet(arch, n_classes, recipe.head_prior)
    from_m0 = not args.scratch and arch.feature_size == cfg.arch.feature_size
    if from_m0:
        encoder0, _, _ = load_foundation(ws.foundation_path)
        net.encoder.load_state_dict(encoder0.state_dict(), strict=True)
    net.to(device).train()
    ds = make_deep_supervision(net, recipe.deep_supervision, head_prior=recipe.head_prior)
    params = list(net.parameters()) + (list(ds.to(device).parameters()) if ds is not None else [])
    if args.optimizer == "sgd":  # nnU-Net's: SGD, Nesterov momentum 0.99, weight decay 3e-5
        opt = torch.optim.SGD(params, lr=lr, momentum=0.99, nesterov=True, weight_decay=3e-5)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.retention.fft.weight_decay)
    sampler = sampler_factory(cfg, [c for _, c in ws.prepared(args.task, "train")], batch)(args.seed)
    test_cases = [c for _, c in ws.prepared(args.task, "test") if c.label is not None]
    loss_fn = segmentation_loss()
    labels = [n for n, v in sorted(ws.labels(args.task).items(), key=lambda kv: kv[1])][1:]

    print(f"# {args.task}: {'M0 encoder' if from_m0 else 'scratch'}, width {arch.feature_size}, "
          f"{args.optimizer} lr {lr:g} {recipe.schedule}, augment {recipe.augment}, deep supervision "
          f"{recipe.deep_supervision}, head prior {recipe.head_prior:g}, patch {tuple(pp.patch_size)}, batch {batch}, spacing "
          f"{tuple(round(s, 2) for s in pp.spacing)}, {len(test_cases)} test cases", flush=True)
    print("| steps | train s | " + " | ".join(labels) + " | mean |")
    print("|---" * (len(labels) + 3) + "|", flush=True)
    t_train, t0 = 0.0, time.perf_counter()
    for i in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr * recipe.lr_factor(i, args.steps)
        image, label = to_device(sampler.batch_at(i), device)
        opt.zero_grad(set_to_none=True)
        loss = segmentation_step(net, net.encoder(image), label, loss_fn, ds)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        opt.step()
        if (i + 1) % args.every == 0 or i + 1 == args.steps:
            t_train += time.perf_counter() - t0
            detail = [] if args.detail and i + 1 == args.steps else None
            d = evaluate(net, test_cases, tuple(pp.patch_size), n_classes, device, detail)
            print(f"| {i + 1} | {t_train:.0f} | " + " | ".join(f"{v:.1f}" for v in d) + f" | {sum(d) / len(d):.1f} |",
                  flush=True)
            t0 = time.perf_counter()
            for line in detail or []:
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
