"""Published SSL heads: VoCo's (VoCo_B/L/H_SSL_head) and MONAI Swin SSL's, imported and scored.

The references below are transcriptions of the original code (Luffy03/Large-Scale-Medical
``Self-supervised/models/voco_head.py`` and ``utils/voco_trans.py``; Project-MONAI/research-contributions
``SwinUNETR/Pretrain/models/ssl_head.py`` and ``losses/loss.py``), written the way those files
compute: loops, their module names, their loss functions. Our implementation must give the same
losses on the same inputs and the same random draws.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import UnetrBasicBlock
from monai.networks.nets.swin_unetr import SwinTransformer

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models.checkpoint import import_foundation
from MedSeqFTLib.models.foundation import load_foundation
from MedSeqFTLib.models.ssl import get_pretext
from MedSeqFTLib.models.swin import LegacyPatchMerging
from MedSeqFTLib.sequence.init import init_workspace

F12 = 12
SWIN = ArchConfig(name="swin_unetr", feature_size=F12)


def _swin_vit(use_v2):
    return SwinTransformer(in_chans=1, embed_dim=F12, window_size=(7, 7, 7), patch_size=(2, 2, 2), depths=[2, 2, 2, 2],
                           num_heads=[3, 6, 12, 24], mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                           drop_path_rate=0.0, norm_layer=nn.LayerNorm, spatial_dims=3, use_v2=use_v2,
                           downsample=LegacyPatchMerging)  # the pre-MONAI-1.5 merge order they were trained with


# --- VoCo: reference ------------------------------------------------------------------------

class RefProjection(nn.Module):  # voco_head.projection_head
    def __init__(self, in_dim, hidden_dim=1024, out_dim=1024):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Linear(in_dim, hidden_dim),
                                    nn.BatchNorm1d(hidden_dim, affine=False, track_running_stats=False), nn.ReLU(inplace=True))
        self.layer2 = nn.Sequential(nn.Linear(hidden_dim, hidden_dim),
                                    nn.BatchNorm1d(hidden_dim, affine=False, track_running_stats=False), nn.ReLU(inplace=True))
        self.layer3 = nn.Sequential(nn.Linear(hidden_dim, out_dim))

    def forward(self, x):
        return self.layer3(self.layer2(self.layer1(x)))


class RefSwin(nn.Module):  # voco_head.Swin
    def __init__(self):
        super().__init__()
        f = F12
        self.swinViT = _swin_vit(use_v2=True)
        block = lambda a, b: UnetrBasicBlock(spatial_dims=3, in_channels=a, out_channels=b, kernel_size=3, stride=1,  # noqa: E731
                                             norm_name="instance", res_block=True)
        self.encoder1, self.encoder2, self.encoder3 = block(1, f), block(f, f), block(2 * f, 2 * f)
        self.encoder4, self.encoder10 = block(4 * f, 4 * f), block(16 * f, 16 * f)

    def forward(self, x_in):
        b = x_in.size()[0]
        hidden_states_out = self.swinViT(x_in)
        encs = [self.encoder1(x_in), self.encoder2(hidden_states_out[0]), self.encoder3(hidden_states_out[1]),
                self.encoder4(hidden_states_out[2]), self.encoder10(hidden_states_out[4])]
        return torch.cat([F.adaptive_avg_pool3d(e, (1, 1, 1)).view(b, -1) for e in encs], dim=1)


class RefVoCoHead(nn.Module):  # voco_head.VoCoHead (its state dict is the checkpoint)
    def __init__(self):
        super().__init__()
        self.backbone = RefSwin()
        self.student = RefProjection(24 * F12)
        self.teacher = RefProjection(24 * F12)


def online_assign(feats, bases):
    logits = []
    for i in range(feats.size()[0]):
        logits.append(F.cosine_similarity(feats[i].unsqueeze(0), bases, dim=1).unsqueeze(0))
    return F.relu(torch.concatenate(logits, dim=0))


def regularization_loss(bases):
    k, _ = bases.size()
    loss_all, num = 0, 0
    for i in range(k - 1):
        for j in range(i + 1, k):
            num += 1
            simi = F.relu(F.cosine_similarity(bases[i].unsqueeze(0), bases[j].unsqueeze(0).detach(), dim=1))
            loss_all += simi ** 2
    return loss_all / num


def ce_loss(labels, logits):
    pos_dis = torch.abs(labels - logits)
    pos_loss = (- labels * torch.log(1 - pos_dis + 1e-6)).sum() / (labels.sum() + 1e-6)
    neg_lab = (labels == 0).long()
    neg_loss = (- neg_lab * torch.log(1 - logits + 1e-6)).sum() / (neg_lab.sum() + 1e-6)
    return pos_loss + neg_loss


def get_position_label(x_min, y_min, roi, num_crops=3):  # voco_trans.get_position_label, given the draw
    x_max, y_max = x_min + roi, y_min + roi
    labels = []
    for i in range(num_crops):
        for j in range(num_crops):
            dx = min((i + 1) * roi, x_max) - max(i * roi, x_min)
            dy = min((j + 1) * roi, y_max) - max(j * roi, y_min)
            labels.append(0 if dx <= 0 or dy <= 0 else (dx * dy) / (roi * roi))
    return np.asarray(labels).reshape(1, num_crops * num_crops)


def voco_reference_loss(ref, volume, ox, oy, keep, roi, dropout=0.2):
    """VoCoHead.forward for one volume (batch size 1), the EMA update left out; Dropout1d's row mask = ``keep``."""
    crops = [volume[:, x:x + roi, y:y + roi, :] for x, y in zip(ox.tolist(), oy.tolist())]
    bases = [volume[:, i * roi:(i + 1) * roi, j * roi:(j + 1) * roi, :] for i in range(3) for j in range(3)]
    label = torch.as_tensor(np.concatenate([get_position_label(x, y, roi) for x, y in zip(ox.tolist(), oy.tolist())], 0))
    img, crops_t = torch.stack(crops), torch.stack(bases)
    total_size, bases_num = img.size()[0], 9
    embeddings = ref.backbone(torch.cat([img, crops_t], dim=0))
    aug_embeddings = embeddings * keep[:, None] / (1 - dropout)  # nn.Dropout1d(0.2) on (N, D): whole rows
    student, teacher = ref.student(aug_embeddings), ref.teacher(embeddings)
    x_stu, bases_stu = student[:total_size], student[total_size:]
    x_tea, bases_tea = teacher[:total_size], teacher[total_size:]
    intra = ce_loss(label, online_assign(x_stu, bases_tea))
    inter_bases_stu, inter_bases_tea = bases_stu[:bases_num], bases_tea[:bases_num]  # j = (0 + 1) % 1 = 0
    inter = ce_loss(online_assign(x_tea, inter_bases_tea).detach(), online_assign(x_stu, inter_bases_stu))
    return intra + inter + regularization_loss(bases_stu)


