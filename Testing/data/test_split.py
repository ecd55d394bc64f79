"""make_split: deterministic seeded split, sizes, and checks of a dataset's own split."""

from __future__ import annotations

import numpy as np
import pytest

from MedSeqFTLib.data.split import make_split
from MedSeqFTLib.errors import InputError

IDS = [f"case_{i:02d}" for i in range(10)]


def test_random_split_matches_an_independent_computation():
    result = make_split(IDS, 0.8, seed=3)
    perm = np.random.default_rng(3).permutation(10)
    ordered = sorted(IDS)
    assert result == {"train": sorted(ordered[i] for i in perm[:8]), "test": sorted(ordered[i] for i in perm[8:]),
                      "seed": 3, "method": "random 80:20"}


def test_split_is_deterministic_and_order_independent():
    a = make_split(IDS, seed=7)
    b = make_split(list(reversed(IDS)), seed=7)
    assert a == b == make_split(IDS, seed=7)
    others = [make_split(IDS, seed=s)["test"] for s in range(8, 14)]
    assert any(t != a["test"] for t in others)


@pytest.mark.parametrize("n, fraction, n_train", [(10, 0.8, 8), (5, 0.8, 4), (2, 0.8, 1), (1, 0.8, 1),
                                                   (4, 1.0, 3), (3, 0.1, 1), (7, 0.7, 5)])
def test_split_sizes(n, fraction, n_train):
    ids = [f"c{i}" for i in range(n)]
    result = make_split(ids, fraction, seed=0)
    assert len(result["train"]) == n_train and len(result["test"]) == n - n_train
    assert sorted(result["train"] + result["test"]) == sorted(ids)
    assert result["train"] == sorted(result["train"]) and result["test"] == sorted(result["test"])


def test_method_names_the_fraction():
    assert make_split(IDS, 0.7)["method"] == "random 70:30"


def test_given_split_is_used():
    given = {"train": IDS[:7], "test": IDS[7:], "source": "/data/split.json"}
    assert make_split(list(reversed(IDS)), seed=5, given=given) == {
        "train": IDS[:7], "test": IDS[7:], "seed": 5, "method": "dataset"}
    # a dataset may bring training cases only
    assert make_split(IDS, given={"train": IDS, "test": []})["test"] == []


@pytest.mark.parametrize("given, words", [
    ({"train": IDS[:8] + ["ghost"], "test": IDS[8:]}, "unknown case id(s) ['ghost']"),
    ({"train": IDS[:8], "test": IDS[7:]}, "case(s) ['case_07'] are in both train and test"),
    ({"train": IDS[:7], "test": IDS[8:]}, "labelled case(s) ['case_07'] are in neither train nor test (1 in all)"),
    ({"train": IDS[:8] + IDS[:1], "test": IDS[8:]}, "case(s) ['case_00'] appear twice in train"),
    ({"train": [], "test": IDS}, "train is empty"),
    ({"train": IDS}, "expected {\"train\": [case ids], \"test\": [case ids]}"),
])
def test_bad_given_split(given, words):
    given = dict(given, source="/data/split.json")
    with pytest.raises(InputError) as info:
        make_split(IDS, given=given)
    assert str(info.value).startswith("/data/split.json: ") and words in str(info.value)


@pytest.mark.parametrize("ids, kwargs, words", [
    ([], {}, "split: no labelled cases to split"),
    (["a", "b", "a"], {}, "split: duplicate case id(s) ['a']"),
    (IDS, {"train_fraction": 0.0}, "--train-fraction: must lie in (0, 1], got 0.0"),
    (IDS, {"train_fraction": 1.5}, "--train-fraction: must lie in (0, 1], got 1.5"),
])
def test_bad_arguments(ids, kwargs, words):
    with pytest.raises(InputError) as info:
        make_split(ids, **kwargs)
    assert str(info.value) == words
