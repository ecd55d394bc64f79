"""MDS (Maximum Data Similarity) buffer selection: score a task's training cases with M0.

Each training case is scored by the SSL pretext loss of the *original* foundation model M0
(encoder + SSL head), averaged over R stochastic runs (random masks / crops, and dropout
inside the head). The K cases with the lowest mean loss are the most like M0's
pre-training data and form the task's replay buffer.

Choices this implementation makes (the paper leaves them open; see docs/selection.md):

* **Input size.** Every case is centre-cropped, or padded with its own minimum (background)
  intensity, to M0's pre-training patch size, at the workspace's voxel spacing. Losses of
  cases of different sizes are then computed on equally large inputs at the same scale as
  pre-training, so they are comparable.
* **Randomness.** Each case has its own ``torch.Generator`` seeded from ``(seed, case id)``;
  its stochastic views are drawn in rounds of ``views_per_batch`` views, one batched forward
  pass per round. So a case's runs do not depend on which other cases are scored with it,
  and the adaptive mode's runs of a case are exactly the first runs of the fixed mode.
* **Adaptive mode** (default): successive elimination around the K-th boundary, see
  ``selection.adaptive``.
* ``forward_passes`` counts SSL loss evaluations (case-views), the paper's unit of "runs".
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from ..errors import InputError
from .adaptive import AdaptiveRule, CaseRuns, active_mask
from .manifest import build_manifest, manifest_path, write_manifest

__all__ = ["ScoreResult", "fit_volume", "case_seed", "score_volumes", "rank_cases", "random_selection",
           "select_task", "resolve_device", "snap_size"]

_REPORT_EVERY_S = 0.5


@dataclass
class ScoreResult:
    """Per-case SSL losses of one scoring run.

    Attributes:
        runs: every loss of every case (``CaseRuns``; means / stds / counts are (N,) arrays).
        forward_passes: SSL loss evaluations done (sum of runs).
        batched_calls: batched forward passes (pretext.loss calls).
    """

    runs: CaseRuns
    forward_passes: int
    batched_calls: int


def fit_volume(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Centre-crop or pad ``image`` (C, X, Y, Z) to (C, *size).

    Padding uses the volume's minimum (its background after preprocessing), split evenly
    between both sides; cropping keeps the centre.

    Raises:
        ValueError: ``image`` is not 4-D or ``size`` has not 3 entries.
    """
    image = np.asarray(image)
    if image.ndim != 4 or len(size) != 3:
        raise ValueError(f"expected image (C, X, Y, Z) and a 3-entry size, got {image.shape} and {tuple(size)}")
    out = image
    pads = [(0, 0)]
    slices = [slice(None)]
    for dim, want in zip(image.shape[1:], size):
        want = int(want)
        if dim >= want:
            start = (dim - want) // 2
            slices.append(slice(start, start + want))
            pads.append((0, 0))
        else:
            slices.append(slice(None))
            before = (want - dim) // 2
            pads.append((before, want - dim - before))
    out = out[tuple(slices)]
    if any(p != (0, 0) for p in pads):
        out = np.pad(out, pads, mode="constant", constant_values=float(image.min()))
    return np.ascontiguousarray(out, dtype=np.float32)


