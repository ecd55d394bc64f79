"""RecipeConfig: the learning-rate factor of each schedule against direct formulas, and the
validation errors (InputError naming the field) of hand-edited recipe values."""

from __future__ import annotations

import math

import pytest

from MedSeqFTLib.config import RecipeConfig, WorkspaceConfig
from MedSeqFTLib.errors import InputError


def _poly(step, total, exponent=0.9):
    return (1.0 - step / total) ** exponent


@pytest.mark.parametrize("total", [1, 7, 100])
def test_poly_matches_nnunet_formula_at_every_step(total):
    recipe = RecipeConfig(schedule="poly")
    got = [recipe.lr_factor(i, total) for i in range(total)]
    expected = [_poly(i, total) for i in range(total)]
    assert got == pytest.approx(expected, rel=1e-12, abs=0)
    # first step runs at the full rate, the last at (1/T)^0.9 (never 0: the last step still learns)
    assert got[0] == 1.0
    assert got[-1] == pytest.approx((1.0 / total) ** 0.9, rel=1e-12)
    assert all(a > b for a, b in zip(got, got[1:]))


def test_poly_exponent_is_used():
    recipe = RecipeConfig(schedule="poly", poly_exponent=2.0)
    assert recipe.lr_factor(5, 10) == pytest.approx(0.25, rel=1e-12)
    assert recipe.lr_factor(9, 10) == pytest.approx(0.01, rel=1e-12)


def test_cosine_with_warmup_is_linear_then_half_cosine():
    total, frac = 20, 0.25
    recipe = RecipeConfig(schedule="cosine", warmup_fraction=frac)
    warm = 5  # 0.25 * 20
    got = [recipe.lr_factor(i, total) for i in range(total)]
    expected = [(i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / (total - warm)))
                for i in range(total)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # warm-up 1/5, 2/5, ..., 5/5; the cosine then starts at exactly 1
    assert got[:warm] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0], rel=1e-12)
    assert got[warm] == 1.0
    assert got[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 14 / 15)), rel=1e-12)
    assert 0 < got[-1] < 0.02
    after = got[warm:]
    assert all(a > b for a, b in zip(after, after[1:]))


def test_cosine_without_warmup_starts_at_one_and_halves_mid_stage():
    recipe = RecipeConfig(schedule="cosine")
    assert recipe.lr_factor(0, 10) == 1.0
    assert recipe.lr_factor(5, 10) == pytest.approx(0.5, abs=1e-12)


def test_poly_warmup_then_poly_over_the_remaining_steps():
    recipe = RecipeConfig(schedule="poly", warmup_fraction=0.2)
    total, warm = 10, 2
    got = [recipe.lr_factor(i, total) for i in range(total)]
    expected = [0.5, 1.0] + [(1 - (i - warm) / (total - warm)) ** 0.9 for i in range(warm, total)]
    assert got == pytest.approx(expected, rel=1e-12)


def test_constant_is_one_everywhere():
    recipe = RecipeConfig(schedule="constant")
    assert [recipe.lr_factor(i, 13) for i in range(13)] == [1.0] * 13


@pytest.mark.parametrize("schedule", ["poly", "cosine", "constant"])
def test_factor_stays_in_zero_one(schedule):
    recipe = RecipeConfig(schedule=schedule, warmup_fraction=0.1)
    vals = [recipe.lr_factor(i, 50) for i in range(50)]
    assert all(0.0 < v <= 1.0 for v in vals)


@pytest.mark.parametrize("field,value", [
    ("schedule", "step"),
    ("schedule", "Poly"),
    ("grad_clip", -0.5),
    ("amp", "fp8"),
    ("amp", True),
    ("workers", -1),
    ("memory_budget_mb", 0),
    ("memory_budget_mb", -100.0),
    ("warmup_fraction", 1.0),
    ("poly_exponent", 0.0),
    ("augment", "yes"),
    ("tta_mirror", 1),
    ("keep_largest", "always"),
    ("sw_overlap", 1.0),
])
def test_bad_value_raises_input_error_naming_the_field(field, value):
    with pytest.raises(InputError, match=rf"^recipe\.{field}: "):
        RecipeConfig(**{field: value})
    # the same through workspace.json: the nested key is named
    with pytest.raises(InputError) as info:
        WorkspaceConfig.from_dict({"recipe": {field: value}})
    assert str(info.value).startswith(f"recipe.{field}:")
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_good_values_are_accepted_and_round_trip():
    recipe = RecipeConfig(schedule="cosine", warmup_fraction=0.1, grad_clip=0.0, amp="off", workers=0,
                          memory_budget_mb=250.0, tta_mirror=False, keep_largest="on")
    back = WorkspaceConfig.from_dict(WorkspaceConfig(recipe=recipe).to_dict()).recipe
    assert back == recipe
    assert back.lr_factor(3, 10) == recipe.lr_factor(3, 10)


def test_unknown_recipe_key_is_refused():
    with pytest.raises(InputError, match=r"recipe: unknown RecipeConfig key\(s\) \['grad_clipping'\]"):
        WorkspaceConfig.from_dict({"recipe": {"grad_clipping": 1.0}})


@pytest.mark.parametrize("field,value", [("grad_clip", "high"), ("workers", "two"), ("memory_budget_mb", "lots"),
                                         ("workers", 1.5)])
def test_non_numeric_value_raises_input_error_naming_the_field(field, value):
    with pytest.raises(InputError, match=rf"^recipe\.{field}:"):
        WorkspaceConfig.from_dict({"recipe": {field: value}})
