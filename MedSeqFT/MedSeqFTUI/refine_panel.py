"""Refinement panel: device and main hyper-parameters, Start (which becomes Cancel while the
job runs; refine trains every pending task in order, adapter tasks included), Resume after a
cancel or crash, and the job's progress, stage, task, time left and log, fed from
``events.jsonl`` by the controller's timer. Changed hyper-parameters are recorded as
workspace-wide overrides with ``medseqft plan WS --set ...`` before refine starts; the
"Advanced settings" section below (``settings_panel.py``) shows and edits every setting."""

from __future__ import annotations

from .choices import DEVICES
from .events import format_duration
from .jobprocess import pid_alive, read_status
from .qtcompat import get, qt
from .settings_panel import AdvancedSettings
from .workspace_files import last_line
from .widgets import hbox, section_layout
from . import workspace_files as wf

__all__ = ["RefinePanel"]

#: progress-event ``stage`` -> what the Stage line says (an unknown stage is shown as it is)
STAGE_NAMES = {"fft": "full fine-tuning (task 1)", "kd_fft": "KD-based fine-tuning", "lora_kd": "LoRA distillation",
               "merge": "merging LoRA", "adapter": "adapter training (frozen base)",
               "transductive": "transductive adaptation (size prior)", "evaluate": "evaluating", "select": "MDS selection",
               "predict": "predicting"}
MAX_LOG_LINES = 2000


