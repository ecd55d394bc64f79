"""Standard terminology (SNOMED CT codes) for segments, as Slicer's Segment Editor stores it.

A segment's ``TerminologyEntry`` tag is Slicer's serialized terminology entry::

    <context>~<category>~<type>~<type modifier>~<anatomic context>~<anatomic region>~<region modifier>

with each coded item written ``CodingScheme^CodeValue^CodeMeaning`` (empty: ``^^``). Known label
names (``liver``, ``kidney_left``, ``pancreas_tumour`` ...) get their SNOMED CT codes (the same
codes the DICOM master list and SlicerTotalSegmentator use); a tumour/lesion label is coded as a
morphologically altered structure (Mass) with its organ as the anatomic region. Any other name
gets the entry Slicer gives a new segment (Tissue), so every segment carries a valid entry.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

__all__ = ["ORGANS", "terminology_entry", "GENERIC_ENTRY", "TAG_NAME"]

#: ``vtkSegment.GetTerminologyEntryTagName()``
TAG_NAME = "TerminologyEntry"
DICOM_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
ANATOMICAL_STRUCTURE = "SCT^123037004^Anatomical Structure"
ALTERED_STRUCTURE = "SCT^49755003^Morphologically Altered Structure"
MASS = "SCT^4147007^Mass"
LEFT, RIGHT = "SCT^7771000^Left", "SCT^24028007^Right"
#: what Slicer assigns to a new segment: category and type Tissue
GENERIC_ENTRY = ("Segmentation category and type - 3D Slicer General Anatomy list"
                 f"~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~{ANATOMIC_CONTEXT}~^^~^^")

#: normalized label name -> SNOMED CT (code value, code meaning)
ORGANS = {
    "liver": ("10200004", "Liver"),
    "spleen": ("78961009", "Spleen"),
    "pancreas": ("15776009", "Pancreas"),
    "kidney": ("64033007", "Kidney"),
    "adrenal_gland": ("23451007", "Adrenal gland"),
    "gallbladder": ("28231008", "Gallbladder"),
    "stomach": ("69695003", "Stomach"),
    "esophagus": ("32849002", "Esophagus"),
    "duodenum": ("38848004", "Duodenum"),
    "small_bowel": ("30315005", "Small Intestine"),
    "colon": ("71854001", "Colon"),
    "aorta": ("15825003", "Aorta"),
    "inferior_vena_cava": ("64131007", "Inferior vena cava"),
    "portal_vein": ("32764006", "Portal vein"),
    "trachea": ("44567001", "Trachea"),
    "heart": ("80891009", "Heart"),
    "brain": ("12738006", "Brain"),
}
_SYNONYMS = {"ivc": "inferior_vena_cava", "small_intestine": "small_bowel", "oesophagus": "esophagus",
             "gall_bladder": "gallbladder", "adrenal": "adrenal_gland", "kidneys": "kidney"}
_LESION = re.compile(r"^(?P<organ>.+?)_(tumour|tumor|lesion|mass|cancer)s?$|^(tumour|tumor|lesion|mass)s?$")


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _organ(name: str) -> Tuple[Optional[Tuple[str, str]], str]:
    """``((code, meaning) or None, modifier)`` for an organ name with an optional side."""
    modifier = "^^"
    for side, code in (("left", LEFT), ("right", RIGHT)):
        for pattern in (f"{side}_", f"_{side}"):
            if name.startswith(pattern) if pattern.endswith("_") else name.endswith(pattern):
                name = name[len(pattern):] if pattern.endswith("_") else name[: -len(pattern)]
                modifier = code
    name = _SYNONYMS.get(name, name)
    return ORGANS.get(name), modifier


def _coded(code: Tuple[str, str]) -> str:
    return f"SCT^{code[0]}^{code[1]}"


def terminology_entry(label_name: str) -> str:
    """The serialized terminology entry for a segment named ``label_name``.

    ``"liver"`` -> Anatomical Structure / Liver; ``"kidney_left"`` -> Kidney with modifier
    Left; ``"liver_tumour"`` -> Morphologically Altered Structure / Mass in the region Liver;
    anything unknown -> ``GENERIC_ENTRY``.
    """
    name = _normalize(label_name)
    lesion = _LESION.match(name)
    if lesion:
        region, modifier = _organ(lesion.group("organ") or "")
        where = _coded(region) if region else "^^"
        return f"{DICOM_CONTEXT}~{ALTERED_STRUCTURE}~{MASS}~^^~{ANATOMIC_CONTEXT}~{where}~{modifier if region else '^^'}"
    organ, modifier = _organ(name)
    if organ is None:
        return GENERIC_ENTRY
    return f"{DICOM_CONTEXT}~{ANATOMICAL_STRUCTURE}~{_coded(organ)}~{modifier}~{ANATOMIC_CONTEXT}~^^~^^"
