"""MedSeqFTLib: sequential fine-tuning of 3D medical segmentation foundation models.

Pure Python (torch, MONAI, PEFT, SimpleITK, safetensors); never imports Slicer, Qt or VTK.
Importing the package is cheap: heavy libraries are imported where they are used.
"""

__version__ = "0.1.0"
