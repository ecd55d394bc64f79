"""The fixed choices of the panels' combo boxes, shared with the module's parameter node.

Plain constants only (importable on any Python, also the 3.9 of an old Slicer that the module
refuses with a message): ``MedSeqFT.py`` declares its ``parameterNodeWrapper`` with them
(``Choice(DEVICES)`` ...), and the panels fill their combo boxes from them, so the saved
parameter node and the widgets always agree.
"""

__all__ = ["DEMO", "FOUNDATION_SOURCES", "BACKBONES", "PRESETS", "MODALITIES", "DEVICES", "TASK_MODES", "MODE_VALUES",
           "ADAPTER_METHODS", "BLACK_BOX_METHODS", "SHOTS_MAX", "SEED_MAX"]

DEMO = "demo (built-in small model)"
#: the Workspace panel's foundation-model box: the shipped demo model, or a file
FOUNDATION_SOURCES = [DEMO, "model file..."]
BACKBONES = ["auto (from the model file)", "small_unet", "swin_unetr"]
PRESETS = ["cpu_demo", "paper"]
#: "auto" leaves it to add-task (dataset.json, or guessed from intensities)
MODALITIES = ["auto", "CT", "MR", "PET", "other"]
DEVICES = ["auto", "cpu", "cuda:0", "cuda:1", "mps"]

#: the Tasks panel's mode box (``add-task --mode``, in ``MODE_VALUES`` order): MedSeqFT refines the
#: shared model; an adapter task freezes it and trains only its own small modules (FSEFT)
TASK_MODES = ["MedSeqFT K&G RFT", "Adapter (few-shot, frozen base)"]
MODE_VALUES = ["kg_rft", "adapter"]
#: ``add-task --method`` of an adapter task, the library's default first (MedSeqFTLib/adapters/config.py METHODS)
ADAPTER_METHODS = ["spatial_adapter", "spatial_adapter_1x1", "linear_probe", "lora", "bitfit", "decoder", "full"]
#: the methods that see only the frozen base's features: the only ones ``--transductive`` accepts
BLACK_BOX_METHODS = ["linear_probe", "spatial_adapter", "spatial_adapter_1x1"]
#: ranges of the shots (K, 0 = every training case) and shots-seed boxes
SHOTS_MAX = 10000
SEED_MAX = 1000000
