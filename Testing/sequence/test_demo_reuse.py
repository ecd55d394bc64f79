"""An interrupted first demo run is completed, not silently reused with fewer tasks."""

import json

from MedSeqFTLib.data.phantoms import generate_phantoms
from MedSeqFTLib.sequence import demo
from MedSeqFTLib.sequence.init import init_workspace
from MedSeqFTLib.sequence.workspace import Workspace


def test_missing_tasks_and_settings_are_restored(tmp_path):
    datasets = generate_phantoms(tmp_path / "ph", tasks=2, cases=3, seed=1, size=24, test_cases=0)
    ws, _ = init_workspace(tmp_path / "ws", "demo", seed=demo.DEMO_SEED)
    ws.add_task(datasets[0])
    # add-task of the second dataset died after writing task.json, before workspace.json
    name2 = "PhantomKidney"
    (ws.task_dir(name2)).mkdir(parents=True)
    (ws.task_dir(name2) / "task.json").write_text(json.dumps({"name": name2}))
    ws = Workspace.open(tmp_path / "ws")
    with ws.lock("demo"):
        demo._configure(ws, demo.SETTINGS["quick"])
        demo._add_missing_tasks(ws, datasets, reporter=None)
    ws = Workspace.open(tmp_path / "ws")
    assert ws.task_names() == ["PhantomLiver", name2]
    assert ws.task(name2)["status"] == "added" and len(ws.task(name2)["cases"]) == 3
    assert ws.config.retention.kd_fft.iterations == demo.SETTINGS["quick"].kd_iterations
    demo._add_missing_tasks(ws, datasets, reporter=None)  # idempotent
    assert Workspace.open(tmp_path / "ws").task_names() == ["PhantomLiver", name2]
