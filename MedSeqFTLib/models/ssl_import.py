"""Recognise the SSL head inside a published checkpoint and map it to one of our pretexts.

Layouts (key names after ``checkpoint.normalise_keys``: ``module.``/``backbone.`` stripped):

* **VoCo SSL head** (VoCo_B/L/H_SSL_head.pt, Luffy03/Large-Scale-Medical): ``student.layer{1,2,3}.0.*``
  and ``teacher.layer{1,2,3}.0.*`` -> pretext ``"voco_v2"``; the first layer reads 24 x feature_size
  values (1152 / 2304 / 4608 for B / L / H); scoring region 192 x 192 x 64 voxels.
* **MONAI Swin SSL head** (a training checkpoint of research-contributions ``SwinUNETR/Pretrain``):
  ``rotation_head.*``, ``contrastive_head.*``, ``conv.*`` -> pretext ``"monai_ssl"`` with the
  reconstruction variant read off the ``conv`` keys; dim = 16 x feature_size; scoring input 96^3.

Keys are kept exactly as published, so a real file's head loads strictly into our module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ArchConfig
from ..errors import InputError

__all__ = ["ImportedHead", "find_ssl_head", "VOCO_REGION", "MONAI_SSL_ROI"]

VOCO_REGION = (192, 192, 64)  # VoCo: 3 x 3 base cubes of 64^3
MONAI_SSL_ROI = (96, 96, 96)  # research-contributions SwinUNETR/Pretrain roi
_VOCO_LAYERS = ("layer1.0.weight", "layer1.0.bias", "layer2.0.weight", "layer2.0.bias", "layer3.0.weight", "layer3.0.bias")


@dataclass
class ImportedHead:
    """An SSL head found in a checkpoint.

    Attributes:
        pretext: our pretext name (``"voco_v2"`` or ``"monai_ssl"``).
        state: the head's tensors under our (= the published) names.
        options: pretext settings that shape the head (``ssl_options`` in the foundation file).
        patch_size: the input size the head was trained on (MDS scores at it).
        layout: human-readable name of the layout.
        keys: the checkpoint keys that belong to the head.
    """

    pretext: str
    state: dict
    options: dict
    patch_size: tuple
    layout: str
    keys: list = field(default_factory=list)


def _voco(state: dict, arch: ArchConfig, where) -> ImportedHead | None:
    wanted = [f"{part}.{name}" for part in ("student", "teacher") for name in _VOCO_LAYERS]
    if not all(k in state for k in wanted):
        return None
    w1, w3 = state["student.layer1.0.weight"], state["student.layer3.0.weight"]
    expect = 24 * int(arch.feature_size)
    if arch.name != "swin_unetr" or w1.ndim != 2 or w1.shape[1] != expect:
        raise InputError(where, f"VoCo SSL head reads {w1.shape[1] if w1.ndim == 2 else '?'} features, but a {arch.name} "
                                f"encoder of feature size {arch.feature_size} gives {expect} (24 x feature size): "
                                "pass the matching --arch/--feature-size (B 48, L 96, H 192)")
    return ImportedHead("voco_v2", {k: state[k] for k in wanted},
                        {"hidden": int(w1.shape[0]), "out_dim": int(w3.shape[0])}, VOCO_REGION,
                        "VoCo SSL head (student/teacher projections)", wanted)


def _monai(state: dict, arch: ArchConfig, where) -> ImportedHead | None:
    head_keys = ["rotation_head.weight", "rotation_head.bias", "contrastive_head.weight", "contrastive_head.bias"]
    conv_keys = sorted(k for k in state if k.startswith("conv."))
    if not all(k in state for k in head_keys) or not conv_keys:
        return None
    if "conv.weight" in state:
        upsample = "large_kernel_deconv"
    elif "conv.20.weight" in state:
        upsample = "vae"
    elif "conv.4.weight" in state:
        upsample = "deconv"
    else:
        raise InputError(where, f"unknown MONAI SSL reconstruction layout (conv keys {conv_keys[:4]})")
    dim = int(state["rotation_head.weight"].shape[1])
    if arch.name != "swin_unetr" or dim != 16 * int(arch.feature_size):
        raise InputError(where, f"MONAI SSL head reads {dim} channels, but a {arch.name} encoder of feature size "
                                f"{arch.feature_size} gives {16 * int(arch.feature_size)} (16 x feature size)")
    keys = head_keys + conv_keys
    return ImportedHead("monai_ssl", {k: state[k] for k in keys}, {"upsample": upsample}, MONAI_SSL_ROI,
                        f"MONAI Swin SSL head (rotation, contrastive, {upsample} reconstruction)", keys)


def find_ssl_head(state: dict, arch: ArchConfig, where="checkpoint") -> ImportedHead | None:
    """The SSL head in a normalised foreign state dict, or ``None`` when it has none we know.

    Raises:
        InputError: a known head layout whose sizes do not fit ``arch``.
    """
    for finder in (_voco, _monai):
        found = finder(state, arch, where)
        if found is not None:
            return found
    return None
