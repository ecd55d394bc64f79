"""MONAI Swin SSL heads and loss (``"monai_ssl"``): rotation, contrastive and reconstruction.

Read from Project-MONAI/research-contributions ``SwinUNETR/Pretrain`` (``models/ssl_head.py``,
``losses/loss.py``, ``utils/ops.py``; Tang et al., the pre-training of ``model_swinvit.pt``) and
re-written here. Head tensors of a training checkpoint of that code (after ``module.`` is stripped)::

    rotation_head.{weight, bias}       Linear(16f, 4)     on the first token of the deepest map
    contrastive_head.{weight, bias}    Linear(16f, 512)   on the second token
    conv.*                             reconstruction to input size: "vae" (default; Conv3d at
                                       conv.0/4/8/12/16/20 with InstanceNorm, LeakyReLU, 2x
                                       trilinear upsampling between), "deconv" (five 2x
                                       ConvTranspose3d, conv.0..4) or "large_kernel_deconv"
                                       (one 32x ConvTranspose3d, conv.weight)

The published ``model_swinvit.pt`` holds the Swin transformer only: no head, so MDS asks for one.
Features: the SSL network is a SwinUNETR *v1* transformer, so the deepest map is computed without
SwinUNETR-v2's ``layers{n}c`` blocks (``swin_v1_deepest``) - exactly what the heads were trained on.

One view (one training step of that code on a batch of ``copies`` copies of the volume):

* x1, x2 = each copy rotated by k * 90 degrees in its last two axes, k uniform in {0..3}, drawn
  separately for x1 and x2 (``rot_rand``); the targets of the rotation head;
* x1_aug, x2_aug = cut-out: random blocks (side 5-25 % of the axis) filled with min-max-scaled
  noise until a uniform(0, 30 %) share of the voxels is covered, then, if a randomly drawn other
  copy is not itself, blocks copied from it (``aug_rand``/``patch_rand_drop``);
* loss = CE(rotation logits, k) + NT-Xent(contrastive x1_aug vs x2_aug, temperature 0.5, the
  other copies as negatives) + L1(reconstruction of x_aug, x) (weights 1, 1, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ArchConfig
from ..errors import InputError
from .ssl import Pretext, check_volumes

__all__ = ["MonaiSSLPretext", "MonaiSSLHead", "MonaiDraw", "UPSAMPLERS", "swin_v1_deepest", "patch_rand_drop",
           "nt_xent"]

UPSAMPLERS = ("vae", "deconv", "large_kernel_deconv")


def _upsampler(kind: str, dim: int, out_channels: int) -> nn.Module:
    if kind == "large_kernel_deconv":
        return nn.ConvTranspose3d(dim, out_channels, kernel_size=32, stride=32)
    if kind == "deconv":
        chans = [dim, dim // 2, dim // 4, dim // 8, dim // 16, out_channels]
        return nn.Sequential(*[nn.ConvTranspose3d(a, b, kernel_size=2, stride=2) for a, b in zip(chans[:-1], chans[1:])])
    if kind == "vae":
        layers: list[nn.Module] = []
        chans = [dim, dim // 2, dim // 4, dim // 8, dim // 16, dim // 16]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv3d(a, b, kernel_size=3, stride=1, padding=1), nn.InstanceNorm3d(b), nn.LeakyReLU(),
                       nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)]
        layers.append(nn.Conv3d(dim // 16, out_channels, kernel_size=1, stride=1))
        return nn.Sequential(*layers)
    raise InputError("monai_ssl upsample", f"must be one of {list(UPSAMPLERS)}, got {kind!r}")


class MonaiSSLHead(nn.Module):
    """``forward(x4 (N, dim, h, w, d)) -> (rot (N, 4), contrastive (N, 512), recon (N, C, 32h, 32w, 32d))``.

    Needs at least two tokens (h * w * d >= 2): rotation reads token 0, contrastive token 1.
    """

    def __init__(self, dim: int, out_channels: int, upsample: str = "vae"):
        super().__init__()
        self.rotation_pre = nn.Identity()
        self.rotation_head = nn.Linear(dim, 4)
        self.contrastive_pre = nn.Identity()
        self.contrastive_head = nn.Linear(dim, 512)
        self.conv = _upsampler(upsample, dim, out_channels)

    def forward(self, x4: torch.Tensor):
        tokens = x4.flatten(2).transpose(1, 2)
        rot = self.rotation_head(self.rotation_pre(tokens[:, 0]))
        contrastive = self.contrastive_head(self.contrastive_pre(tokens[:, 1]))
        return rot, contrastive, self.conv(x4)


def swin_v1_deepest(swin_vit: nn.Module, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """MONAI ``SwinTransformer.forward(x)[4]`` as a v1 network computes it (``layers{n}c`` skipped).

    Args:
        swin_vit: a MONAI ``SwinTransformer`` (v1 or v2; v2's extra blocks are not used).
        x: (N, C, X, Y, Z), sizes multiples of 32.

    Returns:
        (N, 16f, X/32, Y/32, Z/32), layer-normed over channels when ``normalize``.
    """
    h = swin_vit.pos_drop(swin_vit.patch_embed(x))
    for layer in (swin_vit.layers1, swin_vit.layers2, swin_vit.layers3, swin_vit.layers4):
        h = layer[0](h.contiguous())
    return swin_vit.proj_out(h, normalize)


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """numpy's ``randint(low, high)`` (high exclusive) from a torch generator."""
    return int(torch.randint(int(low), int(high), (1,), generator=generator))


def patch_rand_drop(x: torch.Tensor, generator: torch.Generator, x_rep: torch.Tensor | None = None,
                    max_drop: float = 0.3, max_block: float = 0.25, tol: float = 0.05) -> torch.Tensor:
    """MONAI SSL's cut-out on one sample x (C, H, W, D), in place; returns x.

    Blocks are filled with noise scaled to [0, 1] (or copied from ``x_rep``) until at least
    uniform(0, ``max_drop``) of the voxels were covered (overlaps count twice, as in MONAI).
    """
    c, h, w, d = x.shape
    n_drop = float(torch.rand((), generator=generator)) * max_drop * h * w * d
    big = (int(h * max_block), int(w * max_block), int(d * max_block))
    tl = (int(tol * h), int(tol * w), int(tol * d))
    total = 0
    while total < n_drop:
        r0, c0, s0 = _randint(generator, 0, h - tl[0]), _randint(generator, 0, w - tl[1]), _randint(generator, 0, d - tl[2])
        r1 = min(_randint(generator, tl[0], big[0]) + r0, h)
        c1 = min(_randint(generator, tl[1], big[1]) + c0, w)
        s1 = min(_randint(generator, tl[2], big[2]) + s0, d)
        if x_rep is None:
            noise = torch.randn((c, r1 - r0, c1 - c0, s1 - s0), generator=generator).to(x.device, x.dtype)
            span = noise.max() - noise.min()
            # MONAI divides by the span; a 1-voxel block (span 0) would give NaN there
            x[:, r0:r1, c0:c1, s0:s1] = (noise - noise.min()) / span if span > 0 else 0.5
        else:
            x[:, r0:r1, c0:c1, s0:s1] = x_rep[:, r0:r1, c0:c1, s0:s1]
        total += (r1 - r0) * (c1 - c0) * (s1 - s0)
    return x


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """MONAI SSL's ``Contrast`` loss per group: z1, z2 (G, N, D) -> (G,).

    Pair k of z1 and z2 is positive; the other 2N - 2 embeddings of the group are negatives.
    """
    n = z1.shape[1]
    z = torch.cat([F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)], dim=1)
    sim = F.cosine_similarity(z.unsqueeze(2), z.unsqueeze(1), dim=-1)  # (G, 2N, 2N)
    idx = torch.arange(n, device=z.device)
    pos = torch.cat([sim[:, idx, idx + n], sim[:, idx + n, idx]], dim=1)
    off_diag = ~torch.eye(2 * n, dtype=torch.bool, device=z.device)
    denom = (torch.exp(sim / temperature) * off_diag).sum(dim=2)
    return -torch.log(torch.exp(pos / temperature) / denom).sum(dim=1) / (2 * n)