def _voco_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    ref = RefVoCoHead().eval()
    torch.save({"global_step": 7, "state_dict": {"module." + k: v for k, v in ref.state_dict().items()}}, path)
    return ref


def test_voco_ssl_head_checkpoint_loss_equals_vocos_own_computation(tmp_path):
    ref = _voco_checkpoint(tmp_path / "VoCo_B_SSL_head.pt")
    ws, _ = init_workspace(tmp_path / "ws", str(tmp_path / "VoCo_B_SSL_head.pt"), arch="swin_unetr", feature_size=F12)
    encoder, head, meta = load_foundation(ws.foundation_path)
    assert meta["ssl_pretext"] == "voco_v2" and meta["patch_size"] == [192, 192, 64]
    assert meta["ssl_options"] == {"hidden": 1024, "out_dim": 1024} and "VoCo" in meta["ssl_head_origin"]
    for k, v in head.state_dict().items():  # the published tensors, under the published names
        assert torch.equal(v, ref.state_dict()[k]), k

    pretext = get_pretext("voco_v2", meta["ssl_options"])
    x = torch.rand((1, 1, 96, 96, 64), generator=torch.Generator().manual_seed(1))  # 3 x 3 bases of 32 x 32 x 64
    with torch.no_grad():
        ours = pretext.loss(encoder, head, x, torch.Generator().manual_seed(3), 2)
        draw = pretext.sample(tuple(x.shape), 2, torch.Generator().manual_seed(3))  # the draws loss() made
        expected = [voco_reference_loss(ref, x[0], draw.ox[0, v], draw.oy[0, v], draw.keep[0, v], 32) for v in range(2)]
    assert ours.shape == (1, 2)
    for v in range(2):
        assert ours[0, v].item() == pytest.approx(float(expected[v]), abs=2e-5), v
    assert ours[0, 0] != ours[0, 1]  # stochastic: crops and dropped rows differ per view


