"""Checks that kill the mutants ``nox -s mutants`` found surviving in ``ssl4gie/data/splits.py``:
every bad-input line in full, and the bounds of the fractions, each against a hand-made case."""

import dataclasses

import numpy as np
import pytest
import torch

from ssl4gie.data.splits import (
    Split,
    group_split,
    grouped_split_indices,
    label_fraction_indices,
    part_sizes,
    random_split_indices,
)
from ssl4gie.errors import InputError

from .test_leaks_by_hand import _greedy_by_loop

BAD_CALLS = {
    "groups has shape (2, 2); pass a 1-D sequence": lambda: group_split(torch.zeros(2, 2), [], []),
    "groups has 3 entries but labels has 2; pass one entry per image to both": lambda: (
        grouped_split_indices([0, 1, 2], labels=[0, 1])
    ),
    "groups has shape (1, 2); pass a 1-D sequence": lambda: grouped_split_indices(
        torch.zeros(1, 2)
    ),
    "labels has shape (2, 1); pass a 1-D sequence": lambda: grouped_split_indices(
        [0, 1], labels=torch.zeros(2, 1)
    ),
    "labels has shape (2, 2); pass a 1-D sequence": lambda: label_fraction_indices(
        torch.zeros(2, 2), fraction=0.5
    ),
    "split fractions [0.5, 0.5] must be three numbers (train, val, test)": lambda: part_sizes(
        10, (0.5, 0.5)
    ),
    "split fractions [1.5, -0.5, 0.0] must lie in [0, 1] with a train fraction above 0, e.g. "
    "(0.8, 0.1, 0.1)": lambda: part_sizes(10, (1.5, -0.5, 0.0)),
    "split fractions [0.0, 0.5, 0.5] must lie in [0, 1] with a train fraction above 0, e.g. "
    "(0.8, 0.1, 0.1)": lambda: part_sizes(10, (0.0, 0.5, 0.5)),
    "split fractions [0.9, 0.2, -0.1] must lie in [0, 1] with a train fraction above 0, e.g. "
    "(0.8, 0.1, 0.1)": lambda: part_sizes(10, (0.9, 0.2, -0.1)),
    "split fractions [0.8, 0.1, 0.2] sum to 1.1; make them sum to 1, e.g. (0.8, 0.1, 0.1)": (
        lambda: part_sizes(10, (0.8, 0.1, 0.2))
    ),
    "split indices must be >= 0; pass positions into the dataset": lambda: Split([-1], [], []),
    "split parts overlap; give each index to one part only": lambda: Split([0, 1], [1], []),
    "split has index 3 but there are only 2 images; use the split made for these images": (
        lambda: Split([0], [3], []).part_codes(2)
    ),
    "cannot split 0 images; pass the dataset length (an int >= 1)": lambda: random_split_indices(0),
    "cannot split 2.5 images; pass the dataset length (an int >= 1)": lambda: random_split_indices(
        2.5
    ),
    "groups ['a'] are named for both val and test; give each group to one part": lambda: (
        group_split(["a", "b"], ["a"], ["a"])
    ),
    "test_groups names unknown group 'zzz'; the groups are: a, b": lambda: group_split(
        ["a", "b"], [], ["zzz"]
    ),
    "val_groups names unknown group 'zzz'; the groups are: a, b": lambda: group_split(
        ["a", "b"], ["zzz"], []
    ),
    "give exactly one of fraction= (e.g. 0.1) or per_class= (e.g. 10)": lambda: (
        label_fraction_indices([0, 1])
    ),
    "per_class=0 must be a whole number >= 1, e.g. 10": lambda: label_fraction_indices(
        [0, 1], per_class=0
    ),
    "per_class=1.5 must be a whole number >= 1, e.g. 10": lambda: label_fraction_indices(
        [0, 1], per_class=1.5
    ),
    "label fraction 0.0 must lie in (0, 1], e.g. 0.01 or 0.1": lambda: label_fraction_indices(
        [0, 1], fraction=0.0
    ),
}