def case_seed(seed: int, case_id: str) -> int:
    """A 63-bit generator seed for one case, stable across runs, machines and case order."""
    digest = hashlib.sha256(f"{int(seed)}:{case_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def resolve_device(device: Optional[str]):
    """``devices.resolve_device`` with the CPU as the default (scoring is cheap)."""
    from ..devices import resolve_device as _resolve

    return _resolve(device or "cpu")


def score_volumes(volumes: Sequence, case_ids: Sequence[str], encoder, head, pretext, *, runs: int, k: int,
                  views_per_batch: int, seed: int, adaptive: bool = True, rule: Optional[AdaptiveRule] = None,
                  reporter=None, task: Optional[str] = None, device=None, paired: bool = False) -> ScoreResult:
    """SSL losses of every case, R runs each (fixed) or fewer (adaptive).

    Args:
        volumes: N tensors or arrays (C, X, Y, Z), all the same size.
        case_ids: N ids (seed the per-case generators).
        encoder, head: M0's encoder and SSL head (put in eval mode here).
        pretext: object with ``loss(encoder, head, volumes (B, C, X, Y, Z), generator, n_views)
            -> Tensor (B, n_views)``.
        runs: R, the run budget per case.
        k: buffer size (the adaptive rule separates the k lowest means from the rest).
        views_per_batch: views per forward pass (rounds have this many views; the last
            round of a case may have fewer so that no case exceeds R).
        seed: base seed.
        adaptive: stop cases early by ``rule`` (default ``AdaptiveRule()``).
        reporter: progress (stage "select") and cancel points; ``None`` = silent.
        paired: common random numbers: every case's generator gets the same seed, so view j
            of every case uses the same random mask / crop (a variance-reduction experiment
            of the benchmark; the product scores unpaired).

    Raises:
        ValueError: ``volumes`` and ``case_ids`` differ in length, or R, k or views < 1.
        errors.Cancelled: the reporter asked to stop.
    """
    import torch

    if len(volumes) != len(case_ids):
        raise ValueError(f"{len(volumes)} volumes but {len(case_ids)} case ids")
    if int(runs) < 1 or int(k) < 1 or int(views_per_batch) < 1:
        raise ValueError(f"runs, k and views_per_batch must be >= 1, got {runs}, {k}, {views_per_batch}")
    rule = rule or AdaptiveRule()
    device = device or torch.device("cpu")
    n, runs, views = len(case_ids), int(runs), int(views_per_batch)
    encoder.to(device).eval()
    head.to(device).eval()
    gens = []
    for cid in case_ids:
        g = torch.Generator()  # CPU: the pretexts draw on it and move draws to ``device``
        g.manual_seed(case_seed(seed, "" if paired else cid))
        gens.append(g)
    tensors = [torch.as_tensor(np.asarray(v, dtype=np.float32)).unsqueeze(0) for v in volumes]
    result = CaseRuns(n)
    passes = calls = 0
    total = n * runs
    last_report = 0.0
    with torch.no_grad():
        while True:
            counts = result.counts
            if adaptive:
                todo = active_mask(result, k, runs, rule)
            else:
                todo = counts < runs
            if not todo.any():
                break
            for i in np.flatnonzero(todo):
                m = min(views, runs - int(counts[i]))
                losses = pretext.loss(encoder, head, tensors[i].to(device), gens[i], m)
                result.add(int(i), losses.detach().float().cpu().numpy().reshape(-1)[:m])
                passes += m
                calls += 1
                if reporter is not None:
                    reporter.check_cancel()
                    now = time.monotonic()
                    if now - last_report >= _REPORT_EVERY_S or passes == total:
                        last_report = now
                        reporter.progress("select", task, min(passes, total), total,
                                          message=f"{int(todo.sum())} of {n} cases still sampled")
    if reporter is not None and passes < total:  # adaptive: close the bar (fixed R already reported total)
        reporter.progress("select", task, total, total, message=f"{passes} SSL loss evaluations")
    return ScoreResult(result, passes, calls)


def rank_cases(case_ids: Sequence[str], means: np.ndarray) -> list[str]:
    """Case ids by ascending mean loss, ties broken by id (deterministic)."""
    order = sorted(range(len(case_ids)), key=lambda i: (float(means[i]), str(case_ids[i])))
    return [case_ids[i] for i in order]


def random_selection(case_ids: Sequence[str], k: int, seed: int, task: str) -> list[str]:
    """K ids drawn uniformly without replacement, seeded by ``(seed, task)``; draw order kept."""
    digest = hashlib.sha256(f"{int(seed)}:{task}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    pool = sorted(case_ids)
    return [pool[i] for i in rng.permutation(len(pool))[: int(k)]]


def _meta_value(metadata: Mapping, key: str):
    value = metadata.get(key)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def foundation_patch_size(metadata: Mapping, fallback: Sequence[int]) -> tuple:
    """M0's pre-training input size from its metadata (``patch_size`` or ``preprocess.patch_size``)."""
    size = _meta_value(metadata, "patch_size")
    if size is None:
        pre = _meta_value(metadata, "preprocess")
        if isinstance(pre, Mapping):
            size = pre.get("patch_size")
    if size is None:
        size = fallback
    return tuple(int(s) for s in size)


def snap_size(size: Sequence[int], multiple: Sequence[int]) -> tuple:
    """``size`` rounded down to multiples of ``multiple`` per axis (at least one multiple)."""
    return tuple(max(int(m), int(s) // int(m) * int(m)) for s, m in zip(size, multiple))


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def select_task(ws, task_name: str, reporter=None, device: str = "cpu", k: Optional[int] = None,
                runs: Optional[int] = None, method: Optional[str] = None, seed: Optional[int] = None,
                adaptive: Optional[bool] = None, rule: Optional[AdaptiveRule] = None, ssl_head: Optional[str] = None,
                fit_steps: Optional[int] = None) -> dict:
    """Choose task ``task_name``'s buffer and write ``buffer.json`` (+ ``buffer_timing.json``).

    ``None`` arguments come from ``ws.config.selection`` (and ``ws.config.seed``). K larger
    than the training set is clamped to it with a warning through ``reporter``. Sets the task
    status to ``"selected"``. The caller holds the workspace lock (``ws.lock``).

    MDS scores with M0's own SSL head (``ssl_head=None`` or ``"foundation"``); when M0 has none
    it refuses (``InputError``, nothing written) unless ``ssl_head`` is ``"fit"`` (a fresh head
    fitted on the frozen M0 for ``fit_steps`` steps) or ``"random"`` (an untrained head); see
    ``selection.ssl_head``. The head used is recorded under ``"ssl_head"`` in the manifest.

    Returns:
        The manifest dict (as written to ``WS/tasks/<task>/buffer.json``).

    Raises:
        InputError: unknown task, task without training cases or already trained, k or
            runs < 1, unknown method, missing or unreadable foundation model, bad device, an
            M0 without SSL head and no explicit ``ssl_head`` choice.
        errors.Cancelled: the reporter asked to stop (nothing is written).
    """
    from ..jobs.reporter import NullReporter

    reporter = reporter or NullReporter()
    t0 = time.perf_counter()
    record = ws.task(task_name)  # InputError for an unknown task
    cfg = ws.task_config(task_name).selection
    method = method or cfg.method
    if method not in ("mds", "random"):
        raise InputError("--method", f"must be 'mds' or 'random', got {method!r}")
    seed = int(ws.config.seed if seed is None else seed)
    runs = int(cfg.runs if runs is None else runs)
    adaptive = bool(cfg.adaptive if adaptive is None else adaptive)
    if runs < 1:
        raise InputError("--runs", f"must be >= 1, got {runs}")
    if k is not None and int(k) < 1:
        raise InputError("--k", f"must be >= 1, got {k}")
    train_ids = list(record["split"]["train"])
    if not train_ids:
        raise InputError(ws.task_dir(task_name) / "task.json", "the task has no training cases to select from")
    n = len(train_ids)
    if k is not None and int(k) > n:
        reporter.log(f"--k {k} is larger than the {n} training cases of {task_name}; using k={n}", level="warning",
                     stage="select", task=task_name)
    k_eff = min(int(k), n) if k is not None else cfg.k_for(n)
    if record.get("status") in ("training", "done"):
        raise InputError("--task", f"task {task_name!r} is already {record['status']} with its buffer; "
                         "re-selecting would change a buffer that later tasks were trained with")
    timing = {"device": "none", "batched_calls": 0}

    if method == "random":
        selected = random_selection(train_ids, k_eff, seed, task_name)
        manifest = build_manifest(task=task_name, method="random", seed=seed, k=k_eff, runs_requested=0,
                                  adaptive=False, pretext=None, case_ids=train_ids, means=None, stds=None,
                                  counts=None, selected=selected, forward_passes=0)
        passes = 0
    else:
        import torch

        from ..config import ArchConfig
        from ..models.foundation import load_foundation
        from ..models.ssl import get_pretext
        from .ssl_head import HEAD_WORDS, make_scoring_head, plan_ssl_head

        dev = resolve_device(device)
        if not ws.foundation_path.exists():
            raise InputError(ws.foundation_path, "foundation model missing; re-run 'medseqft init'")
        encoder, head, metadata = load_foundation(ws.foundation_path)
        # M0 without an SSL head: refused here, before anything is read, cached or written
        plan = plan_ssl_head(ws, task_name, head, metadata, ssl_head, cfg.pretext)
        arch = ArchConfig.from_dict(metadata["arch"], where=f"{ws.foundation_path} metadata.arch")
        multiple = get_pretext(plan.pretext, plan.options or None).input_multiple(arch)
        size = snap_size(foundation_patch_size(metadata, ws.task_config(task_name).preprocess.patch_size), multiple)
        prepared = dict(ws.prepared(task_name, "train"))
        volumes = [fit_volume(prepared[cid].image, size) for cid in train_ids]
        rule = rule or AdaptiveRule()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # anything in the pretext that uses the global RNG
            pretext, head, head_record = make_scoring_head(plan, ws, task_name, arch, encoder, head, metadata, volumes,
                                                           seed=seed, steps=fit_steps, reporter=reporter, device=dev)
            pretext_name = plan.pretext
            reporter.log(f"scoring {n} training cases of {task_name} with the {pretext_name} loss of "
                         f"{'M0' if plan.choice == 'foundation' else 'a ' + HEAD_WORDS[plan.choice] + ' head on M0'} "
                         f"(R={runs}, {'adaptive' if adaptive else 'fixed'}, input {size})", stage="select", task=task_name)
            scored = score_volumes(volumes, train_ids, encoder, head, pretext, runs=runs, k=k_eff,
                                   views_per_batch=cfg.views_per_batch, seed=seed, adaptive=adaptive, rule=rule,
                                   reporter=reporter, task=task_name, device=dev)
        means, stds, counts = scored.runs.means, scored.runs.stds, scored.runs.counts
        selected = rank_cases(train_ids, means)[:k_eff]
        passes = scored.forward_passes
        extra = {
            "views_per_batch": int(cfg.views_per_batch),
            "input_size": list(size),
            "adaptive_rule": rule.to_dict() if adaptive else None,
            "foundation_sha256": _file_sha256(ws.foundation_path),
            "ssl_head": head_record,
        }
        manifest = build_manifest(task=task_name, method="mds", seed=seed, k=k_eff, runs_requested=runs,
                                  adaptive=adaptive, pretext=pretext_name, case_ids=train_ids, means=means,
                                  stds=stds, counts=counts, selected=selected, forward_passes=passes, extra=extra)
        timing = {"device": str(dev), "batched_calls": scored.batched_calls}
    timing.update({"wall_s": round(time.perf_counter() - t0, 3), "forward_passes": passes})
    write_manifest(ws.task_dir(task_name), manifest, timing)
    ws.set_task_status(task_name, "selected")
    reporter.log(f"{task_name}: buffer of {k_eff} of {n} cases written to {manifest_path(ws.task_dir(task_name))}",
                 stage="select", task=task_name)
    return manifest
