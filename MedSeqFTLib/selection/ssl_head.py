"""Which SSL head MDS scores with: M0's own, a freshly fitted one, or an explicit random one.

MDS needs M0's *own* SSL head: the pretext loss of the head M0 was pre-trained with says how
much a case looks like the pre-training data. A foundation without one (an encoder-only
checkpoint such as MONAI's ``model_swinvit.pt``) never gets a random head silently; MDS stops
with one line that names the file and the choices, each of which is recorded in ``buffer.json``
under ``"ssl_head"``:

* ``"foundation"`` (default): M0's head; refused when M0 has none (``missing_head_message``);
* ``"fit"``: a fresh head of ``selection.pretext`` (default ``"masked"``, or M0's own pretext if it
  names one) is trained for N steps on the *frozen* M0 with the task's training cases (AdamW,
  lr 1e-3, batch 2, seeded), saved as ``WS/tasks/<task>/ssl_head_fitted.safetensors``; its steps,
  seed, losses and file hash are recorded. Note that it then measures likeness to the task's
  cases as M0's features see them, not likeness to M0's pre-training data;
* ``"random"``: an untrained, seeded head of that pretext (ranks cases by a random projection
  of M0's features; for ablations).

Workspaces made before this rule imported foreign checkpoints with a random ``"voco"`` head;
those heads are recognised (``has_own_head``) and treated as missing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["SSL_HEAD_CHOICES", "HEAD_WORDS", "DEFAULT_FIT_STEPS", "DEFAULT_FIT_PRETEXT", "FITTED_FILE", "HeadPlan",
           "has_own_head", "missing_head_message", "plan_ssl_head", "make_scoring_head", "fit_ssl_head"]

SSL_HEAD_CHOICES = ("foundation", "fit", "random")
HEAD_WORDS = {"foundation": "M0's own", "fit": "fitted", "random": "random (untrained)"}  # for messages
DEFAULT_FIT_STEPS = 200
DEFAULT_FIT_PRETEXT = "masked"
FITTED_FILE = "ssl_head_fitted.safetensors"
FIT_LR = 1e-3
FIT_BATCH = 2
_LEGACY_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def has_own_head(head, metadata: Mapping) -> bool:
    """Whether M0 brings a usable SSL head of its own.

    False without a head, and for the random ``"voco"`` head that ``init`` gave imported
    checkpoints before heads were imported (metadata without ``pretrain`` and without
    ``ssl_head_origin``, whose ``source`` is a checkpoint file).
    """
    if head is None or not metadata.get("ssl_pretext"):
        return False
    if metadata.get("ssl_head_origin") or "pretrain" in metadata:
        return True
    source = str(metadata.get("source") or "")
    legacy = "source_sha256" in metadata and Path(source).suffix in _LEGACY_SUFFIXES and metadata.get("ssl_pretext") == "voco"
    return not legacy


def missing_head_message(ws, task: str, metadata: Mapping) -> str:
    """The one-line refusal (without the file name, which ``InputError`` puts in front)."""
    source = metadata.get("source")
    if metadata.get("ssl_pretext"):
        why = f" (its head is the random one that an older version gave the checkpoint {source})"
    else:
        why = f" (imported from {source})" if source else ""
    return (f"the foundation model has no SSL head{why}, so MDS cannot score the cases of task '{task}'; choose "
            f"explicitly: 'medseqft select {ws.root} --fit-ssl-head [STEPS]' fits a fresh SSL head on the frozen M0 "
            "with each task's training cases, '--random' picks a random buffer instead of MDS, '--random-ssl-head' "
            "scores with an untrained head; the choice is recorded in buffer.json")


@dataclass
class HeadPlan:
    """What ``plan_ssl_head`` decided (nothing is built or written yet).

    Attributes:
        choice: one of ``SSL_HEAD_CHOICES``.
        pretext: pretext name the scores use.
        options: its settings (``ssl_options``).
    """

    choice: str
    pretext: str
    options: dict


def plan_ssl_head(ws, task: str, head, metadata: Mapping, choice: Optional[str] = None,
                  pretext: Optional[str] = None) -> HeadPlan:
    """Decide the scoring head; refuses before anything is read or written.

    Args:
        ws: the workspace (for the file name and the command in the message).
        task: task name (in the message).
        head, metadata: from ``load_foundation``.
        choice: ``None`` or ``"foundation"``, ``"fit"``, ``"random"``.
        pretext: ``selection.pretext`` (``None`` = M0's own, else ``DEFAULT_FIT_PRETEXT``).

    Raises:
        InputError: M0 has no SSL head and ``choice`` is the default (the refusal, exit 2), an
            unknown choice, or a ``pretext`` that M0's own head was not made for.
    """
    choice = choice or "foundation"
    if choice not in SSL_HEAD_CHOICES:
        raise InputError("--ssl-head", f"must be one of {list(SSL_HEAD_CHOICES)}, got {choice!r}")
    own = has_own_head(head, metadata)
    if choice == "foundation":
        if not own:
            raise InputError(ws.foundation_path, missing_head_message(ws, task, metadata))
        name = metadata["ssl_pretext"]
        if pretext and pretext != name:
            raise InputError("selection.pretext", f"M0's SSL head is a {name!r} head, not {pretext!r}; "
                                                  "use --fit-ssl-head to fit a head of that pretext")
        return HeadPlan("foundation", name, dict(metadata.get("ssl_options") or {}))
    name = pretext or (metadata.get("ssl_pretext") if own else None) or DEFAULT_FIT_PRETEXT
    options = dict(metadata.get("ssl_options") or {}) if own and name == metadata.get("ssl_pretext") else {}
    return HeadPlan(choice, name, options)


def _seed(seed: int, *parts) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in (seed,) + parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _round(value: float) -> float:
    return float(f"{float(value):.7g}")


def fit_ssl_head(encoder, head, pretext, volumes: Sequence[np.ndarray], *, steps: int, seed: int, lr: float = FIT_LR,
                 batch_size: int = FIT_BATCH, reporter=None, task: Optional[str] = None, device=None) -> list:
    """Train ``head`` (only) on the frozen ``encoder`` with ``pretext``; returns the per-step losses.

    Args:
        encoder: M0's encoder; its parameters are frozen for the fit and unfrozen afterwards.
        head: a fresh head built by ``pretext.build_head``; left in eval mode.
        pretext: the ``Pretext`` object.
        volumes: (C, X, Y, Z) float32 arrays, all of a size ``pretext`` accepts.
        steps: optimiser steps (AdamW, weight decay 1e-5); one view per volume per step.
        seed: picks the volumes of each step and every pretext draw.
        reporter: progress (stage ``"select"``) and cancel points.

    Raises:
        InputError: ``steps`` < 1 or no volumes.
        errors.Cancelled: the reporter asked to stop.
    """
    import torch

    if int(steps) < 1 or not len(volumes):
        raise InputError("--fit-ssl-head", f"needs steps >= 1 and training cases, got {steps} steps, {len(volumes)} cases")
    device = device or torch.device("cpu")
    encoder.to(device).eval()
    head.to(device).train()
    frozen = [p for p in encoder.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    rng = np.random.default_rng(_seed(seed, "fit-batches"))
    generator = torch.Generator().manual_seed(_seed(seed, "fit-views"))
    optimiser = torch.optim.AdamW(head.parameters(), lr=float(lr), weight_decay=1e-5)
    losses = []
    try:
        for step in range(1, int(steps) + 1):
            idx = rng.integers(len(volumes), size=int(batch_size))
            batch = torch.from_numpy(np.stack([np.asarray(volumes[i], dtype=np.float32) for i in idx])).to(device)
            loss = pretext.loss(encoder, head, batch, generator, 1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            pretext.after_step(head)
            losses.append(float(loss.detach()))
            if reporter is not None:
                reporter.check_cancel()
                reporter.progress("select", task, step, int(steps), losses={"ssl_head": losses[-1]},
                                  message="fitting a fresh SSL head on the frozen M0")
    finally:
        for p in frozen:
            p.requires_grad_(True)
    head.eval()
    return losses


def make_scoring_head(plan: HeadPlan, ws, task: str, arch, encoder, head, metadata: Mapping,
                      volumes: Sequence[np.ndarray], *, seed: int, steps: Optional[int] = None, reporter=None,
                      device=None):
    """Build the head ``plan`` asks for; returns ``(pretext, head, record)``.

    ``record`` goes into ``buffer.json`` as ``"ssl_head"``. ``"fit"`` writes
    ``WS/tasks/<task>/ssl_head_fitted.safetensors`` (atomically).

    Raises:
        InputError: bad fit steps, or a pretext that does not fit the backbone.
        errors.Cancelled: the reporter asked to stop during the fit.
    """
    import torch

    from ..models.checkpoint import save_safetensors
    from ..models.foundation import sha256_file
    from ..models.ssl import get_pretext

    pretext = get_pretext(plan.pretext, plan.options or None)
    record = {"source": plan.choice, "pretext": plan.pretext, "options": pretext.options()}
    if plan.choice == "foundation":
        pretrained = "pretrain" in metadata
        record["origin"] = metadata.get("ssl_head_origin") or ("pretrained with the encoder" if pretrained else "foundation file")
        return pretext, head, record
    with torch.random.fork_rng(devices=[]):
        init_seed = _seed(seed, "ssl-head", task) & 0x7FFFFFFF
        torch.manual_seed(init_seed)
        fresh = pretext.build_head(arch)
    record["init_seed"] = init_seed
    if plan.choice == "random":
        record["note"] = "untrained head: the scores rank cases by a random projection of M0's features"
        if reporter is not None:
            reporter.log(f"{task}: MDS scores with an untrained {plan.pretext} head (--random-ssl-head)", level="warning",
                         stage="select", task=task)
        return pretext, fresh.eval(), record
    steps = DEFAULT_FIT_STEPS if steps is None else int(steps)
    if reporter is not None:
        reporter.log(f"{task}: fitting a fresh {plan.pretext} SSL head on the frozen M0 with {len(volumes)} training "
                     f"cases ({steps} steps)", stage="select", task=task)
    losses = fit_ssl_head(encoder, fresh, pretext, volumes, steps=steps, seed=seed, reporter=reporter, task=task,
                          device=device)
    path = ws.task_dir(task) / FITTED_FILE
    save_safetensors(path, fresh.state_dict(), {"kind": "ssl_head", "ssl_pretext": plan.pretext,
                                                "ssl_options": pretext.options(), "task": task, "steps": steps,
                                                "seed": int(seed), "foundation_sha256": sha256_file(ws.foundation_path)})
    tail = losses[-max(1, len(losses) // 10):]
    record.update({"steps": steps, "seed": int(seed), "lr": FIT_LR, "batch_size": FIT_BATCH,
                   "trained_on": f"{len(volumes)} training cases of {task} (frozen M0 encoder)",
                   "first_loss": _round(losses[0]), "final_loss": _round(sum(tail) / len(tail)),
                   "file": path.relative_to(ws.root).as_posix(), "sha256": sha256_file(path)})
    return pretext, fresh, record
