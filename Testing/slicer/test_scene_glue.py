"""MRML glue against a real vtkMRMLScene (the slicer-core wheel): load, import, export."""

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from MedSeqFTUI import scene_glue  # noqa: E402

LPS_DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a rotated, non-identity grid


def write_image(path, array, spacing=(1.5, 2.0, 2.5), origin=(10.0, -20.0, 30.0), direction=LPS_DIRECTION):
    img = sitk.GetImageFromArray(array)  # array is (z, y, x)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


def make_case(folder, name, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(-100, 300, size=(12, 14, 16)).astype(np.int16)
    label = np.zeros_like(image, dtype=np.uint8)
    label[2:8, 3:9, 4:12] = 1
    label[8:11, 9:13, 2:6] = 2
    return write_image(folder / f"{name}.nii.gz", image), write_image(folder / f"{name}_seg.nii.gz", label), image, label


def scene_with_views():
    scene = slicer.vtkMRMLScene()
    for view in ("Red", "Yellow", "Green"):  # what Slicer's layout creates
        node = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        node.SetLayoutName(view)
    return scene


def segment_array(scene, seg_node, segment_name, reference):
    """Independent read-back: export one segment on the reference grid (z, y, x array)."""
    import vtk

    seg = seg_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(seg.GetSegmentIdBySegmentName(segment_name))
    lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(seg_node, ids, lm, reference)
    arr = slicer.util.arrayFromVolume(lm).copy()
    scene.RemoveNode(lm)
    return arr


def test_load_case_names_colours_geometry_and_views(tmp_path):
    image_path, label_path, image, label = make_case(tmp_path, "case_007")
    scene = scene_with_views()
    volume, seg = scene_glue.load_case(scene, image_path, label_path, {"background": 0, "liver": 1, "tumour": 2})

    np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume), image)
    assert volume.GetSpacing() == pytest.approx((1.5, 2.0, 2.5))
    # LPS (file) -> RAS (Slicer): x and y flip sign
    assert volume.GetOrigin() == pytest.approx((-10.0, 20.0, 30.0))
    assert scene_glue.segment_names(seg) == ["liver", "tumour"]
    segmentation = seg.GetSegmentation()
    assert segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("tumour")).GetColor() == pytest.approx(scene_glue.segment_color(2))
    for name, value in (("liver", 1), ("tumour", 2)):
        np.testing.assert_array_equal(segment_array(scene, seg, name, volume) > 0, label == value)
    # reference geometry is the volume's, and every slice view shows the volume
    assert seg.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()).GetID() == volume.GetID()
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    assert [composites.GetItemAsObject(i).GetBackgroundVolumeID() for i in range(3)] == [volume.GetID()] * 3
    # the temporary label map node is gone: only the volume and the segmentation remain
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0


def test_prediction_with_unnamed_value_and_missing_file(tmp_path):
    image_path, _, image, _ = make_case(tmp_path, "ct")
    pred = np.zeros(image.shape, dtype=np.uint8)
    pred[1:5, 1:5, 1:5] = 3
    pred_path = write_image(tmp_path / "ct_pred.nii.gz", pred)
    scene = scene_with_views()
    volume = scene_glue.load_volume(scene, image_path)
    lm = scene_glue.load_labelmap(scene, pred_path)
    seg = scene_glue.import_labels_as_segmentation(scene, lm, volume, {"background": 0, "spleen": 1}, "pred")
    assert scene_glue.segment_names(seg) == ["label_3"]  # value 3 has no name in the mapping
    assert int((segment_array(scene, seg, "label_3", volume) > 0).sum()) == 64
    with pytest.raises(ValueError, match="file not found"):
        scene_glue.load_volume(scene, tmp_path / "nope.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot be read"):
        scene_glue.load_volume(scene, tmp_path / "junk.nii.gz")


def test_export_pairs_reads_back_with_the_library(tmp_path):
    from MedSeqFTLib.data.datasets import read_dataset

    scene = scene_with_views()
    pairs, expected = [], {}
    # case A: liver=1, tumour=2 in the file; case B: only "tumour", stored with value 1,
    # so the export must renumber it to the dataset-wide value of "tumour"
    img_a, lab_a, _, label_a = make_case(tmp_path, "A", seed=1)
    vol_a, seg_a = scene_glue.load_case(scene, img_a, lab_a, {"background": 0, "liver": 1, "tumour": 2}, name="patient A")
    pairs.append((vol_a, seg_a))
    img_b, _, image_b, _ = make_case(tmp_path, "B", seed=2)
    only_tumour = np.zeros(image_b.shape, dtype=np.uint8)
    only_tumour[3:6, 3:6, 3:6] = 1
    lab_b = write_image(tmp_path / "B_only.nii.gz", only_tumour)
    vol_b, seg_b = scene_glue.load_case(scene, img_b, lab_b, {"background": 0, "tumour": 1}, name="patient-B")
    pairs.append((vol_b, seg_b))

    out = tmp_path / "dataset"
    mapping = scene_glue.export_pairs_to_dataset(scene, pairs, out)
    assert mapping == {"background": 0, "liver": 1, "tumour": 2}

    spec = read_dataset(out)
    assert spec.format == "plain"
    assert spec.case_ids == ["patient-B", "patient_A"]
    assert spec.labels == mapping
    got_a = sitk.ReadImage(str(out / "labels" / "patient_A.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got_a), label_a)
    assert got_a.GetSpacing() == pytest.approx((1.5, 2.0, 2.5))
    assert got_a.GetOrigin() == pytest.approx((10.0, -20.0, 30.0))
    assert got_a.GetDirection() == pytest.approx(LPS_DIRECTION)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels" / "patient-B.nii.gz"))),
                                  only_tumour * 2)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "images" / "patient-B.nii.gz"))), image_b)
    # helper nodes were removed again
    assert scene.GetNodesByClass("vtkMRMLColorTableNode").GetNumberOfItems() == 0
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0


def test_export_refuses_bad_input(tmp_path):
    scene = scene_with_views()
    with pytest.raises(ValueError, match="no \\(volume, segmentation\\) pairs"):
        scene_glue.export_pairs_to_dataset(scene, [], tmp_path / "x")
    img, lab, _, _ = make_case(tmp_path, "c")
    vol, seg = scene_glue.load_case(scene, img, lab, {"background": 0, "a": 1, "b": 2})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        scene_glue.export_pairs_to_dataset(scene, [(vol, seg)], tmp_path / "full")
    with pytest.raises(ValueError, match="duplicate case names"):
        scene_glue.export_pairs_to_dataset(scene, [(vol, seg), (vol, seg)], tmp_path / "dup")
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    with pytest.raises(ValueError, match="has no segments"):
        scene_glue.export_pairs_to_dataset(scene, [(vol, empty)], tmp_path / "e")
