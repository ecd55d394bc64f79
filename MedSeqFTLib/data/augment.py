"""Training-time augmentation: nnU-Net's default set, built from MONAI dictionary transforms.

Per patch, with nnU-Net's probabilities (``nnUNetTrainer.get_training_transforms``):

=================================  ====================================  ===========
what                               MONAI transform                        probability
=================================  ====================================  ===========
rotation (+-30 deg per axis)       ``Affined`` (one resampling for both)  0.2
scaling (0.7-1.4)                  ``Affined``                            0.2
elastic deformation (option)       ``Rand3DElasticd``                     0.2
Gaussian noise (variance 0-0.1)    ``RandGaussianNoised``                 0.1
Gaussian blur (sigma 0.5-1)        ``RandGaussianSmoothd``                0.2
brightness (x 0.75-1.25)           ``RandScaleIntensityd``                0.15
contrast (x 0.75-1.25, range kept) ``RandScaleIntensityFixedMeand``       0.15
low resolution (zoom 0.5-1)        ``RandSimulateLowResolutiond``         0.25
inverted gamma (0.7-1.5)           ``RandAdjustContrastd(invert_image)``  0.1
gamma (0.7-1.5)                    ``RandAdjustContrastd``                0.3
mirroring, each axis               ``RandFlipd``                          0.5
=================================  ====================================  ===========

The spatial step works on a crop larger than the patch around the chosen centre, so a rotated
or zoomed-out patch shows real image content, not padding; it resamples once to the patch grid.
Every random draw comes from the ``np.random.RandomState`` the sampler passes in, so a batch
depends only on its seed.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .sampling import crop

__all__ = ["Augmenter", "ROTATION_DEG", "SCALE_RANGE", "PROBABILITIES"]

ROTATION_DEG = 30.0
SCALE_RANGE = (0.7, 1.4)
PROBABILITIES = {"rotation": 0.2, "scaling": 0.2, "elastic": 0.2, "noise": 0.1, "blur": 0.2, "brightness": 0.15,
                 "contrast": 0.15, "low_resolution": 0.25, "gamma_inverted": 0.1, "gamma": 0.3, "mirror": 0.5}


class Augmenter:
    """Crop a patch around a centre and augment it.

    Args:
        elastic: add MONAI's ``Rand3DElasticd`` (off by default, as in nnU-Net v2).
        mirror_axes: spatial axes that may be flipped.

    Call as ``augmenter(image (C, X, Y, Z), label (1, X, Y, Z), centre, patch, rng)`` ->
    ``(image (C, *patch) float32, label (1, *patch) uint8)``.
    """

    def __init__(self, elastic: bool = False, mirror_axes: Sequence[int] = (0, 1, 2)):
        from monai.transforms import (
            Compose,
            RandAdjustContrastd,
            RandFlipd,
            RandGaussianNoised,
            RandGaussianSmoothd,
            RandScaleIntensityd,
            RandScaleIntensityFixedMeand,
            RandSimulateLowResolutiond,
        )

        p = PROBABILITIES
        self.elastic = bool(elastic)
        self.mirror_axes = tuple(int(a) for a in mirror_axes)
        both = ["image", "label"]
        self.intensity = Compose([
            RandGaussianNoised("image", prob=p["noise"], mean=0.0, std=math.sqrt(0.1), sample_std=True),
            RandGaussianSmoothd("image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=p["blur"]),
            RandScaleIntensityd("image", factors=0.25, prob=p["brightness"]),
            RandScaleIntensityFixedMeand("image", factors=0.25, preserve_range=True, prob=p["contrast"]),
            RandSimulateLowResolutiond("image", zoom_range=(0.5, 1.0), prob=p["low_resolution"]),
            RandAdjustContrastd("image", gamma=(0.7, 1.5), invert_image=True, retain_stats=True, prob=p["gamma_inverted"]),
            RandAdjustContrastd("image", gamma=(0.7, 1.5), retain_stats=True, prob=p["gamma"]),
            *[RandFlipd(both, prob=p["mirror"], spatial_axis=a) for a in self.mirror_axes],
        ])
        self._elastic = None
        if self.elastic:
            from monai.transforms import Rand3DElasticd

            self._elastic = Rand3DElasticd(both, sigma_range=(9.0, 13.0), magnitude_range=(0.0, 200.0), prob=p["elastic"],
                                           mode=("bilinear", "nearest"), padding_mode="zeros")

    def _spatial(self, image, label, centre, patch, rng: np.random.RandomState):
        from monai.transforms import Affined

        p = PROBABILITIES
        rotate = rng.random_sample() < p["rotation"]
        scale = rng.random_sample() < p["scaling"]
        angles = tuple(math.radians(a) for a in rng.uniform(-ROTATION_DEG, ROTATION_DEG, 3)) if rotate else (0.0,) * 3
        factor = float(rng.uniform(*SCALE_RANGE)) if scale else 1.0
        if not (rotate or scale):
            return crop(image, centre, patch), crop(label, centre, patch)
        # the rotated, zoomed box reaches at most sqrt(3) * factor * patch / 2 from the centre
        grow = min(math.sqrt(3.0), 1.0 + sum(abs(math.sin(a)) for a in angles)) * max(factor, 1.0)
        big = tuple(int(math.ceil(s * grow)) + 2 for s in patch)
        data = {"image": crop(image, centre, big).astype(np.float32, copy=False),
                "label": crop(label, centre, big).astype(np.float32)}
        out = Affined(["image", "label"], rotate_params=angles, scale_params=(factor,) * 3, spatial_size=tuple(patch),
                      mode=("bilinear", "nearest"), padding_mode="zeros")(data)
        return np.asarray(out["image"]), np.asarray(out["label"])

    def __call__(self, image: np.ndarray, label: np.ndarray, centre, patch, rng: np.random.RandomState):
        img, lab = self._spatial(image, label, centre, tuple(int(s) for s in patch), rng)
        data = {"image": np.ascontiguousarray(img, dtype=np.float32), "label": np.ascontiguousarray(lab, dtype=np.float32)}
        if self._elastic is not None:
            self._elastic.set_random_state(seed=int(rng.randint(2**31)))
            data = self._elastic(data)
        self.intensity.set_random_state(seed=int(rng.randint(2**31)))
        data = self.intensity(data)
        image_out = np.asarray(data["image"], dtype=np.float32)
        label_out = np.rint(np.asarray(data["label"])).astype(np.uint8)
        return image_out, label_out
