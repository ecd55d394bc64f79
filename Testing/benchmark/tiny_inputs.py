"""The benchmark tests' inputs: a tiny random small-U-Net M0 and two 4-case phantom tasks."""

from pathlib import Path


def make_tiny_inputs(root: Path):
    """``(m0 path, [dataset folder, dataset folder])`` under ``root`` (small U-Net f 4, 16^3, 24^3 phantoms)."""
    import torch

    from MedSeqFTLib.config import ArchConfig, PreprocessConfig
    from MedSeqFTLib.data.phantoms import generate_phantoms
    from MedSeqFTLib.models.foundation import save_foundation
    from MedSeqFTLib.models.registry import build_encoder, build_ssl_head

    torch.set_num_threads(1)
    torch.manual_seed(0)
    arch = ArchConfig(name="small_unet", feature_size=4)
    m0 = save_foundation(root / "m0.safetensors", build_encoder(arch), build_ssl_head(arch, "masked"), {
        "arch": arch.to_dict(), "ssl_pretext": "masked",
        "preprocess": PreprocessConfig(spacing=(3.0, 3.0, 3.0), patch_size=(16, 16, 16)).to_dict()})
    datasets = [Path(d) for d in generate_phantoms(root / "data", tasks=2, cases=4, seed=0, size=24, test_cases=0)]
    return Path(m0), datasets
