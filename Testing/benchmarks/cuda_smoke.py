"""Smoke run of the product's device code paths (not a test): refine, cancel, resume and predict.

    PYTHONPATH=. python Testing/benchmarks/cuda_smoke.py --device cuda [--json smoke.json]

On the tiny workspace of ``tiny_workspace.py`` (2 phantom tasks, small_unet, 16^3 patches) with
task 1's FFT lengthened to ``--fft-iters`` steps (``--stage-iters``: the later stages too), through the real command line
(``python -m MedSeqFTLib ...`` subprocesses):

1. ``refine --device DEV`` is started and ``cancel``-ed as soon as task 1's FFT wrote a periodic
   checkpoint; the checkpoint must load with ``torch.load(weights_only=True)`` and, on CUDA, hold
   the CUDA RNG state (``rng_cuda``);
2. ``refine --device DEV --resume`` must finish both tasks (status ``done``), and every stage in
   ``record.json`` must report its peak memory of the right kind (``cuda_max_allocated`` on CUDA);
3. ``predict --device DEV`` on a task-2 image must write a label volume on the input's grid with
   only the task's label values; with a CUDA device it is compared with ``predict --device cpu``.

Prints one line per check and exits 1 when one fails. Takes about a minute on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cli(*args, wait: bool = True):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-m", "MedSeqFTLib", *[str(a) for a in args]]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def main(argv=None) -> int:
    import numpy as np
    import SimpleITK as sitk
    import torch

    from MedSeqFTLib.io.atomic import atomic_write_json
    from MedSeqFTLib.sequence.workspace import Workspace
    from tiny_workspace import make_tiny_workspace

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--fft-iters", type=int, default=400, help="task 1 FFT length (long enough to cancel mid-stage)")
    p.add_argument("--stage-iters", type=int, default=None,
                   help="KD-FFT length (LoRA-KD: half of it); default the tiny workspace's 10")
    p.add_argument("--json", type=Path, default=None, help="write the check results here")
    p.add_argument("--folder", type=Path, default=None, help="work folder (default: a new temporary one)")
    a = p.parse_args(argv)
    folder = a.folder or Path(tempfile.mkdtemp(prefix="medseqft_smoke_"))
    cuda = a.device.startswith("cuda")
    checks, info = [], {"device": a.device, "folder": str(folder)}

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)

    t0 = time.perf_counter()
    ws_dir = make_tiny_workspace(folder)
    ws = Workspace.open(ws_dir)
    with ws.lock("smoke"):
        cfg = ws.config
        r = cfg.retention
        cfg.retention = r.replace(fft=r.fft.replace(iterations=a.fft_iters))
        if a.stage_iters:
            cfg.retention = cfg.retention.replace(kd_fft=r.kd_fft.replace(iterations=a.stage_iters),
                                                  lora_kd=r.lora_kd.replace(iterations=max(1, a.stage_iters // 2)))
        ws.save_config(cfg)
    tasks = ws.task_names()
    info["build_s"] = round(time.perf_counter() - t0, 1)

    # 1. start, cancel at the first periodic checkpoint of task 1's FFT
    ckpt = ws.task_dir(tasks[0]) / "stages" / "fft" / "checkpoint.pt"
    proc = _cli("refine", ws_dir, "--device", a.device, wait=False)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    cancel = _cli("cancel", ws_dir, "--timeout", "60")
    out, _ = proc.communicate(timeout=120)
    check("refine cancelled mid-stage (exit 3)", proc.returncode == 3 and cancel.returncode == 0,
          f"refine rc {proc.returncode}, cancel rc {cancel.returncode}: {cancel.stdout.strip()}")
    if proc.returncode not in (0, 3):
        print(out[-3000:])
    if ckpt.exists():
        payload = torch.load(ckpt, map_location="cpu", weights_only=True)
        step = int(payload["step"])
        check("checkpoint loads with weights_only=True, mid-stage", 0 < step < a.fft_iters, f"step {step}/{a.fft_iters}")
        if cuda:
            rng = payload.get("rng_cuda")
            check("checkpoint holds the CUDA RNG state", rng is not None and rng.dtype == torch.uint8 and rng.numel() > 0,
                  f"rng_cuda {None if rng is None else tuple(rng.shape)}")
    else:
        check("checkpoint written before the cancel", False, str(ckpt))

    # 2. resume to the end
    t1 = time.perf_counter()
    res = _cli("refine", ws_dir, "--device", a.device, "--resume")
    info["resume_s"] = round(time.perf_counter() - t1, 1)
    check("refine --resume finished (exit 0)", res.returncode == 0, f"rc {res.returncode} in {info['resume_s']} s")
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:])
    ws = Workspace.open(ws_dir)
    want_kind = "cuda_max_allocated" if cuda else "cpu_peak_rss"
    for name in tasks:
        check(f"task {name} done", ws.task(name)["status"] == "done", ws.task(name)["status"])
        rec_path = ws.task_dir(name) / "model" / "record.json"
        if not rec_path.exists():
            check(f"task {name} record.json", False, "missing")
            continue
        stages = json.loads(rec_path.read_text()).get("stages", {})
        for stage, log in stages.items():
            if "peak_memory_bytes" not in log:
                continue
            mib = log["peak_memory_bytes"] / 2**20
            info[f"{name}.{stage}"] = {"peak_MiB": round(mib, 1), "kind": log.get("memory_kind"), "time_s": log.get("time_s"),
                                       "iterations": log.get("iterations"), "runs": log.get("runs")}
            check(f"task {name} {stage} peak memory", log.get("memory_kind") == want_kind and log["peak_memory_bytes"] > 0,
                  f"{mib:.1f} MiB ({log.get('memory_kind')}), {log.get('iterations')} it, runs {log.get('runs')}")

    # 3. predict with the last task's model, on the device and (for comparison) on the CPU
    image = Path(ws.task(tasks[-1])["cases"][0]["images"][0])
    labels = set(int(v) for v in ws.labels(tasks[-1]).values()) | {0}
    preds = {}
    for dev in ([a.device, "cpu"] if cuda else [a.device]):
        out_dir = folder / f"pred_{dev.replace(':', '_')}"
        r = _cli("predict", ws_dir, "--task", tasks[-1], "--out", out_dir, "--device", dev, image)
        files = [Path(s) for s in r.stdout.split() if s.strip() and Path(s).exists()]
        ok = r.returncode == 0 and len(files) == 1
        if not ok:
            check(f"predict --device {dev}", False, f"rc {r.returncode}: {r.stderr.strip()[-500:]}")
            continue
        pred, ref = sitk.ReadImage(str(files[0])), sitk.ReadImage(str(image))
        arr = sitk.GetArrayFromImage(pred)
        values = set(np.unique(arr).tolist())
        check(f"predict --device {dev}", pred.GetSize() == ref.GetSize() and values <= labels,
              f"{files[0].name} size {pred.GetSize()} values {sorted(values)}")
        preds[dev] = arr
    if len(preds) == 2:
        agree = float((preds[a.device] == preds["cpu"]).mean())
        info["predict_agreement_vs_cpu"] = agree
        check(f"{a.device} and cpu predictions agree", agree >= 0.99, f"{100 * agree:.3f}% of voxels")
    info["total_s"] = round(time.perf_counter() - t0, 1)
    failed = [c for c in checks if not c["ok"]]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed in {info['total_s']} s")
    if a.json:
        atomic_write_json(a.json, {"checks": checks, "info": info})
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
