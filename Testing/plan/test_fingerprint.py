"""compute_fingerprint against independent numpy/nibabel computations on tiny synthetic volumes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.errors import InputError
from MedSeqFTLib.plan.fingerprint import compute_fingerprint

SHAPE = (12, 11, 10)  # numpy (z, y, x): file size x=10, y=11, z=12
BOX = (slice(2, 11), slice(1, 9), slice(3, 10))  # nonzero region of channel 0: z 2..10, y 1..8, x 3..9
LABELS = {"background": 0, "organ": 1, "lesion": 2, "absent": 3}
# a permuted, partly flipped direction: file x -> S, file y -> L (-R), file z -> P (-A)
PERMUTED = (0.0, 1.0, 0.0,
            0.0, 0.0, 1.0,
            1.0, 0.0, 0.0)


def mr_volume(seed: int, hole: bool = True) -> np.ndarray:
    """Positive intensities inside BOX, zeros around it, and a zero hole inside the box."""
    rng = np.random.default_rng(seed)
    arr = np.zeros(SHAPE, np.float32)
    arr[BOX] = rng.normal(100.0, 15.0, size=arr[BOX].shape).clip(1.0, None)
    if hole:
        arr[5:7, 4:6, 5:7] = 0.0  # filled by the nonzero mask, so it counts as inside the region
    return arr


def label_map(lesion: bool = True) -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[4:9, 3:7, 4:9] = 1
    if lesion:
        lab[6:8, 4:6, 6:8] = 2
    return lab


def bbox_size_xyz(mask: np.ndarray) -> list[int]:
    idx = np.nonzero(mask)
    return [int(i.max() - i.min() + 1) for i in idx][::-1]


def test_identity_direction_keeps_file_order_and_crops_to_any_nonzero_channel(tmp_path, make_vol):
    ch0 = mr_volume(0)
    ch1 = mr_volume(1)
    ch1[0, 0, 0] = 3.0  # a voxel outside channel 0's box: the box is the union over channels
    case = make_vol.case(tmp_path, "c0", [ch0, ch1], label_map(), spacing=(1.0, 1.5, 2.0))
    fp = compute_fingerprint([case], "MR", LABELS)

    rec = fp["cases"][0]
    assert rec["id"] == "c0"
    assert rec["spacing"] == pytest.approx([1.0, 1.5, 2.0])
    assert rec["size"] == [10, 11, 12]
    assert rec["direction"] == pytest.approx([1, 0, 0, 0, 1, 0, 0, 0, 1])
    assert rec["size_after_crop"] == bbox_size_xyz((ch0 != 0) | (ch1 != 0)) == [10, 9, 11]
    assert rec["relative_size_after_crop"] == pytest.approx(10 * 9 * 11 / (10 * 11 * 12))

    single = compute_fingerprint([make_vol.case(tmp_path / "one", "c1", [ch0], label_map())], "MR", LABELS)
    assert single["cases"][0]["size_after_crop"] == bbox_size_xyz(ch0 != 0) == [7, 8, 9]
    assert single["cases"][0]["relative_size_after_crop"] == pytest.approx(7 * 8 * 9 / (10 * 11 * 12))


def test_permuted_direction_reports_ras_order_like_nibabel(tmp_path, make_vol):
    arr = mr_volume(2)
    case = make_vol.case(tmp_path, "p", [arr], label_map(), spacing=(1.0, 1.5, 2.0), direction=PERMUTED)
    rec = compute_fingerprint([case], "MR", LABELS)["cases"][0]

    # by hand: R <- file y, A <- file z, S <- file x
    assert rec["spacing"] == pytest.approx([1.5, 2.0, 1.0])
    assert rec["size"] == [11, 12, 10]
    assert rec["direction"] == pytest.approx(PERMUTED)
    # independently: nibabel's closest-canonical (RAS) view of the NIfTI file
    canon = nib.as_closest_canonical(nib.load(case["images"][0]))
    assert rec["spacing"] == pytest.approx([float(z) for z in canon.header.get_zooms()], abs=1e-6)
    assert rec["size"] == list(canon.shape)
    data = np.asarray(canon.dataobj)
    idx = np.nonzero(data)
    assert rec["size_after_crop"] == [int(i.max() - i.min() + 1) for i in idx] == [8, 9, 7]


def _expected_foreground(cases, n_channels, samples):
    """The documented protocol written out: per case one RandomState(1234), channels in turn."""
    pools = [[] for _ in range(n_channels)]
    for case in cases:
        data = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(p)) for p in case["images"]]).astype(np.float32)
        fg = sitk.GetArrayFromImage(sitk.ReadImage(case["label"])) > 0
        rs = np.random.RandomState(1234)
        for c in range(n_channels):
            pools[c].append(rs.choice(data[c][fg], samples, replace=True))
    out = []
    for c in range(n_channels):
        pool = np.concatenate(pools[c])
        out.append({"mean": np.mean(pool), "std": np.std(pool), "median": np.median(pool), "min": pool.min(),
                    "max": pool.max(), "percentile_00_5": np.percentile(pool, 0.5),
                    "percentile_99_5": np.percentile(pool, 99.5), "n_samples": pool.size})
    return out


def test_foreground_and_per_case_statistics_match_numpy(tmp_path, make_vol):
    cases = []
    for i in range(3):
        ch1 = (mr_volume(20 + i) * 0.5 + 7.0 * (mr_volume(20 + i) != 0)).astype(np.float32)
        cases.append(make_vol.case(tmp_path, f"c{i}", [mr_volume(10 + i), ch1], label_map(lesion=i != 1),
                                   spacing=(1.0, 1.1 + 0.1 * i, 2.0)))
    unlabelled = dict(cases[0], id="u", label=None)
    calls = []
    fp = compute_fingerprint(cases + [unlabelled], "mr", LABELS, progress=lambda i, n: calls.append((i, n)),
                             samples_per_case=500)
    json.dumps(fp, allow_nan=False)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert (fp["version"], fp["modality"], fp["n_cases"]) == (1, "MR", 3)
    assert [c["id"] for c in fp["cases"]] == ["c0", "c1", "c2"]
    assert len(fp["channels"]) == 2

    for got, want in zip(fp["channels"], _expected_foreground(cases, 2, 500)):
        assert got["foreground"] == pytest.approx({k: float(v) for k, v in want.items()}, rel=1e-6)
    # the whole foreground lies inside [min, max] of what was drawn from it
    fg_all = np.concatenate([sitk.GetArrayFromImage(sitk.ReadImage(c["images"][0]))[label_map() > 0] for c in cases])
    assert fg_all.min() <= fp["channels"][0]["foreground"]["min"] <= fp["channels"][0]["foreground"]["max"] <= fg_all.max()

    # per case: every voxel of the nonzero box, the (zero) hole included because it is filled
    for c, ch in enumerate(fp["channels"]):
        assert [p["id"] for p in ch["per_case"]] == ["c0", "c1", "c2"]
        for i, p in enumerate(ch["per_case"]):
            arr = sitk.GetArrayFromImage(sitk.ReadImage(cases[i]["images"][c])).astype(np.float64)
            assert p["mean"] == pytest.approx(arr[BOX].mean(), rel=1e-9)
            assert p["std"] == pytest.approx(arr[BOX].std(), rel=1e-9)


def test_class_sizes_in_voxels_and_mm3(tmp_path, make_vol):
    spacings = [(1.0, 1.0, 2.0), (0.5, 0.8, 3.0)]
    cases = [make_vol.case(tmp_path, "a", [mr_volume(0)], label_map(lesion=True), spacing=spacings[0]),
             make_vol.case(tmp_path, "b", [mr_volume(1)], label_map(lesion=False), spacing=spacings[1])]
    classes = compute_fingerprint(cases, "PET", LABELS)["classes"]
    assert list(classes) == ["organ", "lesion", "absent"]

    organ = [np.sum(label_map(lesion=True) == 1), np.sum(label_map(lesion=False) == 1)]
    organ_mm3 = [organ[i] * np.prod(spacings[i]) for i in range(2)]
    assert classes["organ"]["value"] == 1 and classes["organ"]["cases_present"] == 2
    assert classes["organ"]["voxels"] == pytest.approx({"median": np.median(organ), "min": min(organ), "max": max(organ)})
    assert classes["organ"]["mm3"] == pytest.approx(
        {"median": np.median(organ_mm3), "min": min(organ_mm3), "max": max(organ_mm3)})

    lesion = int(np.sum(label_map() == 2))
    assert classes["lesion"]["cases_present"] == 1
    assert classes["lesion"]["voxels"] == {"median": lesion, "min": lesion, "max": lesion}
    assert classes["lesion"]["mm3"]["median"] == pytest.approx(lesion * 2.0)
    assert classes["absent"] == {"value": 3, "cases_present": 0,
                                 "voxels": {"median": None, "min": None, "max": None},
                                 "mm3": {"median": None, "min": None, "max": None}}


def test_ct_has_no_per_case_statistics_and_keeps_negative_intensities(tmp_path, make_vol):
    arr = np.full(SHAPE, -1000.0, np.float32)
    arr[label_map() > 0] = 40.0
    arr[label_map() == 2] = 60.0
    fp = compute_fingerprint([make_vol.case(tmp_path, "ct", [arr], label_map())], "ct", LABELS)
    assert fp["modality"] == "CT"
    ch = fp["channels"][0]
    assert ch["per_case"] is None
    assert ch["foreground"]["min"] == 40.0 and ch["foreground"]["max"] == 60.0
    assert fp["cases"][0]["size_after_crop"] == [10, 11, 12]  # -1000 is nonzero: nothing to crop


def test_all_zero_image_keeps_full_size_like_nnunet(tmp_path, make_vol):
    fp = compute_fingerprint([make_vol.case(tmp_path, "z", [np.zeros(SHAPE, np.float32)], label_map())], "MR", LABELS)
    assert fp["cases"][0]["size_after_crop"] == [10, 11, 12]
    assert fp["channels"][0]["per_case"][0]["mean"] is None


def test_bad_inputs_raise_input_error_naming_the_file(tmp_path, make_vol):
    good = make_vol.case(tmp_path, "g", [mr_volume(0)], label_map())

    broken = tmp_path / "imagesTr" / "broken_0000.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really a gzip stream")
    with pytest.raises(InputError, match="broken_0000.nii.gz"):
        compute_fingerprint([good, dict(good, id="b", images=[str(broken)])], "MR", LABELS)

    with pytest.raises(InputError, match="missing.nii.gz: file not found"):
        compute_fingerprint([dict(good, label=str(tmp_path / "missing.nii.gz"))], "MR", LABELS)

    odd = make_vol.write(tmp_path / "odd.nii.gz", (label_map() * 3).astype(np.uint8))  # values 0, 3, 6
    with pytest.raises(InputError, match=r"odd.nii.gz: label value\(s\) \[6\] are not in the dataset's labels"):
        compute_fingerprint([dict(good, label=str(odd))], "MR", LABELS)

    small = make_vol.write(tmp_path / "small.nii.gz", label_map()[:, :, :9])
    with pytest.raises(InputError, match="small.nii.gz: label size"):
        compute_fingerprint([dict(good, label=str(small))], "MR", LABELS)

    with pytest.raises(InputError, match="channel file"):
        compute_fingerprint([good, dict(good, id="two", images=good["images"] * 2)], "MR", LABELS)
    with pytest.raises(InputError, match="none of the 1 case"):
        compute_fingerprint([dict(good, label=None)], "MR", LABELS)
    with pytest.raises(InputError, match="modality"):
        compute_fingerprint([good], "XRAY", LABELS)
    with pytest.raises(InputError, match="labels"):
        compute_fingerprint([good], "MR", {"background": 0, "organ": 1.5})
    with pytest.raises(InputError, match=r"cases\[0\]"):
        compute_fingerprint([{"id": "x", "images": "one.nii.gz", "label": None}], "MR", LABELS)
