"""VoCo's own SSL head and pretext loss (``"voco_v2"``): the VoCo_B/L/H_SSL_head checkpoints.

Read from the VoCo repository (Luffy03/Large-Scale-Medical, ``Self-supervised/models/voco_head.py``,
``utils/voco_trans.py``, ``utils/data_trans.py``; the TPAMI version whose checkpoints carry the head)
and re-written here. Checkpoint layout (after ``module.`` is stripped)::

    backbone.{swinViT, encoder1..4, encoder10}.*      the SwinUNETR-v2 encoder
    student.layer{1,2,3}.0.{weight, bias}             projection head, trained by gradient
    teacher.layer{1,2,3}.0.{weight, bias}             its EMA copy (momentum 0.9)

Each head is ``Linear(24f, 1024) - BatchNorm1d - ReLU - Linear(1024, 1024) - BatchNorm1d - ReLU -
Linear(1024, 1024)``; the batch norms have ``affine=False, track_running_stats=False``: no tensors,
always the statistics of the batch (here: of one view's crops and bases).

One view = VoCo's forward for one volume (batch size 1):

* region = the given volume (X, Y, Z) (VoCo: 192x192x64 at 1.5 mm); base cube (b = i * 3 + j) covers
  x in [i cx, (i+1) cx), y in [j cy, (j+1) cy), all z, with cx = X/3, cy = Y/3;
* ``crops`` random crops of the same size (VoCo ``sw_batch_size`` 2) at integer offsets
  ox in [0, X - cx), oy in [0, Y - cy) (VoCo draws the centre with ``randint(half, X - half)``);
  label[k, b] = area(crop_k and base_b) / area(crop_k);
* embedding e = concatenated global average pools of [enc0, enc1, enc2, enc3, dec4] (the encoder
  outputs without ``hidden_states_out[3]``), 24f values;
* student = proj_s(Dropout1d(0.2)(e)): ``Dropout1d`` on an (N, D) tensor zeroes whole rows (whole
  embeddings) and scales the others by 1/0.8; VoCo builds that module inside ``forward`` so it is
  active in eval mode too, which makes the loss stochastic; teacher = proj_t(e), no dropout;
* intra = ce(label, ReLU(cos(crop_stu, base_tea)));
  inter = ce(ReLU(cos(crop_tea, base_tea)), ReLU(cos(crop_stu, base_stu))) (VoCo pairs volume i
  with volume (i + 1) mod batch: with one volume that is the volume itself);
  reg = mean over base pairs i < j of ReLU(cos(base_stu_i, base_stu_j))^2;
  ce(l, p) = -sum(l log(1 - |l - p| + 1e-6)) / (sum(l) + 1e-6)
             - sum([l = 0] log(1 - p + 1e-6)) / (#[l = 0] + 1e-6);
* loss = intra + inter + reg.

Left out when scoring: the EMA teacher update VoCo runs inside ``forward`` (a training step: it
would change M0; ``after_step`` does it when a head is trained) and the training augmentations
(flips, rot90, intensity shifts; VoCo's ``aug=False`` path has none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ArchConfig
from ..errors import InputError
from .ssl import Pretext, check_volumes, random_uniform
from .ssl_voco import overlap_targets

__all__ = ["VoCoV2Pretext", "VoCoProjection", "VoCoSSLHead", "VoCoDraw", "VOCO_SCALES", "voco_ce", "group_batch_norm"]

VOCO_SCALES = (0, 1, 2, 3, 5)  # [enc0, enc1, enc2, enc3, dec4] of SwinEncoder's six outputs
_GRID = 3  # VoCo: 3 x 3 base cubes


def group_batch_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``BatchNorm1d(affine=False, track_running_stats=False)`` applied to each group on its own.

    Args:
        x: (G, N, D); statistics over the N rows of each group (biased variance, as BatchNorm).
    """
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