def test_voco_head_of_another_width_is_refused(tmp_path):
    state = {f"module.{p}.layer{n}.0.{w}": torch.zeros((1024, 24 * 48) if (n, w) == (1, "weight") else
                                                      (1024, 1024) if w == "weight" else (1024,))
             for p in ("student", "teacher") for n in (1, 2, 3) for w in ("weight", "bias")}
    torch.manual_seed(0)
    state.update({"module.backbone." + k: v for k, v in RefSwin().state_dict().items()})
    torch.save(state, tmp_path / "VoCo_B_SSL_head.pt")
    with pytest.raises(InputError, match=r"VoCo_B_SSL_head.pt: VoCo SSL head reads 1152 features.*gives 288"):
        import_foundation(tmp_path / "VoCo_B_SSL_head.pt", SWIN)


def test_encoder_only_checkpoint_has_no_head(tmp_path):
    torch.manual_seed(0)
    torch.save({"state_dict": {"module.backbone." + k: v for k, v in RefSwin().state_dict().items()}}, tmp_path / "enc.pt")
    _, head_state, meta, report = import_foundation(tmp_path / "enc.pt", SWIN)
    assert head_state is None and meta["ssl_pretext"] is None and report.fraction == 1.0


# --- MONAI Swin SSL: reference --------------------------------------------------------------

