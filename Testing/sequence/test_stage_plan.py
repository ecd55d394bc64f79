"""The stages a refine job announces to the ETA estimator (the whole job, not just the current stage)."""

from types import SimpleNamespace

import pytest

from MedSeqFTLib.presets import preset
from MedSeqFTLib.jobs.eta import EtaEstimator
from MedSeqFTLib.sequence.runner import stage_plan


def _ws(**retention):
    cfg = preset("paper")
    cfg.retention = cfg.retention.replace(**retention)
    return SimpleNamespace(config=cfg, task_config=lambda name: cfg)


def test_first_task_is_fft_then_lora_later_tasks_kd_then_lora():
    ws = _ws()
    r = ws.config.retention
    assert stage_plan(ws, 0, "a") == [("fft", "a", r.fft.iterations), ("lora_kd", "a", r.lora_kd.iterations)]
    assert stage_plan(ws, 1, "b") == [("kd_fft", "b", r.kd_fft.iterations), ("lora_kd", "b", r.lora_kd.iterations)]


def test_switches_change_the_plan():
    assert [s for s, _, _ in stage_plan(_ws(lora_stage=False), 2, "c")] == ["kd_fft"]
    assert [s for s, _, _ in stage_plan(_ws(enabled=False), 2, "c")] == ["fft"]
    # task 1 is plain FFT with the switch off, without the LoRA stage, or without retention
    for switch in ({"first_task_lora": False}, {"lora_stage": False}, {"enabled": False}):
        assert [s for s, _, _ in stage_plan(_ws(**switch), 0, "a")] == ["fft"], switch
    assert [s for s, _, _ in stage_plan(_ws(first_task_lora=False), 1, "b")] == ["kd_fft", "lora_kd"]


def test_eta_counts_the_first_tasks_lora_stage():
    """While task 1's FFT runs, its LoRA-KD stage and the later tasks are still to come."""
    ws = _ws()
    now = [0.0]
    eta = EtaEstimator(clock=lambda: now[0])
    eta.plan(stage_plan(ws, 0, "a") + stage_plan(ws, 1, "b"))
    for step in range(1, 11):
        now[0] += 1.0
        left = eta.update("fft", "a", step, 150)
    r = ws.config.retention
    assert left == pytest.approx((150 - 10) + r.lora_kd.iterations + r.kd_fft.iterations + r.lora_kd.iterations)
    eta.update("lora_kd", "a", 1, r.lora_kd.iterations)  # task 1's LoRA-KD starts: it leaves the plan
    assert [s for s, t, _ in eta._plan] == ["kd_fft", "lora_kd"] and {t for _, t, _ in eta._plan} == {"b"}


def test_eta_includes_the_rest_of_the_current_task():
    """While kd_fft of the last task runs, its lora_kd stage is still counted."""
    ws = _ws()
    now = [0.0]
    eta = EtaEstimator(clock=lambda: now[0])
    eta.plan(stage_plan(ws, 1, "b"))
    for step in range(1, 11):  # 1 s per kd_fft step
        now[0] += 1.0
        left = eta.update("kd_fft", "b", step, 150)
    r = ws.config.retention
    assert left >= (150 - 10) * 0.9 + r.lora_kd.iterations * 0.5


def test_an_adapter_task_announces_its_one_stage():
    ws = _ws()
    assert stage_plan(ws, 3, "fewshot", mode="adapter") == [("adapter", "fewshot", ws.config.adapter.iterations)]
