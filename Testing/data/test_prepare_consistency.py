"""Training and inference preprocess an image identically (evaluation reuses the training cache)."""

import numpy as np

from MedSeqFTLib.config import PreprocessConfig
from MedSeqFTLib.data.phantoms import generate_phantoms
from MedSeqFTLib.data.preprocess import prepare_case, prepare_image_for_inference


def test_labelled_and_unlabelled_preparation_agree(tmp_path):
    ds = generate_phantoms(tmp_path, tasks=1, cases=2, seed=5, size=24, test_cases=0)[0]
    cfg = PreprocessConfig(spacing=(4.0, 4.0, 4.0), patch_size=(16, 16, 16))
    for image in sorted((ds / "imagesTr").glob("*_0000.nii.gz")):
        label = ds / "labelsTr" / image.name.replace("_0000", "")
        with_label = prepare_case([image], label, cfg, "CT")
        array, affine = prepare_image_for_inference([image], cfg, "CT")
        assert with_label.image.shape == array.shape
        assert np.array_equal(with_label.image, array)
        assert np.allclose(with_label.affine, affine)
        assert with_label.label.shape[1:] == array.shape[1:]
