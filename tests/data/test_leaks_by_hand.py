"""The leak report and the leak-aware split against plain loops written here: every pair of images
counted one by one, and the greedy group assignment of ``grouped_split_indices``' docstring
spelled out per class. Groups hold several images, in shuffled index order, so that pairs with
the train image first and last both occur and the class weighting does not cancel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ssl4gie.data.near_duplicates import leak_report
from ssl4gie.data.splits import PARTS, Split, grouped_split_indices, random_split_indices


def _groups(n_images: int, n_groups: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_groups, size=n_images)


def _pairs_by_loop(groups, split: Split) -> dict[tuple[str, str], int]:
    part_of = {int(i): part for part in PARTS for i in getattr(split, part)}
    counts = {(a, b): 0 for i, a in enumerate(PARTS) for b in PARTS[i:]}
    for i, j in itertools.combinations(range(len(groups)), 2):
        if groups[i] == groups[j] and i in part_of and j in part_of:
            a, b = sorted((part_of[i], part_of[j]), key=PARTS.index)
            counts[a, b] += 1
    return counts


def _leaked_by_loop(groups, split: Split, part: str) -> int:
    train_groups = {groups[i] for i in split.train}
    return sum(groups[i] in train_groups for i in getattr(split, part))


@pytest.mark.parametrize("seed", range(4))
def test_leak_report_equals_counting_every_pair(seed):
    groups = _groups(60, 12, seed)
    split = random_split_indices(len(groups), (0.6, 0.2, 0.2), seed=seed)
    report = leak_report(groups, split)
    expected = _pairs_by_loop(groups, split)
    assert {(a, b): n for a, row in report.pairs.items() for b, n in row.items()} == expected
    assert report.leaked == {part: _leaked_by_loop(groups, split, part) for part in PARTS[1:]}
    assert report.pairs["train"]["test"] > 0 and report.pairs["test"]["test"] > 0


def test_leak_report_is_the_same_whichever_image_of_a_pair_has_the_lower_index():
    # one group of two images; train holds the lower index, then the higher one
    low = leak_report([7, 7, 3], Split(train=[0], val=[1], test=[2]))
    high = leak_report([7, 7, 3], Split(train=[1], val=[0], test=[2]))
    for report in (low, high):
        assert report.pairs["train"] == {"train": 0, "val": 1, "test": 0}
        assert report.leaked == {"val": 1, "test": 0}


def test_leak_report_with_string_groups_and_images_left_out():
    groups = ["a", "b", "a", "a", "b", "c"]
    split = Split(train=[3], val=[0, 4], test=[1, 2])  # image 5 in no part
    report = leak_report(groups, split)
    assert report.pairs == {
        "train": {"train": 0, "val": 1, "test": 1},  # a: (3, 0), (3, 2)
        "val": {"val": 0, "test": 2},  # a: (0, 2); b: (4, 1)
        "test": {"test": 0},
    }
    assert report.leaked == {"val": 1, "test": 1}
    assert report.sizes == {"train": 1, "val": 2, "test": 2}


def _greedy_by_loop(groups, labels, fractions, seed, weighted: bool = True) -> Split:
    """The docstring's rule: groups (numbered in order of first appearance) visited in
    ``default_rng(seed).permutation`` order, each to the part
    whose sum over classes of ``((assigned + added - target)^2 - (assigned - target)^2) / size``
    is smallest (first such part on ties); parts with fraction 0 take nothing."""
    names = list(dict.fromkeys(groups))  # first appearance
    classes = sorted(set(labels))
    size = {c: sum(label == c for label in labels) for c in classes}
    assigned = {(p, c): 0.0 for p in range(3) for c in classes}
    part_of_group = {}
    for g in np.random.default_rng(seed).permutation(len(names)):
        members = [i for i, group in enumerate(groups) if group == names[g]]
        added = {c: sum(labels[i] == c for i in members) for c in classes}
        best, best_cost = None, None
        for p in range(3):
            if fractions[p] == 0:
                continue
            cost = 0.0
            for c in classes:
                target = fractions[p] * size[c]
                new, old = assigned[p, c] + added[c] - target, assigned[p, c] - target
                cost += (new * new - old * old) / (size[c] if weighted else 1)
            if best_cost is None or cost < best_cost - 1e-12:
                best, best_cost = p, cost
        for c in classes:
            assigned[best, c] += added[c]
        part_of_group[names[g]] = best
    parts = [[i for i, g in enumerate(groups) if part_of_group[g] == p] for p in range(3)]
    return Split(*parts)


@pytest.mark.parametrize("seed", range(5))
def test_grouped_split_follows_the_class_weighted_rule(seed):
    rng = np.random.default_rng(100 + seed)
    groups = rng.integers(0, 15, size=70).tolist()
    labels = rng.choice(["common", "mid", "rare"], size=70, p=[0.75, 0.2, 0.05]).tolist()
    fractions = (0.6, 0.25, 0.15)
    got = grouped_split_indices(groups, fractions, seed=seed, labels=labels)
    expected = _greedy_by_loop(groups, labels, fractions, seed)
    for part in PARTS:
        assert getattr(got, part).tolist() == getattr(expected, part).tolist(), part


def test_the_class_weighting_changes_the_split():
    # mixed groups of a common and a rare class: weighting each class by 1 / its size gives
    # another split than counting every image alike
    groups = np.random.default_rng(0).integers(0, 10, size=40).tolist()
    labels = ["rare" if i % 10 == 0 else "common" for i in range(40)]
    got = grouped_split_indices(groups, (0.5, 0.3, 0.2), seed=1, labels=labels)
    weighted = _greedy_by_loop(groups, labels, (0.5, 0.3, 0.2), 1)
    unweighted = _greedy_by_loop(groups, labels, (0.5, 0.3, 0.2), 1, weighted=False)
    assert [got.val.tolist(), got.test.tolist()] == [weighted.val.tolist(), weighted.test.tolist()]
    assert [got.val.tolist(), got.test.tolist()] != [
        unweighted.val.tolist(),
        unweighted.test.tolist(),
    ]