class RefinePanel:
    def __init__(self, section, controller) -> None:
        self.c = controller
        layout = section_layout(section)
        form = qt.QFormLayout()
        self.deviceCombo = qt.QComboBox()
        for d in DEVICES:
            self.deviceCombo.addItem(d)
        form.addRow("Device:", self.deviceCombo)
        self.iterationsSpin = qt.QSpinBox()
        self.iterationsSpin.setRange(0, 1000000)
        self.iterationsSpin.setSpecialValueText("workspace default")
        self.iterationsSpin.setToolTip("fine-tuning iterations per task (paper: 25,000); LoRA distillation gets a fifth. "
                                       "Recorded as a workspace-wide override (medseqft plan --set) when you press Start. "
                                       "Adapter tasks train adapter.iterations steps (Advanced settings)")
        form.addRow("Iterations:", self.iterationsSpin)
        self.rankSpin = qt.QSpinBox()
        self.rankSpin.setRange(1, 64)
        self.rankSpin.setValue(2)
        self.rankSpin.setToolTip("LoRA rank r of the distillation stage (paper: 2)")
        form.addRow("LoRA rank:", self.rankSpin)
        self.kSpin = qt.QSpinBox()
        self.kSpin.setRange(0, 10000)
        self.kSpin.setSpecialValueText("auto (20%)")
        self.kSpin.setToolTip("buffer cases per task for tasks without a buffer yet")
        form.addRow("Buffer K:", self.kSpin)
        self.startButton = qt.QPushButton("Start")
        self.resumeButton = qt.QPushButton("Resume")
        form.addRow(hbox(self.startButton, self.resumeButton))
        self.errorLabel = qt.QLabel("")  # a refused setting: the CLI's one-line error, inline
        self.errorLabel.setWordWrap(True)
        self.errorLabel.setStyleSheet("color: #c62828")
        form.addRow(self.errorLabel)
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        form.addRow("Progress:", self.progress)
        self.stageLabel = qt.QLabel("-")
        self.taskLabel = qt.QLabel("-")
        self.etaLabel = qt.QLabel("-")
        form.addRow("Stage:", self.stageLabel)
        form.addRow("Task:", self.taskLabel)
        form.addRow("Time left:", self.etaLabel)
        self.log = qt.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setMinimumHeight(110)
        form.addRow(self.log)
        box = qt.QWidget()
        box.setLayout(form)
        layout.addWidget(box)
        self.advanced = AdvancedSettings(controller)
        layout.addWidget(self.advanced.section)
        self._shown = {}  # the hyper-parameters as last loaded into the spin boxes
        guard = controller.guard
        guard.on_click(self.startButton, "Could not start or cancel the refinement.", self.on_start_or_cancel)
        guard.on_click(self.resumeButton, "Could not resume the refinement.", self.on_resume)
        guard.connect(self.c.workspaceChanged, "Could not show the refinement settings.",
                      lambda *_: (self.load_hyper_parameters(), self._update_enabled()))
        guard.connect(self.c.dataChanged, "Could not show the refinement settings.",
                      lambda *_: self.load_hyper_parameters(keep_edits=True))
        guard.connect(self.c.busyChanged, "Could not update the Refinement panel.", lambda *_: self._update_enabled())
        guard.connect(self.c.jobStarted, "Could not show the started job.", self.on_job_started)
        guard.connect(self.c.jobEvents, "Could not show the job's progress.", self.on_job_events)
        guard.connect(self.c.jobFinished, "Could not show the end of the job.", self.on_job_finished)
        self._update_enabled()

    # -- state ----------------------------------------------------------------------------
    def _refine_running(self) -> bool:
        return bool(self.c.job and self.c.job.active and self.c.job.command == "refine")

    def can_resume(self) -> bool:
        """A refine job was cancelled or died, or a task was left in ``training``."""
        ws = self.c.workspace
        if ws is None:
            return False
        if any(r["status"] == "training" for r in wf.task_rows(ws)):
            return True
        last = wf.latest_job(ws, "refine")
        if last is None:
            return False
        state = read_status(last).get("state")
        return state in ("cancelled", "failed", "died")

    def _update_enabled(self) -> None:
        running = self._refine_running()
        self.startButton.setText("Cancel" if running else "Start")
        self.startButton.setEnabled(running or (self.c.workspace is not None and not self.c.busy))
        self.resumeButton.setEnabled(not self.c.busy and self.can_resume())

    # -- actions --------------------------------------------------------------------------
    def refine_arguments(self, resume: bool = False) -> list:
        args = ["--device", get(self.deviceCombo, "currentText")]
        return args + (["--resume"] if resume else [])

    def _spin_values(self) -> dict:
        return {"iterations": get(self.iterationsSpin, "value"), "lora_rank": get(self.rankSpin, "value"),
                "k": get(self.kSpin, "value")}

    def load_hyper_parameters(self, keep_edits: bool = False) -> None:
        """Show the workspace's settings (the spin boxes start from what the library will use).

        ``keep_edits``: leave a spin box the user changed since the last load as it is.
        """
        hp = wf.hyper_parameters(self.c.workspace) if self.c.workspace else {}
        new = {"iterations": int(hp.get("iterations") or 0), "lora_rank": int(hp.get("lora_rank") or 2),
               "k": int(hp.get("k") or 0)}
        now = self._spin_values()
        for key, spin in (("iterations", self.iterationsSpin), ("lora_rank", self.rankSpin), ("k", self.kSpin)):
            if not keep_edits or now[key] == self._shown.get(key, now[key]):
                spin.setValue(new[key])
        self._shown = new

    def override_arguments(self) -> list:
        """``--set KEY=VALUE`` for each setting changed since it was shown (``[]``: none changed).

        Iterations set both fine-tuning stages and a fifth for LoRA distillation (the paper's
        25,000 : 5,000); K = 0 means "auto" (``selection.k=null``, 20 % of the training cases).
        """
        now, shown = self._spin_values(), self._shown
        pairs = []
        n = now["iterations"]
        if n and n != shown.get("iterations"):
            pairs += [("retention.fft.iterations", n), ("retention.kd_fft.iterations", n),
                      ("retention.lora_kd.iterations", max(1, n // 5))]
        if now["lora_rank"] != shown.get("lora_rank"):
            pairs.append(("retention.lora_rank", now["lora_rank"]))
        if now["k"] != shown.get("k"):
            pairs.append(("selection.k", now["k"] or "null"))
        return [a for key, value in pairs for a in ("--set", f"{key}={value}")]

    def on_start_or_cancel(self) -> None:
        if self._refine_running():
            self.c.cancel_job()
            self.startButton.setEnabled(False)
            self.startButton.setText("Cancelling...")
            return
        self._start(resume=False)

    def _start(self, resume: bool) -> None:
        if self.c.workspace is None:
            return
        lock = wf.read_json_or(self.c.workspace / ".lock", {}) or {}
        if lock.get("pid") and pid_alive(lock.get("pid")):
            self.errorLabel.setText(f"the workspace is busy: '{lock.get('command', '?')}' (pid {lock['pid']}) holds its lock")
            return
        self.errorLabel.setText("")
        overrides = self.override_arguments()
        if not overrides:
            self.c.run_job("refine", self.refine_arguments(resume=resume))
            return

        def recorded(code, out, err):
            if code != 0:  # a refused value: the CLI's one line, and no refine
                self.errorLabel.setText(last_line(err) or f"medseqft plan exited with {code}")
                return
            self.load_hyper_parameters()
            self.c.run_job("refine", self.refine_arguments(resume=resume))

        if self.c.run_command(["plan", str(self.c.workspace)] + overrides, recorded):
            self.log.appendPlainText("recording settings: " + " ".join(a for a in overrides if a != "--set"))

    def on_resume(self) -> None:
        self._start(resume=True)

    # -- job feedback ---------------------------------------------------------------------
    def on_job_started(self, command) -> None:
        if command != "refine":
            return
        self.progress.setValue(0)
        self.log.appendPlainText(f"--- {command} started ---")
        self._update_enabled()

    def on_job_events(self, events, summary) -> None:
        if self.c.job is None or self.c.job.command != "refine":
            return
        for ev in events:
            line = summary.log_line(ev)
            if line:
                self.log.appendPlainText(line)
        self.progress.setValue(int(round(1000 * summary.fraction)))
        self.progress.setFormat(f"{summary.step}/{summary.total}  %p%" if summary.total else "%p%")
        self.stageLabel.setText(STAGE_NAMES.get(summary.stage, summary.stage or "-"))
        self.taskLabel.setText(summary.task or "-")
        self.etaLabel.setText(format_duration(summary.eta_s) + (" (this stage)" if summary.eta_s else ""))

    def on_job_finished(self, state, summary, command) -> None:
        if command != "refine":
            return
        self.log.appendPlainText(f"--- refine {state}: {summary.message or ''} ---")
        self.stageLabel.setText({"done": "finished", "cancelled": "cancelled (Resume continues)",
                                 "failed": "failed (Resume continues)"}.get(state, state))
        if state == "failed" and self.c.job is not None and self.c.job.error:
            self.errorLabel.setText(self.c.job.error)  # inline; the log and the application log have it too
        self._update_enabled()
