"""MRML scene <-> files: load task cases, show predictions as segmentations, export scene pairs.

Every function takes the ``scene`` explicitly (``slicer.mrmlScene`` inside Slicer, a plain
``slicer.vtkMRMLScene()`` from the ``slicer-core`` wheel in the tests), and uses only MRML
and the Segmentations logic, so it runs identically in both. Label files are plain integer
label maps; their names come from ``labels`` ({name: value}, background 0) as in
``task.json`` and ``labels.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import slicer
import vtk

from .terminology import TAG_NAME, terminology_entry

__all__ = [
    "SEGMENT_COLORS",
    "segment_color",
    "load_volume",
    "load_labelmap",
    "import_labels_as_segmentation",
    "load_case",
    "show_in_slice_views",
    "segment_names",
    "segment_terminology",
    "export_pairs_to_dataset",
    "safe_case_name",
    "save_volume",
]

#: distinct, colour-blind-friendly-ish colours (RGB 0..1) for label values 1, 2, 3, ...
SEGMENT_COLORS = [
    (0.90, 0.38, 0.00), (0.00, 0.62, 0.45), (0.34, 0.71, 0.91), (0.94, 0.89, 0.26),
    (0.00, 0.45, 0.70), (0.80, 0.47, 0.65), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
]


def segment_color(value: int) -> Tuple[float, float, float]:
    """The display colour of label ``value`` (>= 1); the palette repeats after 12 labels."""
    return SEGMENT_COLORS[(int(value) - 1) % len(SEGMENT_COLORS)]


def _read_into(scene, node, path: Path):
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(storage)
        scene.RemoveNode(node)
        raise ValueError(f"{path}: cannot be read as an image")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def _load_node(scene, class_name: str, path: str | Path, name: Optional[str]):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    node = scene.AddNewNodeByClass(class_name, name or _stem(path))
    return _read_into(scene, node, path)


def load_volume(scene, path: str | Path, name: Optional[str] = None):
    """Load an image file as a ``vtkMRMLScalarVolumeNode`` with a default display node.

    Raises:
        ValueError: the file is missing or is not a readable image.
    """
    node = _load_node(scene, "vtkMRMLScalarVolumeNode", path, name)
    node.CreateDefaultDisplayNodes()
    return node


def load_labelmap(scene, path: str | Path, name: Optional[str] = None):
    """Load an integer label file as a ``vtkMRMLLabelMapVolumeNode``.

    Raises:
        ValueError: the file is missing or is not a readable image.
    """
    return _load_node(scene, "vtkMRMLLabelMapVolumeNode", path, name)


def import_labels_as_segmentation(scene, labelmap_node, reference_volume, labels: Dict[str, int],
                                  name: str, remove_labelmap: bool = True, segmentation=None):
    """Turn a label map into a segmentation node overlaid on ``reference_volume``.

    Segments get the names of ``labels`` (value -> name; values without a name are called
    ``label_<v>``), the colours of ``segment_color`` and a standard terminology entry
    (``terminology.terminology_entry``: SNOMED CT codes for known names, Slicer's generic
    Tissue otherwise); the segmentation's reference image geometry is the volume's, so it is
    shown and edited on the volume's grid.

    Args:
        segmentation: an existing ``vtkMRMLSegmentationNode`` to fill (its segments are
            replaced); ``None`` adds a new node called ``name``.

    Returns:
        the ``vtkMRMLSegmentationNode``.

    Raises:
        ValueError: the Segmentations logic could not import the label map.
    """
    created = segmentation is None
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name) if created else segmentation
    if not created:
        seg.GetSegmentation().RemoveAllSegments()
    seg.CreateDefaultDisplayNodes()
    if reference_volume is not None:
        seg.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, seg, ""):
        if created:
            scene.RemoveNode(seg)
        raise ValueError(f"{labelmap_node.GetName()}: cannot be imported as a segmentation")
    by_value = {int(v): str(k) for k, v in labels.items() if int(v) != 0}
    segmentation = seg.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        value = int(segment.GetLabelValue())
        segment.SetName(by_value.get(value, f"label_{value}"))
        segment.SetColor(*segment_color(value))
        segment.SetTag(TAG_NAME, terminology_entry(segment.GetName()))
    if remove_labelmap:
        display = labelmap_node.GetDisplayNode()
        if display is not None:
            scene.RemoveNode(display)
        storage = labelmap_node.GetStorageNode()
        if storage is not None:
            scene.RemoveNode(storage)
        scene.RemoveNode(labelmap_node)
    return seg


def load_case(scene, image_path: str | Path, label_path: Optional[str | Path], labels: Dict[str, int],
              name: Optional[str] = None):
    """Load one case (image + optional labels) and show it in the slice views.

    Returns:
        ``(volume_node, segmentation_node_or_None)``.
    """
    name = name or _stem(Path(image_path))
    volume = load_volume(scene, image_path, name)
    seg = None
    if label_path is not None:
        lm = load_labelmap(scene, label_path, f"{name}_labels_tmp")
        seg = import_labels_as_segmentation(scene, lm, volume, labels, f"{name} labels")
    show_in_slice_views(scene, volume, seg)
    return volume, seg


def show_in_slice_views(scene, volume, segmentation=None) -> int:
    """Put ``volume`` as background of every slice view and make ``segmentation`` visible.

    Works on the slice composite nodes of ``scene`` (present in Slicer and in any scene that
    has a layout); inside the application the views are also re-centred.

    Returns:
        the number of slice views updated.
    """
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    count = 0
    for i in range(composites.GetNumberOfItems()):
        composite = composites.GetItemAsObject(i)
        composite.SetBackgroundVolumeID(volume.GetID())
        count += 1
    if segmentation is not None and segmentation.GetDisplayNode() is not None:
        segmentation.GetDisplayNode().SetVisibility(True)
        segmentation.GetDisplayNode().SetVisibility2D(True)
    if getattr(slicer, "app", None) is not None:  # real application: fit the views too
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
    return count


def segment_names(segmentation_node) -> List[str]:
    """Names of the segments of a segmentation node, in segment order."""
    seg = segmentation_node.GetSegmentation()
    return [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())]


def segment_terminology(segment) -> str:
    """The serialized terminology entry of a ``vtkSegment`` (``""`` when it has none)."""
    value = vtk.mutable("")
    segment.GetTag(TAG_NAME, value)
    return str(value)


def safe_case_name(name: str) -> str:
    """A file-name-safe case id: letters, digits, ``-`` and ``_`` (others become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name.strip()).strip("_")
    return cleaned or "case"


