"""Checks that kill the mutants ``nox -s mutants`` found surviving in
``ssl4gie/data/near_duplicates.py``: bad-input lines in full, the threshold's bounds and default,
the leak report's text and the sequence names, each against a hand-made case."""

import inspect

import numpy as np
import pytest
import torch

from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    leak_report,
    name_sequences,
    near_duplicate_groups,
    near_duplicate_pairs,
    scene_descriptors,
)
from ssl4gie.data.splits import Split
from ssl4gie.errors import InputError

_FLAT = np.zeros((3, 11, 156), dtype=np.float16)  # three identical (zero) descriptors

BAD_CALLS = {
    "descriptor distance threshold 2.5 must lie in [0, 2); try 0.45": lambda: near_duplicate_pairs(
        _FLAT, 2.5
    ),
    "descriptor distance threshold -0.1 must lie in [0, 2); try 0.45": lambda: near_duplicate_pairs(
        _FLAT, -0.1
    ),
    "cannot describe Tensor torch.float32; pass uint8 image tensors [3, H, W] or [B, 3, H, W]": (
        lambda: scene_descriptors([torch.zeros(3, 8, 8)])
    ),
    "cannot describe images of shape (1, 8, 8); pass RGB uint8 tensors [3, H, W] or "
    "[B, 3, H, W]": lambda: scene_descriptors([torch.zeros(1, 8, 8, dtype=torch.uint8)]),
    "descriptors have shape (3, 64); pass the [N, 11, 156] array from scene_descriptors": (
        lambda: near_duplicate_groups(np.zeros((3, 64)))
    ),
    "known_groups has 1 entries but descriptors has 3; pass one entry per image to both": (
        lambda: near_duplicate_groups(_FLAT, known_groups=[1])
    ),
}


@pytest.mark.parametrize("message", BAD_CALLS)
def test_bad_input_line_in_full(message: str) -> None:
    with pytest.raises(InputError) as info:
        BAD_CALLS[message]()
    assert str(info.value) == message


def test_threshold_bounds_and_default() -> None:
    # identical descriptors are at distance 0: linked even at threshold 0 (the closed end)
    assert near_duplicate_pairs(_FLAT, 0.0).tolist() == [[0, 0, 1], [1, 2, 2]]
    assert near_duplicate_pairs(_FLAT, 1.99).shape == (2, 3)
    assert DEFAULT_THRESHOLD == 0.45
    for function in (near_duplicate_pairs, near_duplicate_groups):
        assert inspect.signature(function).parameters["threshold"].default == DEFAULT_THRESHOLD


def test_leak_report_text_and_val_leaks() -> None:
    # groups: {0, 1, 2}, {3, 4}, {5}; train 0, 3; val 1, 4, 5; test 2
    report = leak_report([0, 0, 0, 1, 1, 2], Split(train=[0, 3], val=[1, 4, 5], test=[2]))
    assert report.leaked == {"val": 2, "test": 1}
    assert str(report).splitlines() == [
        "image pairs in one near-duplicate group",
        "             train       val      test",
        "   train         0         2         1",
        "     val                   0         1",
        "    test                             0",
        "val images with a near-duplicate in train: 2 / 3 (66.7%)",
        "test images with a near-duplicate in train: 1 / 1 (100.0%)",
    ]
    as_dict = report.to_dict()
    assert as_dict["pairs"] == {
        "train/train": 0,
        "train/val": 2,
        "train/test": 1,
        "val/val": 0,
        "val/test": 1,
        "test/test": 0,
    }
    assert as_dict["sizes"] == {"train": 2, "val": 3, "test": 1}


def test_empty_parts_show_a_zero_share() -> None:
    text = str(leak_report([0, 0], Split(train=[0, 1], val=[], test=[])))
    assert text.splitlines()[-2:] == [
        "val images with a near-duplicate in train: 0 / 0 (0.0%)",
        "test images with a near-duplicate in train: 0 / 0 (0.0%)",
    ]


def test_name_sequences_replace_the_last_number() -> None:
    names = ["a/fine_3_7_fram.jpg", "a/fine_3_8_fram.jpg", "b/0_color.png", "b/cover.png"]
    assert name_sequences(names) == ["a/fine_3_#_fram", "a/fine_3_#_fram", "b/#_color", None]