class VoCoProjection(nn.Module):
    """VoCo's ``projection_head``; ``forward(x (G, N, in_dim)) -> (G, N, out_dim)``, BN per group.

    The ``BatchNorm1d`` modules are kept (no tensors) so that parameter names are VoCo's
    (``layer1.0.weight``, ``layer2.0.weight``, ``layer3.0.weight``).
    """

    def __init__(self, in_dim: int, hidden: int = 1024, out_dim: int = 1024):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden, affine=False, track_running_stats=False),
                                    nn.ReLU())
        self.layer2 = nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden, affine=False, track_running_stats=False),
                                    nn.ReLU())
        self.layer3 = nn.Sequential(nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(group_batch_norm(self.layer1[0](x)))
        h = F.relu(group_batch_norm(self.layer2[0](h)))
        return self.layer3[0](h)


class VoCoSSLHead(nn.Module):
    """``student`` and ``teacher`` projections (VoCo's key names); see the module docstring."""

    def __init__(self, in_dim: int, hidden: int = 1024, out_dim: int = 1024):
        super().__init__()
        self.student = VoCoProjection(in_dim, hidden, out_dim)
        self.teacher = VoCoProjection(in_dim, hidden, out_dim)

    @torch.no_grad()
    def ema_update(self, momentum: float = 0.9) -> None:
        """teacher = momentum * teacher + (1 - momentum) * student (VoCo's ``_EMA_update_encoder_teacher``)."""
        for p, p_t in zip(self.student.parameters(), self.teacher.parameters()):
            p_t.mul_(momentum).add_(p, alpha=1.0 - momentum)


def voco_ce(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """VoCo's ``ce_loss`` over the last two axes: labels, logits (..., K, B) -> (...)."""
    pos = -(labels * torch.log(1 - (labels - logits).abs() + 1e-6)).sum((-2, -1)) / (labels.sum((-2, -1)) + 1e-6)
    neg_lab = (labels == 0).to(logits.dtype)
    neg = -(neg_lab * torch.log(1 - logits + 1e-6)).sum((-2, -1)) / (neg_lab.sum((-2, -1)) + 1e-6)
    return pos + neg


def _assign(feats: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """ReLU(cos) of (..., K, D) feats against (..., B, D) bases -> (..., K, B) (VoCo's ``online_assign``)."""
    return F.relu(F.cosine_similarity(feats.unsqueeze(-2), bases.unsqueeze(-3), dim=-1))


@dataclass
class VoCoDraw:
    """The random part of ``n_views`` views of ``B`` volumes.

    Attributes:
        ox, oy: (B, V, crops) integer crop offsets in x and y.
        keep: (B, V, crops + 9) 1.0 = embedding kept, 0.0 = dropped (student input; rows are the
            view's crops, then its 9 bases).
    """

    ox: torch.Tensor
    oy: torch.Tensor
    keep: torch.Tensor


class VoCoV2Pretext(Pretext):
    """VoCo's published pretext (see the module docstring).

    Args:
        crops: random crops per view (VoCo ``sw_batch_size``, 2).
        dropout: ``Dropout1d`` rate on the student's input embeddings (0.2).
        hidden, out_dim: projection sizes (VoCo: 1024, 1024).
        momentum: EMA momentum of the teacher when a head is trained (0.9).
    """

    name = "voco_v2"

    def __init__(self, crops: int = 2, dropout: float = 0.2, hidden: int = 1024, out_dim: int = 1024,
                 momentum: float = 0.9):
        if int(crops) < 1 or not 0.0 <= float(dropout) < 1.0:
            raise InputError("voco_v2 pretext", f"needs crops >= 1 and 0 <= dropout < 1, got {crops}, {dropout}")
        self.crops = int(crops)
        self.dropout = float(dropout)
        self.hidden = int(hidden)
        self.out_dim = int(out_dim)
        self.momentum = float(momentum)

    def options(self) -> dict:
        return {"hidden": self.hidden, "out_dim": self.out_dim}

    @staticmethod
    def _check_arch(arch: ArchConfig) -> None:
        if arch.name != "swin_unetr":
            raise InputError("voco_v2 pretext", f"needs the swin_unetr backbone (VoCo's network), not {arch.name!r}")

    def build_head(self, arch: ArchConfig) -> nn.Module:
        self._check_arch(arch)
        return VoCoSSLHead(24 * int(arch.feature_size), self.hidden, self.out_dim)

    def input_multiple(self, arch: ArchConfig) -> tuple[int, int, int]:
        from .registry import size_divisor

        self._check_arch(arch)
        d = size_divisor(arch)
        return (_GRID * d, _GRID * d, d)

    def after_step(self, head: nn.Module) -> None:
        head.ema_update(self.momentum)

    def sample(self, shape: tuple, n_views: int, generator: torch.Generator) -> VoCoDraw:
        """Offsets and dropout masks for volumes of ``shape`` (B, C, X, Y, Z), drawn from ``generator``."""
        b, _, sx, sy, _ = shape
        v, k = int(n_views), self.crops
        cx, cy = sx // _GRID, sy // _GRID
        u = random_uniform((2, b, v, k), generator, torch.device("cpu"))
        ox = (u[0] * (sx - cx)).long().clamp(max=sx - cx - 1)
        oy = (u[1] * (sy - cy)).long().clamp(max=sy - cy - 1)
        keep = (random_uniform((b, v, k + _GRID * _GRID), generator, torch.device("cpu")) >= self.dropout).float()
        return VoCoDraw(ox, oy, keep)

    def loss(self, encoder, head, volumes, generator, n_views):
        """See ``Pretext.loss``; returns (B, n_views) VoCo losses (intra + inter + reg)."""
        check_volumes(volumes, (_GRID, _GRID, 1), n_views, self.name)
        return self.loss_with_draw(encoder, head, volumes, self.sample(tuple(volumes.shape), n_views, generator))

    def loss_with_draw(self, encoder, head, volumes: torch.Tensor, draw: VoCoDraw) -> torch.Tensor:
        """The losses of the views described by ``draw`` (from ``sample``): (B, V)."""
        b, c, sx, sy, sz = volumes.shape
        _, v, k = draw.ox.shape
        g, nb = _GRID, _GRID * _GRID
        cx, cy = sx // g, sy // g
        bases = volumes.reshape(b, c, g, cx, g, cy, sz).permute(0, 2, 4, 1, 3, 5, 6).reshape(b * nb, c, cx, cy, sz)
        crops = torch.stack([volumes[i, :, x:x + cx, y:y + cy, :]
                             for i in range(b) for x, y in zip(draw.ox[i].reshape(-1).tolist(), draw.oy[i].reshape(-1).tolist())])
        feats = encoder(torch.cat([bases, crops], dim=0))  # one pass over B*9 bases + B*V*K crops
        emb = torch.cat([F.adaptive_avg_pool3d(feats[s], 1).flatten(1) for s in VOCO_SCALES], dim=1)
        dim = emb.shape[1]
        base_e = emb[: b * nb].view(b, 1, nb, dim).expand(b, v, nb, dim)
        rows = torch.cat([emb[b * nb:].view(b, v, k, dim), base_e], dim=2).reshape(b * v, k + nb, dim)
        keep = draw.keep.to(rows.device, rows.dtype).reshape(b * v, k + nb, 1)
        student = head.student(rows * keep / (1.0 - self.dropout))
        teacher = head.teacher(rows).detach()  # VoCo runs the teacher under no_grad
        x_stu, b_stu, x_tea, b_tea = student[:, :k], student[:, k:], teacher[:, :k], teacher[:, k:]
        labels = overlap_targets(draw.ox, draw.oy, cx, cy, g).to(rows.device, rows.dtype).reshape(b * v, k, nb)
        intra = voco_ce(labels, _assign(x_stu, b_tea))
        inter = voco_ce(_assign(x_tea, b_tea).detach(), _assign(x_stu, b_stu))
        pair = F.relu(F.cosine_similarity(b_stu.unsqueeze(2), b_stu.detach().unsqueeze(1), dim=-1)) ** 2
        upper = torch.triu(torch.ones(nb, nb, dtype=torch.bool, device=pair.device), diagonal=1)
        reg = pair[:, upper].mean(dim=1)
        return (intra + inter + reg).view(b, v)