def save_volume(scene, node, path: str | Path) -> Path:
    """Write a volume node to ``path`` (format from the suffix, compressed), e.g. as a
    prediction input for a volume that exists only in the scene."""
    path = Path(path)
    _write_node(scene, node, path)
    return path


def _write_node(scene, node, path: Path) -> None:
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    try:
        storage.SetFileName(str(path))
        storage.SetUseCompression(1)
        if not storage.WriteData(node):
            raise ValueError(f"{path}: could not be written")
    finally:
        scene.RemoveNode(storage)


def export_pairs_to_dataset(scene, pairs: Sequence[Tuple[object, object]], out_dir: str | Path,
                            case_names: Optional[Sequence[str]] = None,
                            label_order: Optional[Iterable[str]] = None) -> Dict[str, int]:
    """Write (volume, segmentation) pairs as a plain dataset folder the library can read.

    Layout: ``out_dir/images/<case>.nii.gz``, ``out_dir/labels/<case>.nii.gz`` (integer label
    map on the volume's grid) and ``out_dir/labels.json`` ({"background": 0, name: k}).
    Label values follow ``label_order`` if given, else the order segment names are first met;
    the same segment name gets the same value in every case. Where segments overlap, the one
    with the higher value wins.

    Args:
        scene: the MRML scene holding the nodes.
        pairs: ``(vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode)`` per case.
        out_dir: the dataset folder to create (must be empty or absent).
        case_names: case ids (default: the volume node names, made file-name safe).
        label_order: segment names in label-value order.

    Returns:
        the label mapping written to ``labels.json``.

    Raises:
        ValueError: no pairs, a pair without a volume or segments, duplicate case names, or
            ``out_dir`` exists and is not empty.
    """
    out_dir = Path(out_dir)
    if not pairs:
        raise ValueError(f"{out_dir}: no (volume, segmentation) pairs to export")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir}: folder exists and is not empty; choose a new dataset folder")
    names = [safe_case_name(n) for n in (case_names or [v.GetName() for v, _ in pairs])]
    if len(set(names)) != len(names):
        raise ValueError(f"{out_dir}: duplicate case names {sorted(n for n in names if names.count(n) > 1)}")
    order = list(label_order or [])
    for volume, seg in pairs:
        if volume is None or seg is None:
            raise ValueError(f"{out_dir}: every case needs a volume and a segmentation")
        seg_names = segment_names(seg)
        if not seg_names:
            raise ValueError(f"{seg.GetName()}: segmentation has no segments")
        order += [n for n in seg_names if n not in order]
    mapping = {"background": 0}
    mapping.update({n: i + 1 for i, n in enumerate(order)})

    colors = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "__medseqft_export__")
    colors.SetTypeToUser()
    colors.SetNumberOfColors(len(order) + 1)
    colors.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for name, value in mapping.items():
        if value:
            colors.SetColor(value, name, *segment_color(value), 1.0)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    try:
        for (volume, seg), case in zip(pairs, names):
            # ascending label value so the higher value wins overlaps, as documented
            segmentation = seg.GetSegmentation()
            ids = sorted((segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())),
                         key=lambda sid: mapping[segmentation.GetSegment(sid).GetName()])
            id_array = vtk.vtkStringArray()
            for sid in ids:
                id_array.InsertNextValue(sid)
            labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"__{case}_export__")
            try:
                ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                    seg, id_array, labelmap, volume, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, colors)
                if not ok:
                    raise ValueError(f"{seg.GetName()}: segments could not be exported on {volume.GetName()}'s grid")
                _write_node(scene, volume, out_dir / "images" / f"{case}.nii.gz")
                _write_node(scene, labelmap, out_dir / "labels" / f"{case}.nii.gz")
            finally:
                display = labelmap.GetDisplayNode()
                if display is not None:
                    # the export makes a "<segmentation>_ColorTable" node for the label map
                    color = display.GetColorNode()
                    if color is not None and color is not colors and not color.GetSingletonTag():
                        scene.RemoveNode(color)
                    scene.RemoveNode(display)
                scene.RemoveNode(labelmap)
    finally:
        scene.RemoveNode(colors)
    tmp = out_dir / ".labels.json.tmp"
    tmp.write_text(json.dumps(mapping, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "labels.json")
    return mapping


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem
