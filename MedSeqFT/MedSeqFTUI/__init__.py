"""Panels and scene glue of the MedSeqFT Slicer module.

Nothing here imports torch or MedSeqFTLib: the module talks to the library only through
workspace files and a background ``python -m MedSeqFTLib ...`` process (see ``jobprocess``).
Qt comes from ``qtcompat`` (Slicer's PythonQt inside Slicer, PySide6 in the tests), MRML
from ``slicer`` (the real application or the ``slicer-core`` wheel).
"""