@dataclass
class MonaiDraw:
    """Inputs and targets of B * V views of ``copies`` copies each.

    Attributes:
        x1, x2: (B, V, copies, C, X, Y, Z) rotated volumes (reconstruction targets).
        rot1, rot2: (B, V, copies) rotation classes k.
        x1_aug, x2_aug: the cut-out versions the network sees.
    """

    x1: torch.Tensor
    x2: torch.Tensor
    rot1: torch.Tensor
    rot2: torch.Tensor
    x1_aug: torch.Tensor
    x2_aug: torch.Tensor


class MonaiSSLPretext(Pretext):
    """MONAI Swin SSL (see the module docstring).

    Args:
        copies: volumes per view batch (MONAI: ``batch_size * sw_batch_size`` crops; here copies of
            the case, >= 2 so that NT-Xent has negatives).
        upsample: reconstruction head variant (``UPSAMPLERS``).
        temperature: NT-Xent temperature (0.5).
    """

    name = "monai_ssl"

    def __init__(self, copies: int = 2, upsample: str = "vae", temperature: float = 0.5):
        if int(copies) < 2:
            raise InputError("monai_ssl pretext", f"copies must be >= 2 (NT-Xent needs negatives), got {copies}")
        if upsample not in UPSAMPLERS:
            raise InputError("monai_ssl upsample", f"must be one of {list(UPSAMPLERS)}, got {upsample!r}")
        self.copies = int(copies)
        self.upsample = upsample
        self.temperature = float(temperature)

    def options(self) -> dict:
        return {"upsample": self.upsample}

    @staticmethod
    def _check_arch(arch: ArchConfig) -> None:
        if arch.name != "swin_unetr":
            raise InputError("monai_ssl pretext", f"needs the swin_unetr backbone, not {arch.name!r}")

    def build_head(self, arch: ArchConfig) -> nn.Module:
        self._check_arch(arch)
        return MonaiSSLHead(16 * int(arch.feature_size), int(arch.in_channels), self.upsample)

    def input_multiple(self, arch: ArchConfig) -> tuple[int, int, int]:
        self._check_arch(arch)
        return (32, 32, 32)

    def _rotate(self, x: torch.Tensor, generator: torch.Generator):
        ks = [_randint(generator, 0, 4) for _ in range(x.shape[0])]
        return torch.stack([torch.rot90(xi, k, dims=(2, 3)) for xi, k in zip(x, ks)]), torch.tensor(ks)

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = x.detach().clone()
        for i in range(out.shape[0]):
            patch_rand_drop(out[i], generator)
            j = _randint(generator, 0, out.shape[0])
            if j != i:
                patch_rand_drop(out[i], generator, out[j])
        return out

    def sample(self, volumes: torch.Tensor, n_views: int, generator: torch.Generator) -> MonaiDraw:
        """Rotations and cut-outs of ``n_views`` views of each volume (B, C, X, Y, Z)."""
        parts = {name: [] for name in ("x1", "x2", "rot1", "rot2", "x1_aug", "x2_aug")}
        for vol in volumes:
            for _ in range(int(n_views)):
                x = vol.unsqueeze(0).expand(self.copies, *vol.shape)
                x1, r1 = self._rotate(x, generator)
                x2, r2 = self._rotate(x, generator)
                for name, value in (("x1", x1), ("rot1", r1), ("x2", x2), ("rot2", r2)):
                    parts[name].append(value)
                parts["x1_aug"].append(self._augment(x1, generator))
                parts["x2_aug"].append(self._augment(x2, generator))
        b, v = volumes.shape[0], int(n_views)
        return MonaiDraw(**{k: torch.stack(p).view(b, v, *p[0].shape) for k, p in parts.items()})

    def loss(self, encoder, head, volumes, generator, n_views):
        """See ``Pretext.loss``; returns (B, n_views) MONAI SSL losses (rotation + contrastive + L1)."""
        check_volumes(volumes, (32, 32, 32), n_views, self.name)
        size = tuple(volumes.shape[2:])
        if size[1] != size[2]:
            raise InputError("monai_ssl pretext", f"rotation turns the last two axes: they must be equal, got {size}")
        if size[0] * size[1] * size[2] < 2 * 32 ** 3:
            raise InputError("monai_ssl pretext", f"volume {size} gives one token at 1/32; the heads need two")
        return self.loss_with_draw(encoder, head, self.sample(volumes, n_views, generator))

    def loss_with_draw(self, encoder, head, draw: MonaiDraw) -> torch.Tensor:
        """The losses of the views in ``draw`` (from ``sample``): (B, V)."""
        b, v, n = draw.rot1.shape
        shape = draw.x1.shape[3:]
        device = next(head.parameters()).device
        inputs = torch.cat([draw.x1_aug, draw.x2_aug], dim=2).reshape(b * v * 2 * n, *shape).to(device)
        rot, contrastive, recon = head(swin_v1_deepest(encoder.swinViT, inputs))
        g = b * v
        rots = torch.cat([draw.rot1, draw.rot2], dim=2).reshape(-1).to(device)
        rot_loss = F.cross_entropy(rot, rots, reduction="none").view(g, 2 * n).mean(dim=1)
        contrastive = contrastive.view(g, 2, n, -1)
        con_loss = nt_xent(contrastive[:, 0], contrastive[:, 1], self.temperature)
        target = torch.cat([draw.x1, draw.x2], dim=2).reshape(g, -1).to(device)
        rec_loss = (recon.reshape(g, -1) - target).abs().mean(dim=1)
        return (rot_loss + con_loss + rec_loss).view(b, v)
