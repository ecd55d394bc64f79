"""Builds the five panels into the sections of ``Resources/UI/MedSeqFT.ui``."""

from __future__ import annotations

from .buffer_panel import BufferPanel
from .refine_panel import RefinePanel
from .results_panel import ResultsPanel
from .tasks_panel import TasksPanel
from .widgets import find_child
from .workspace_panel import WorkspacePanel

__all__ = ["SECTIONS", "Panels"]

#: (objectName of the section in MedSeqFT.ui, panel class, attribute name)
SECTIONS = [
    ("workspaceSection", WorkspacePanel, "workspace"),
    ("tasksSection", TasksPanel, "tasks"),
    ("bufferSection", BufferPanel, "buffer"),
    ("refineSection", RefinePanel, "refine"),
    ("resultsSection", ResultsPanel, "results"),
]


class Panels:
    """The panels of one module widget; ``panels.refine`` etc., ``panels.sections[name]``."""

    def __init__(self, root, controller) -> None:
        self.controller = controller
        self.sections = {}
        for object_name, cls, attr in SECTIONS:
            section = find_child(root, object_name)
            if section is None:
                raise RuntimeError(f"MedSeqFT.ui has no section named {object_name}")
            self.sections[attr] = section
            setattr(self, attr, cls(section, controller))

    def parameter_widgets(self) -> dict:
        """Parameter name (of the module's ``MedSeqFTParameterNode``) -> the widget that edits it,
        for ``parameterNode.connectParametersToGui``: these settings are saved with the scene."""
        return {
            "workspacePath": self.workspace.pathEdit,
            "foundationSource": self.workspace.foundationCombo,
            "foundationFile": self.workspace.foundationEdit,
            "backbone": self.workspace.backboneCombo,
            "preset": self.workspace.presetCombo,
            "datasetPath": self.tasks.datasetEdit,
            "taskName": self.tasks.nameEdit,
            "modality": self.tasks.modalityCombo,
            "taskMode": self.tasks.modeCombo,
            "adapterMethod": self.tasks.methodCombo,
            "shots": self.tasks.shotsSpin,
            "shotsSeed": self.tasks.shotsSeedSpin,
            "transductiveTask": self.tasks.transductiveCheck,
            "bufferK": self.buffer.kSpin,
            "mdsRuns": self.buffer.runsSpin,
            "randomBuffer": self.buffer.randomCheck,
            "device": self.refine.deviceCombo,
            "inputVolume": self.results.volumeSelector,
            "outputSegmentation": self.results.segmentationSelector,
            "transductivePredict": self.results.transductiveCheck,
        }