class RefSSLHead(nn.Module):  # research-contributions SwinUNETR/Pretrain/models/ssl_head.SSLHead, upsample="vae"
    def __init__(self, dim=16 * F12, in_channels=1):
        super().__init__()
        self.swinViT = _swin_vit(use_v2=False)
        self.rotation_pre = nn.Identity()
        self.rotation_head = nn.Linear(dim, 4)
        self.contrastive_pre = nn.Identity()
        self.contrastive_head = nn.Linear(dim, 512)
        self.conv = nn.Sequential(
            nn.Conv3d(dim, dim // 2, kernel_size=3, stride=1, padding=1), nn.InstanceNorm3d(dim // 2), nn.LeakyReLU(),
            nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
            nn.Conv3d(dim // 2, dim // 4, kernel_size=3, stride=1, padding=1), nn.InstanceNorm3d(dim // 4), nn.LeakyReLU(),
            nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
            nn.Conv3d(dim // 4, dim // 8, kernel_size=3, stride=1, padding=1), nn.InstanceNorm3d(dim // 8), nn.LeakyReLU(),
            nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
            nn.Conv3d(dim // 8, dim // 16, kernel_size=3, stride=1, padding=1), nn.InstanceNorm3d(dim // 16), nn.LeakyReLU(),
            nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
            nn.Conv3d(dim // 16, dim // 16, kernel_size=3, stride=1, padding=1), nn.InstanceNorm3d(dim // 16), nn.LeakyReLU(),
            nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
            nn.Conv3d(dim // 16, in_channels, kernel_size=1, stride=1),
        )

    def forward(self, x):
        x_out = self.swinViT(x.contiguous())[4]
        _, c, h, w, d = x_out.shape
        x4_reshape = x_out.flatten(start_dim=2, end_dim=4).transpose(1, 2)
        x_rot = self.rotation_head(self.rotation_pre(x4_reshape[:, 0]))
        x_contrastive = self.contrastive_head(self.contrastive_pre(x4_reshape[:, 1]))
        x_rec = self.conv(x_out.flatten(start_dim=2, end_dim=4).view(-1, c, h, w, d))
        return x_rot, x_contrastive, x_rec


class Contrast(nn.Module):  # losses/loss.Contrast, on the CPU
    def __init__(self, batch_size, temperature=0.5):
        super().__init__()
        self.batch_size = batch_size
        self.register_buffer("temp", torch.tensor(temperature))
        self.register_buffer("neg_mask", (~torch.eye(batch_size * 2, batch_size * 2, dtype=bool)).float())

    def forward(self, x_i, x_j):
        z = torch.cat([F.normalize(x_i, dim=1), F.normalize(x_j, dim=1)], dim=0)
        sim = F.cosine_similarity(z.unsqueeze(1), z.unsqueeze(0), dim=2)
        pos = torch.cat([torch.diag(sim, self.batch_size), torch.diag(sim, -self.batch_size)], dim=0)
        nom = torch.exp(pos / self.temp)
        denom = self.neg_mask * torch.exp(sim / self.temp)
        return torch.sum(-torch.log(nom / torch.sum(denom, dim=1))) / (2 * self.batch_size)


def monai_reference_loss(model, x1, x2, rot1, rot2, x1_augment, x2_augment):
    """One step of Pretrain/main.py's train loop after rot_rand / aug_rand (losses/loss.Loss)."""
    rot1_p, contrastive1_p, rec_x1 = model(x1_augment)
    rot2_p, contrastive2_p, rec_x2 = model(x2_augment)
    rot_p, rots = torch.cat([rot1_p, rot2_p], dim=0), torch.cat([rot1, rot2], dim=0)
    imgs_recon, imgs = torch.cat([rec_x1, rec_x2], dim=0), torch.cat([x1, x2], dim=0)
    return (torch.nn.CrossEntropyLoss()(rot_p, rots) + Contrast(x1.shape[0])(contrastive1_p, contrastive2_p)
            + torch.nn.L1Loss()(imgs_recon, imgs))


def test_monai_ssl_head_checkpoint_loss_equals_monai_computation(tmp_path):
    torch.manual_seed(4)
    ref = RefSSLHead().eval()
    torch.save({"global_step": 3, "state_dict": {"module." + k: v for k, v in ref.state_dict().items()}},
               tmp_path / "model_bestValRMSE.pt")
    ws, _ = init_workspace(tmp_path / "ws", str(tmp_path / "model_bestValRMSE.pt"), arch="swin_unetr", feature_size=F12)
    encoder, head, meta = load_foundation(ws.foundation_path)
    assert meta["ssl_pretext"] == "monai_ssl" and meta["ssl_options"] == {"upsample": "vae"}
    assert meta["patch_size"] == [96, 96, 96]

    pretext = get_pretext("monai_ssl", meta["ssl_options"])
    x = torch.rand((1, 1, 64, 32, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = pretext.loss(encoder, head, x, torch.Generator().manual_seed(5), 2)
        d = pretext.sample(x, 2, torch.Generator().manual_seed(5))
        expected = [monai_reference_loss(ref, d.x1[0, v], d.x2[0, v], d.rot1[0, v], d.rot2[0, v], d.x1_aug[0, v],
                                         d.x2_aug[0, v]) for v in range(2)]
    for v in range(2):
        assert ours[0, v].item() == pytest.approx(float(expected[v]), abs=2e-5), v
    # the draws are rot_rand / aug_rand: rotated copies of the case, each cut out somewhere
    for v in range(2):
        for i in range(2):
            assert torch.equal(d.x1[0, v, i], torch.rot90(x[0], int(d.rot1[0, v, i]), dims=(2, 3)))
            assert (d.x1_aug[0, v, i] != d.x1[0, v, i]).any() and (d.x2_aug[0, v, i] != d.x2[0, v, i]).any()


def test_monai_ssl_input_checks():
    pretext = get_pretext("monai_ssl")
    with pytest.raises(InputError, match="last two axes"):
        pretext.loss(None, None, torch.zeros(1, 1, 32, 64, 32), torch.Generator(), 1)
    with pytest.raises(InputError, match="two"):
        pretext.loss(None, None, torch.zeros(1, 1, 32, 32, 32), torch.Generator(), 1)
    with pytest.raises(InputError, match="copies"):
        get_pretext("monai_ssl", {"copies": 1})
    with pytest.raises(InputError, match="swin_unetr"):
        get_pretext("voco_v2").build_head(ArchConfig(name="small_unet", feature_size=4))
    with pytest.raises(InputError, match="does not take"):
        get_pretext("voco_v2", {"nope": 1})


class _TinyEncoder(nn.Module):
    """Six outputs with SwinEncoder's channels (f, f, 2f, 4f, 8f, 16f); cheap stand-in for the loss arithmetic."""

    def __init__(self, f=F12):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv3d(1, c, kernel_size=3, padding=1) for c in (f, f, 2 * f, 4 * f, 8 * f, 16 * f))

    def forward(self, x):
        return [torch.tanh(conv(x)) for conv in self.convs]


def test_voco_v2_trains_the_student_only_and_ema_moves_the_teacher():
    torch.manual_seed(0)
    pretext = get_pretext("voco_v2", {"hidden": 32, "out_dim": 16})
    head, enc = pretext.build_head(SWIN), _TinyEncoder()
    x = torch.rand((2, 1, 12, 12, 4), generator=torch.Generator().manual_seed(0))
    loss = pretext.loss(enc, head, x, torch.Generator().manual_seed(1), 3)
    assert loss.shape == (2, 3) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.student.parameters())
    assert all(p.grad is None for p in head.teacher.parameters())  # VoCo's teacher runs under no_grad
    assert enc.convs[5].weight.grad.abs().sum() > 0 and enc.convs[4].weight.grad is None  # dec4 used, hs3 not
    before = head.teacher.layer1[0].weight.detach().clone()
    pretext.after_step(head)
    expected = 0.9 * before + 0.1 * head.student.layer1[0].weight.detach()
    assert torch.allclose(head.teacher.layer1[0].weight, expected)