@pytest.mark.parametrize("message", BAD_CALLS)
def test_bad_input_line_in_full(message: str) -> None:
    with pytest.raises(InputError) as info:
        BAD_CALLS[message]()
    assert str(info.value) == message


@pytest.mark.parametrize(
    "n, fractions, sizes",
    [(5, (1.0, 0.0, 0.0), (5, 0, 0)), (10, (0.9, 0.0, 0.1), (9, 0, 1))],
)
def test_fractions_of_one_and_zero_are_allowed(n, fractions, sizes) -> None:
    assert part_sizes(n, fractions) == sizes


def test_whole_label_set_and_one_per_class() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    assert label_fraction_indices(labels, fraction=1.0).tolist() == [0, 1, 2, 3, 4]
    one_each = label_fraction_indices(labels, per_class=1)
    assert sorted(labels[one_each].tolist()) == [0, 1]


def test_fractions_may_miss_1_by_1e_6_at_most() -> None:
    assert sum(part_sizes(10, (0.8, 0.1, 0.1000005))) == 10
    with pytest.raises(InputError, match="sum to"):
        part_sizes(10, (0.8, 0.1, 0.1000015))


def test_split_is_frozen() -> None:
    split = Split([0], [1], [2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.train = np.array([2])


def test_default_fractions_are_the_protocol_80_10_10() -> None:
    assert part_sizes(612) == (490, 61, 61)  # SSL4GIE: 80/10/10, largest remainder
    for split in (random_split_indices(10), grouped_split_indices(list(range(10)))):
        assert [len(part) for part in split.to_dict().values()] == [8, 1, 1]


def test_random_split_is_the_seeded_permutation_cut_in_order() -> None:
    # the documented rule: default_rng(seed).permutation(n) cut into runs of 8, 1, 1; seed 0
    order = np.random.default_rng(0).permutation(10)
    split = random_split_indices(10)
    assert split.train.tolist() == sorted(order[:8].tolist())
    assert split.val.tolist() == [order[8]] and split.test.tolist() == [order[9]]


def test_one_image_goes_to_train() -> None:
    assert random_split_indices(1).to_dict() == {"train": [0], "val": [], "test": []}


def test_grouped_split_seed_defaults_to_0_and_a_fraction_of_1_takes_all() -> None:
    rng = np.random.default_rng(7)
    groups, labels = rng.integers(0, 12, size=50).tolist(), rng.integers(0, 3, size=50).tolist()
    got = grouped_split_indices(groups, (0.6, 0.25, 0.15), labels=labels)
    expected = _greedy_by_loop(groups, labels, (0.6, 0.25, 0.15), seed=0)
    assert got.to_dict() == expected.to_dict()
    everything = grouped_split_indices([0, 0, 1, 2], (1.0, 0.0, 0.0))
    assert everything.to_dict() == {"train": [0, 1, 2, 3], "val": [], "test": []}


def test_label_fraction_default_seed_follows_the_rule_by_loop() -> None:
    # the docstring's rule: one default_rng(0) permutation orders every class; class c gives
    # its first max(1, floor(0.3 * n_c + 0.5)) members in that order
    labels = np.random.default_rng(3).integers(0, 3, size=40)
    taken, kept = {}, []
    for i in np.random.default_rng(0).permutation(40):
        c = labels[i]
        if taken.get(c, 0) < max(1, int(np.floor(0.3 * (labels == c).sum() + 0.5))):
            taken[c] = taken.get(c, 0) + 1
            kept.append(int(i))
    assert label_fraction_indices(labels, fraction=0.3).tolist() == sorted(kept)


def test_part_codes_mark_images_in_no_part_with_minus_1() -> None:
    assert Split([0], [], [3]).part_codes(4).tolist() == [0, -1, -1, 2]
