import json

import pytest

from MedSeqFTLib.config import RetentionConfig, StageConfig, WorkspaceConfig
from MedSeqFTLib.presets import PRESETS, preset
from MedSeqFTLib.errors import InputError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_roundtrip_through_json(name):
    cfg = preset(name)
    back = WorkspaceConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg


def test_paper_defaults():
    cfg = preset("paper")
    assert cfg.arch.name == "swin_unetr" and cfg.arch.feature_size == 48
    assert (cfg.retention.fft.iterations, cfg.retention.fft.lr) == (25000, 3e-4)
    assert (cfg.retention.lora_kd.iterations, cfg.retention.lora_kd.lr, cfg.retention.lora_rank) == (5000, 3e-5, 2)
    assert cfg.retention.alpha == 2.0


@pytest.mark.parametrize("bad, match", [
    ({"arch": {"name": "resnet"}}, "unknown backbone 'resnet'"),
    ({"retention": {"lora_rank": 0}}, "lora_rank: must be >= 1"),
    ({"retention": {"fft": {"iterations": 0}}}, "iterations: must be >= 1"),
    ({"preprocess": {"spacing": [1, 1]}}, "spacing: needs 3 positive numbers"),
    ({"selection": {"method": "best"}}, "must be 'mds' or 'random'"),
    ({"sedd": 1}, r"unknown WorkspaceConfig key\(s\) \['sedd'\]"),
    ({"retention": {"kd_update": "both"}}, r"kd_update: must be one of \['independent', 'joint'\]"),
    ({"retention": {"lora_targets": "conv"}}, "lora_targets: must be one of"),
    ({"retention": {"first_task_lora": "yes"}}, "first_task_lora: must be true or false"),
])
def test_invalid_config_is_refused_with_a_clear_message(bad, match):
    with pytest.raises(InputError, match=match):
        WorkspaceConfig.from_dict(bad)


def test_paper_faithful_retention_defaults():
    r = RetentionConfig()
    assert (r.kd_update, r.first_task_lora, r.lora_targets) == ("independent", True, "auto")
    assert r.lora_on_first_task()
    assert not r.replace(first_task_lora=False).lora_on_first_task()
    assert not r.replace(lora_stage=False).lora_on_first_task() and not r.replace(enabled=False).lora_on_first_task()
    # a workspace.json written before these switches existed reads with the defaults
    old = RetentionConfig().to_dict()
    for key in ("kd_update", "first_task_lora", "lora_targets"):
        del old[key]
    assert RetentionConfig.from_dict(old) == RetentionConfig()


def test_buffer_size_default_is_a_fifth_of_training_cases():
    from MedSeqFTLib.config import SelectionConfig

    assert SelectionConfig().k_for(10) == 2
    assert SelectionConfig().k_for(3) == 1
    assert SelectionConfig(k=50).k_for(8) == 8


def test_cpu_presets_switch_off_the_two_measured_method_parts_and_paper_keeps_them():
    """docs/recipe.md "Method switches on the CPU presets": measured on the small U-Net."""
    paper = preset("paper").retention
    assert (paper.kd_update, paper.first_task_lora) == ("independent", True)
    for name in ("cpu", "cpu_demo"):
        r = preset(name).retention
        assert (r.kd_update, r.first_task_lora) == ("joint", False), name
        assert not r.lora_on_first_task()
