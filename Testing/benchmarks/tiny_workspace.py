"""The tiniest real workspace for kill/resume and determinism runs (imported by file location).

2 phantom tasks of 4 training cases each (size-24 volumes at 3 mm), an M0 pretrained for 2
steps (small_unet, feature size 4), 16^3 patches, batch 1, 10 iterations per stage, MDS with 4
runs and k=1 (``refine`` selects the buffers itself). Building it takes a few seconds on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

ITERATIONS = 10


def make_tiny_workspace(folder: Path, seed: int = 0, m0: Path | None = None) -> Path:
    """Create ``folder/ws`` (and ``folder/data``, ``folder/m0.safetensors`` unless ``m0`` names an
    existing foundation file to use); returns the workspace path."""
    import torch

    from MedSeqFTLib.config import ArchConfig, PreprocessConfig
    from MedSeqFTLib.data.phantoms import generate_phantoms
    from MedSeqFTLib.demo_foundation import build_foundation
    from MedSeqFTLib.sequence.init import init_workspace

    torch.set_num_threads(1)
    folder = Path(folder)
    data = generate_phantoms(folder / "data", tasks=2, cases=4, seed=11 + seed, size=24, test_cases=0)
    if m0 is None:
        m0 = folder / "m0.safetensors"
        pre = PreprocessConfig(spacing=(3.0, 3.0, 3.0), patch_size=(16, 16, 16))
        build_foundation(m0, [data[0]], arch=ArchConfig(name="small_unet", feature_size=4), steps=2, seed=1,
                         patch_size=(16, 16, 16), batch_size=1, preprocess=pre)
    ws_dir = folder / "ws"
    ws, _ = init_workspace(ws_dir, str(m0), seed=seed)
    with ws.lock("test"):
        cfg = ws.config
        r = cfg.retention
        stage = lambda s: s.replace(iterations=ITERATIONS, batch_size=1)  # noqa: E731
        # the paper's method (the CPU presets switch two parts of it off, see presets.py): the
        # tests exercise task 1's LoRA-KD and the independent KD-FFT updates
        cfg.retention = r.replace(fft=stage(r.fft), kd_fft=stage(r.kd_fft), lora_kd=stage(r.lora_kd),
                                  first_task_lora=True, kd_update="independent")
        cfg.preprocess = cfg.preprocess.replace(patch_size=(16, 16, 16))
        cfg.selection = cfg.selection.replace(runs=4, k=1, views_per_batch=2)
        cfg.checkpoint_every_s = 0.2
        ws.save_config(cfg)
        # every task takes the tiny patch and batch over what its plan would choose
        ws.update_manifest(lambda m: m.__setitem__("overrides", {
            "preprocess.patch_size": [16, 16, 16], **{f"retention.{s}.batch_size": 1 for s in ("fft", "kd_fft", "lora_kd")}}))
        for d in data:
            ws.add_task(d)
    return ws_dir
