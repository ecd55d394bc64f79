"""The fixed choices of the panels' combo boxes, shared with the module's parameter node.

Plain constants only (importable on any Python, also the 3.9 of an old Slicer that the module
refuses with a message): ``MedSeqFT.py`` declares its ``parameterNodeWrapper`` with them
(``Choice(DEVICES)`` ...), and the panels fill their combo boxes from them, so the saved
parameter node and the widgets always agree.
"""

__all__ = ["DEMO", "FOUNDATION_SOURCES", "BACKBONES", "PRESETS", "MODALITIES", "DEVICES"]

DEMO = "demo (built-in small model)"
#: the Workspace panel's foundation-model box: the shipped demo model, or a file
FOUNDATION_SOURCES = [DEMO, "model file..."]
BACKBONES = ["auto (from the model file)", "small_unet", "swin_unetr"]
PRESETS = ["cpu_demo", "paper"]
#: "auto" leaves it to add-task (dataset.json, or guessed from intensities)
MODALITIES = ["auto", "CT", "MR", "PET", "other"]
DEVICES = ["auto", "cpu", "cuda:0", "cuda:1", "mps"]
