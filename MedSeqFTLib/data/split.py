"""Train/test split of a task's labelled cases: the dataset's own, or a seeded random one.

The split is decided once, when a task is added, and stored in ``task.json``; training,
buffer selection and evaluation all read it from there, so re-running never reshuffles.
"""

from __future__ import annotations

from typing import Optional

from ..errors import InputError

__all__ = ["make_split", "check_given_split"]


def make_split(case_ids: list, train_fraction: float = 0.8, seed: int = 0, given: Optional[dict] = None) -> dict:
    """Split labelled cases into train and test.

    Random split: the ids are sorted first (so the order the files were listed in does not
    matter), permuted with ``numpy.random.default_rng(seed)``, and the first
    ``round(n * train_fraction)`` go to train, clamped so that train keeps at least one case and,
    when ``n >= 2``, test gets at least one. Each list comes back sorted.

    Args:
        case_ids: ids of the labelled cases (unique).
        train_fraction: share of cases for training, in (0, 1].
        seed: random seed, stored in the result.
        given: the dataset's own split ``{"train": [...], "test": [...]}`` (``source`` optional,
            names the file it came from); used as is after checking it.

    Returns:
        ``{"train": [ids], "test": [ids], "seed": seed, "method": "random 80:20" | "dataset"}``
        (the method names the real percentages, e.g. ``"random 70:30"``).

    Raises:
        InputError: no cases, duplicate ids, a bad ``train_fraction``, or a given split with
            unknown ids, overlap, missing cases or an empty train list.
    """
    import numpy as np

    ids = [str(c) for c in case_ids]
    if not ids:
        raise InputError("split", "no labelled cases to split")
    dupes = sorted({c for c in ids if ids.count(c) > 1})
    if dupes:
        raise InputError("split", f"duplicate case id(s) {dupes[:5]}")
    if given is not None:
        return check_given_split(ids, given, seed)
    fraction = float(train_fraction)
    if not 0.0 < fraction <= 1.0:
        raise InputError("--train-fraction", f"must lie in (0, 1], got {train_fraction}")
    ordered = sorted(ids)
    n = len(ordered)
    n_train = int(round(n * fraction))
    n_train = max(1, min(n_train, n - 1 if n >= 2 else n))
    perm = np.random.default_rng(int(seed)).permutation(n)
    train = sorted(ordered[i] for i in perm[:n_train])
    test = sorted(ordered[i] for i in perm[n_train:])
    pct = int(round(100 * fraction))
    return {"train": train, "test": test, "seed": int(seed), "method": f"random {pct}:{100 - pct}"}


def check_given_split(case_ids: list, given: dict, seed: int = 0) -> dict:
    """Check the dataset's own split against the labelled cases and return it normalised.

    Every labelled case must be in exactly one of train/test; train must not be empty (test
    may be, for a dataset that only brings training cases).

    Raises:
        InputError: wrong structure, unknown ids, a case in both lists, a case in neither.
    """
    where = given.get("source", "split") if isinstance(given, dict) else "split"
    if not isinstance(given, dict) or not isinstance(given.get("train"), list) or not isinstance(given.get("test"), list):
        raise InputError(where, "expected {\"train\": [case ids], \"test\": [case ids]}")
    train = [str(c) for c in given["train"]]
    test = [str(c) for c in given["test"]]
    known = set(case_ids)
    unknown = sorted((set(train) | set(test)) - known)
    if unknown:
        raise InputError(where, f"unknown case id(s) {unknown[:5]} (not labelled cases of the dataset)")
    both = sorted(set(train) & set(test))
    if both:
        raise InputError(where, f"case(s) {both[:5]} are in both train and test")
    for name, ids in (("train", train), ("test", test)):
        repeated = sorted({c for c in ids if ids.count(c) > 1})
        if repeated:
            raise InputError(where, f"case(s) {repeated[:5]} appear twice in {name}")
    missing = sorted(known - set(train) - set(test))
    if missing:
        raise InputError(where, f"labelled case(s) {missing[:5]} are in neither train nor test ({len(missing)} in all)")
    if not train:
        raise InputError(where, "train is empty")
    return {"train": sorted(train), "test": sorted(test), "seed": int(seed), "method": "dataset"}
