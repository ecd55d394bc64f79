"""The scanner grid and file plumbing shared by the phantom generators (CT: ``phantoms``, MR: ``phantoms_mr``).

``Scene`` places one case's voxel grid in patient (LPS) space with a random spacing, orientation
and field-of-view centre, deforms it smoothly, and renders masks of ellipsoids and capsules given
in millimetres, so the anatomy keeps its physical size whatever the grid. ``write_case`` stores an
image (and its label) on that grid; ``prepare_folder`` clears an earlier generated dataset and
refuses any other folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..io.atomic import read_json

__all__ = ["Scene", "random_direction", "write_case", "prepare_folder"]


def random_direction(rng: np.random.Generator) -> np.ndarray:
    """A 3x3 direction matrix (columns = image axes in LPS): plain, flipped, permuted or oblique."""
    kind = rng.choice(["lps", "ras", "permuted", "oblique"], p=[0.3, 0.3, 0.2, 0.2])
    base = np.diag([-1.0, -1.0, 1.0]) if kind == "ras" or (kind == "oblique" and rng.random() < 0.5) else np.eye(3)
    if kind == "permuted":
        perm = rng.permutation(3)
        while np.array_equal(perm, [0, 1, 2]):
            perm = rng.permutation(3)
        base = np.eye(3)[:, perm] * rng.choice([-1.0, 1.0], size=3)
    if kind == "oblique":
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = np.deg2rad(rng.uniform(5.0, 15.0))
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k  # Rodrigues
        base = rot @ base
    return base


class Scene:
    """One case's scanner grid and the (deformed) LPS position of each of its voxels.

    The field of view stays ``size * spacing_mm`` mm per physical axis, so a coarser spacing
    gives fewer voxels; slices (physical z) are thicker than the in-plane spacing. Shapes are
    evaluated only inside their bounding box, which keeps a 64^3 case near 0.1 s.

    The defaults are the CT generator's; the MR generator asks for a tighter spacing jitter and a
    finer, weaker deformation (its head is smaller than the CT abdomen).

    Args:
        rng: the case's generator; the draws happen in a fixed order (direction, spacing,
            centre, deformation, bumps), so equal generators give equal scenes.
        size: nominal voxels per axis at ``spacing_mm``.
        spacing_mm: nominal voxel size (mm).
        in_plane: range of the in-plane spacing, as factors of ``spacing_mm``.
        slices: range of the slice (physical z) spacing, as factors of ``spacing_mm``.
        centre_mm: the field-of-view centre lies within +-``centre_mm`` of the origin per axis.
        warp_mm, warp_wavelength: amplitude (mm) and wavelength range (mm) of the smooth deformation.
        bump, bump_wavelength: relative amplitude and wavelength range (mm) of ``bumps``.

    Attributes:
        shape: voxels per image axis (X, Y, Z).
        spacing, direction, origin: the grid (mm; columns of ``direction`` = image axes in LPS).
        p: (3, X, Y, Z) float32 positions (mm) at which the anatomy is evaluated.
        bumps: (X, Y, Z) smooth field of about +-``bump`` that makes ellipsoids irregular.
    """

    def __init__(self, rng: np.random.Generator, size: int, spacing_mm: float, *,
                 in_plane: tuple = (0.85, 1.15), slices: tuple = (0.95, 1.5), centre_mm: float = 6.0,
                 warp_mm: float = 5.0, warp_wavelength: tuple = (90, 220),
                 bump: float = 0.10, bump_wavelength: tuple = (35, 70)):
        self.rng = rng
        self.direction = random_direction(rng)
        in_plane = spacing_mm * rng.uniform(*in_plane)
        slice_mm = spacing_mm * rng.uniform(*slices)
        phys_axis = np.argmax(np.abs(self.direction), axis=0)  # which of x, y, z each image axis follows
        self.spacing = np.where(phys_axis == 2, slice_mm, in_plane)
        self.shape = tuple(int(n) for n in np.maximum(8, np.round(size * spacing_mm / self.spacing)))
        self.step = self.direction * self.spacing  # column i = LPS step along image axis i
        centre = rng.uniform(-centre_mm, centre_mm, size=3)
        self.origin = centre - self.step @ ((np.asarray(self.shape) - 1) / 2.0)
        axes = [np.arange(n, dtype=np.float32) for n in self.shape]
        p0 = np.empty((3,) + self.shape, dtype=np.float32)
        for c in range(3):
            p0[c] = (self.origin[c] + self.step[c, 0] * axes[0][:, None, None]
                     + self.step[c, 1] * axes[1][None, :, None] + self.step[c, 2] * axes[2][None, None, :])
        # smooth deformation: the anatomy is evaluated at displaced positions
        disp = np.stack([self.waves(3, warp_wavelength, warp_mm) for _ in range(3)])
        self.margin = float(np.abs(disp).max()) + float(self.spacing.max())
        self.p = p0 + disp
        self.bumps = self.waves(4, bump_wavelength, bump)
        self.bump_max = float(np.abs(self.bumps).max())

    def waves(self, n: int, wavelength: tuple, amplitude: float) -> np.ndarray:
        """Sum of ``n`` random plane waves on the undeformed grid, (X, Y, Z) float32.

        A plane wave is separable over the image axes, exp(i k.p) = exp(i k.o) prod_a
        exp(i k.step_a idx_a), so it costs one complex product per voxel instead of a sine.
        """
        out = np.zeros(self.shape, dtype=np.float32)
        for _ in range(n):
            k = self.rng.normal(size=3)
            k *= 2 * np.pi / (np.linalg.norm(k) * self.rng.uniform(*wavelength))
            phase = k @ self.origin + self.rng.uniform(0, 2 * np.pi)
            e = [np.exp(1j * (k @ self.step[:, a]) * np.arange(m)).astype(np.complex64) for a, m in enumerate(self.shape)]
            plane = (np.complex64(np.exp(1j * phase)) * e[0][:, None] * e[1][None, :])
            out += (plane[:, :, None] * e[2][None, None, :]).imag
        return out * np.float32(amplitude / np.sqrt(n))

    def _box(self, centre, radius: float) -> tuple:
        """Index slices holding every voxel whose position may lie within ``radius`` of ``centre``."""
        idx = np.linalg.solve(self.step, np.asarray(centre, dtype=np.float64) - self.origin)
        half = (radius + self.margin) / self.spacing
        lo = np.clip(np.floor(idx - half), 0, self.shape).astype(int)
        hi = np.clip(np.ceil(idx + half) + 1, 0, self.shape).astype(int)
        return tuple(slice(a, b) for a, b in zip(lo, hi))

    def ellipsoid(self, centre, radii, bumpiness: float = 1.0, angle_z: float = 0.0) -> np.ndarray:
        """(X, Y, Z) mask of a z-rotated ellipsoid whose surface wobbles by ``bumpiness * bumps``."""
        radii = np.asarray(radii, dtype=np.float32)
        box = self._box(centre, float(radii.max()) * (1.0 + bumpiness * self.bump_max))
        mask = np.zeros(self.shape, dtype=bool)
        p = self.p[(slice(None),) + box]
        if p.size == 0:
            return mask
        d = p - np.asarray(centre, dtype=np.float32).reshape(3, 1, 1, 1)
        c, s = np.float32(np.cos(angle_z)), np.float32(np.sin(angle_z))
        x, y = c * d[0] + s * d[1], -s * d[0] + c * d[1]
        q = (x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (d[2] / radii[2]) ** 2
        mask[box] = q < (1.0 + np.float32(bumpiness) * self.bumps[box]) ** 2
        return mask

    def capsule(self, a, b, radius: float) -> np.ndarray:
        """(X, Y, Z) mask of voxels within ``radius`` mm of the segment a-b (a vessel)."""
        a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
        ab = b - a
        box = self._box((a + b) / 2, float(np.linalg.norm(ab)) / 2 + radius)
        mask = np.zeros(self.shape, dtype=bool)
        p = self.p[(slice(None),) + box]
        if p.size == 0:
            return mask
        d = p - a.reshape(3, 1, 1, 1)
        t = np.clip((ab[0] * d[0] + ab[1] * d[1] + ab[2] * d[2]) / float(ab @ ab), 0.0, 1.0)
        d -= ab.reshape(3, 1, 1, 1) * t[None]
        mask[box] = (d * d).sum(axis=0) < radius * radius
        return mask


def write_case(image, label, geometry: dict, image_path: Path, label_path: Optional[Path]) -> None:
    """Write ``image`` (and ``label`` unless ``label_path`` is None), (Z, Y, X) arrays, on ``geometry``'s grid."""
    import SimpleITK as sitk

    from .imageio import write_image

    for arr, path in ((image, image_path), (label, label_path)):
        if path is None:
            continue
        img = sitk.GetImageFromArray(arr)
        img.SetOrigin(geometry["origin"])
        img.SetSpacing(geometry["spacing"])
        img.SetDirection(geometry["direction"])
        write_image(img, path)


def prepare_folder(folder: Path) -> None:
    """Remove an earlier generated dataset at ``folder`` (its dataset.json has a ``"phantom"`` block).

    Raises:
        InputError: ``folder`` exists and is not a generated phantom dataset (never deleted).
    """
    if not folder.exists():
        return
    meta_path = folder / "dataset.json"
    meta = read_json(meta_path) if meta_path.exists() else None
    if not (isinstance(meta, dict) and "phantom" in meta):
        raise InputError(folder, "exists and is not a generated phantom dataset; choose another output folder")
    shutil.rmtree(folder)
