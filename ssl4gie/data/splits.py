"""Dataset splits, group splits for leak-aware splitting, and nested label fractions.

Everything here works on plain sequences, numpy arrays or tensors of labels and group ids, so
it does not depend on the Dataset classes: pass
``dataset.targets`` or ``dataset.video_ids`` and index the dataset with the result.

**Protocol split.** SSL4GIE splits images at random 80/10/10 with a seed
(:func:`random_split_indices`); C3VD is split by video, with the video names as configuration
(:func:`group_split`). Part sizes follow the largest-remainder rule (see :func:`part_sizes`).

**Leaks.** Endoscopy datasets are cut from videos, so an image-level split puts near-identical
frames on both sides of it. :mod:`ssl4gie.data.near_duplicates` groups them (and the frames of
one known sequence or video); :func:`grouped_split_indices` then splits whole groups.

**Label fractions.** :func:`label_fraction_indices` takes stratified, seeded and nested
subsets of the training set for data-efficiency studies.

Randomness comes from ``numpy.random.default_rng(seed)`` only, so a seed gives the same split on
every machine and run.

Example::

    descriptors = scene_descriptors(dataset[i]["image"] for i in range(len(dataset)))
    groups = near_duplicate_groups(descriptors, known_groups=dataset.video_ids)
    split = grouped_split_indices(groups, (0.8, 0.1, 0.1), seed=0, labels=dataset.targets)
    print(leak_report(groups, split))
    train_labels = np.asarray(dataset.targets)[split.train]
    few = split.train[label_fraction_indices(train_labels, fraction=0.01, seed=0)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ssl4gie.errors import InputError, did_you_mean

__all__ = [
    "PARTS",
    "Split",
    "group_split",
    "grouped_split_indices",
    "label_fraction_indices",
    "part_sizes",
    "random_split_indices",
]

PARTS = ("train", "val", "test")
"""The parts of a :class:`Split`, in order."""
# ----------------------------------------------------------------------------- input helpers


def _to_list(values, name: str) -> list:
    """Return a 1-D sequence, array or tensor as a list of Python scalars."""
    if isinstance(values, torch.Tensor | np.ndarray):
        if values.ndim != 1:
            raise InputError(f"{name} has shape {tuple(values.shape)}; pass a 1-D sequence")
        return values.tolist()
    return list(values)


def _encode(values, name: str) -> tuple[np.ndarray, list]:
    """Map hashable values to codes 0..K-1 in order of first appearance.

    Returns ``(codes int64 [N], names)`` with ``names[codes[i]] == values[i]``.
    """
    code_of: dict = {}
    codes = np.fromiter(
        (code_of.setdefault(value, len(code_of)) for value in _to_list(values, name)),
        dtype=np.int64,
    )
    return codes, list(code_of)


def _check_same_length(first, first_name: str, second, second_name: str) -> None:
    if len(first) != len(second):
        raise InputError(
            f"{first_name} has {len(first)} entries but {second_name} has {len(second)}; "
            "pass one entry per image to both"
        )


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Return the (train, val, test) fractions as float64 [3], or raise InputError."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,):
        raise InputError(
            f"split fractions {fractions.tolist()} must be three numbers (train, val, test)"
        )
    if np.any(fractions < 0) or np.any(fractions > 1) or fractions[0] == 0:
        raise InputError(
            f"split fractions {fractions.tolist()} must lie in [0, 1] with a train fraction "
            "above 0, e.g. (0.8, 0.1, 0.1)"
        )
    if not math.isclose(fractions.sum(), 1.0, abs_tol=1e-6):
        raise InputError(
            f"split fractions {fractions.tolist()} sum to {fractions.sum():g}; make them sum to "
            "1, e.g. (0.8, 0.1, 0.1)"
        )
    return fractions


# ------------------------------------------------------------------------------------ splits


@dataclass(frozen=True)
class Split:
    """Indices of the train, val and test parts.

    Built from any integer sequences; stored as sorted int64 arrays. Raises InputError when
    the parts overlap or hold a negative index.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for part in PARTS:
            indices = np.sort(np.asarray(getattr(self, part), dtype=np.int64).reshape(-1))
            object.__setattr__(self, part, indices)
        everything = np.concatenate([self.train, self.val, self.test])
        if everything.size and everything.min() < 0:
            raise InputError("split indices must be >= 0; pass positions into the dataset")
        if np.unique(everything).size != everything.size:
            raise InputError("split parts overlap; give each index to one part only")

    def part_codes(self, n: int) -> np.ndarray:
        """Return int8 [n]: 0 train, 1 val, 2 test, -1 for indices in no part."""
        codes = np.full(n, -1, dtype=np.int8)
        for code, part in enumerate(PARTS):
            indices = getattr(self, part)
            if indices.size and indices.max() >= n:
                raise InputError(
                    f"split has index {indices.max()} but there are only {n} images; "
                    "use the split made for these images"
                )
            codes[indices] = code
        return codes

    def to_dict(self) -> dict[str, list[int]]:
        """Return ``{"train": [...], "val": [...], "test": [...]}`` for JSON."""
        return {part: getattr(self, part).tolist() for part in PARTS}


def part_sizes(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    """Split ``n`` into three whole sizes by the largest-remainder (Hamilton) rule.

    Each part gets ``floor(f * n)``; the images left over go one each to the parts with the
    largest fractional remainders, ties to the earlier part (train, then val). The sizes sum to
    ``n`` and each is within 1 of ``f * n``. E.g. 612 images at 0.8/0.1/0.1 -> (490, 61, 61).
    """
    fractions = _check_fractions(fractions)
    exact = np.round(fractions * n, 9)  # drop float noise such as 0.7 * 10 = 7.000000000000001
    sizes = np.floor(exact).astype(np.int64)
    leftover = n - int(sizes.sum())
    by_remainder = np.argsort(-(exact - sizes), kind="stable")
    sizes[by_remainder[:leftover]] += 1
    return tuple(int(size) for size in sizes)


def random_split_indices(
    n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """The SSL4GIE protocol split: a seeded random image-level split of ``range(n)``.

    Sizes follow :func:`part_sizes`; the parts are consecutive runs of
    ``default_rng(seed).permutation(n)``, each then sorted.
    """
    if n < 1 or int(n) != n:
        raise InputError(f"cannot split {n!r} images; pass the dataset length (an int >= 1)")
    train_size, val_size, _ = part_sizes(n, fractions)
    order = np.random.default_rng(seed).permutation(n)
    return Split(
        order[:train_size],
        order[train_size : train_size + val_size],
        order[train_size + val_size :],
    )


def group_split(groups, val_groups: Iterable, test_groups: Iterable) -> Split:
    """Split by named groups, e.g. C3VD by video: the given groups are val and test.

    ``groups`` holds one group name per image ([N]); every group not named in ``val_groups``
    or ``test_groups`` goes to train.
    """
    codes, names = _encode(groups, "groups")
    code_of = {name: code for code, name in enumerate(names)}
    val_codes = _named_group_codes(val_groups, code_of, "val_groups")
    test_codes = _named_group_codes(test_groups, code_of, "test_groups")
    both = set(val_codes) & set(test_codes)
    if both:
        raise InputError(
            f"groups {sorted(names[code] for code in both)} are named for both val and test; "
            "give each group to one part"
        )
    is_val, is_test = np.isin(codes, val_codes), np.isin(codes, test_codes)
    return Split(
        np.flatnonzero(~is_val & ~is_test), np.flatnonzero(is_val), np.flatnonzero(is_test)
    )


def _named_group_codes(requested: Iterable, code_of: dict, argument: str) -> list[int]:
    """Codes of the requested group names, or InputError naming an unknown one."""
    unknown = [name for name in requested if name not in code_of]
    if unknown:
        known = [str(name) for name in code_of]
        raise InputError(
            f"{argument} names unknown group {unknown[0]!r}"
            f"{did_you_mean(str(unknown[0]), known)}; the groups are: {', '.join(known)}"
        )
    return [code_of[name] for name in requested]


def grouped_split_indices(
    groups, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, labels=None
) -> Split:
    """A seeded split that keeps every group in one part, stratified by label when given.

    Args:
        groups: [N] group id per image (video ids, or :func:`near_duplicate_groups`).
        fractions: target (train, val, test) fractions of the images.
        seed: orders the groups, ``default_rng(seed).permutation``.
        labels: optional [N] class per image.

    The groups are visited in seeded random order and each goes to the part where it most
    reduces the squared gap between assigned and target counts, per class, with each class
    weighted by ``1 / its size`` so rare classes count as much as common ones (without labels,
    all images are one class). Parts with fraction 0 get nothing. With one image per group,
    every part's count of every class ends within 1 of ``fraction * class size``; with larger
    groups the sizes are as close as whole groups allow.
    """
    group_codes, group_names = _encode(groups, "groups")
    fractions = _check_fractions(fractions)
    if labels is None:
        class_codes, class_names = np.zeros_like(group_codes), [None]
    else:
        class_codes, class_names = _encode(labels, "labels")
        _check_same_length(group_codes, "groups", class_codes, "labels")
    counts = np.zeros((len(group_names), len(class_names)))
    np.add.at(counts, (group_codes, class_codes), 1)  # [G, C] images per group and class
    class_sizes = counts.sum(axis=0)
    targets = fractions[:, None] * class_sizes[None, :]  # [3, C]
    assigned = np.zeros_like(targets)
    closed = np.where(fractions == 0, np.inf, 0.0)  # [3]: parts that take nothing
    part_of_group = np.empty(len(counts), dtype=np.int64)
    for group in np.random.default_rng(seed).permutation(len(counts)):
        added = counts[group]  # [C]
        cost_increase = ((2 * (assigned - targets) + added) * added / class_sizes).sum(axis=1)
        part = int(np.argmin(cost_increase + closed))
        assigned[part] += added
        part_of_group[group] = part
    part_of_image = part_of_group[group_codes]
    return Split(*(np.flatnonzero(part_of_image == code) for code in range(len(PARTS))))


# ---------------------------------------------------------------------------- label fractions


def label_fraction_indices(
    labels, fraction: float | None = None, per_class: int | None = None, seed: int = 0
) -> np.ndarray:
    """Stratified, seeded, nested subset of ``labels`` -> sorted int64 positions into it.

    Give exactly one of ``fraction`` (in (0, 1]) or ``per_class`` (an int >= 1). Pass the
    training labels and map back: ``split.train[label_fraction_indices(labels[split.train],
    0.1)]``.

    Rule: one seeded permutation, ``default_rng(seed).permutation(N)``, orders every class;
    class c of size n_c contributes its first ``k_c`` members in that order, with
    ``k_c = max(1, floor(fraction * n_c + 0.5))`` (round half up, at least one image per class)
    or ``k_c = min(per_class, n_c)``. Since ``k_c`` only grows with ``fraction`` or
    ``per_class`` and the order depends on the seed alone, the subsets are nested: for one seed
    the 1% subset lies inside the 10% one, and ``fraction=1`` gives every index.
    """
    class_codes, _ = _encode(labels, "labels")
    class_sizes = np.bincount(class_codes)
    take = _per_class_counts(class_sizes, fraction, per_class)  # [C]
    order = np.random.default_rng(seed).permutation(len(class_codes))
    ordered_classes = class_codes[order]
    rank = np.empty(len(order), dtype=np.int64)  # position of each image within its class
    by_class = np.argsort(ordered_classes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(class_sizes)[:-1]])
    rank[by_class] = np.arange(len(order)) - np.repeat(starts, class_sizes)
    return np.sort(order[rank < take[ordered_classes]])


def _per_class_counts(class_sizes: np.ndarray, fraction, per_class) -> np.ndarray:
    """Images to take per class, int64 [C], by the rule in :func:`label_fraction_indices`."""
    if (fraction is None) == (per_class is None):
        raise InputError("give exactly one of fraction= (e.g. 0.1) or per_class= (e.g. 10)")
    if per_class is not None:
        if int(per_class) != per_class or per_class < 1:
            raise InputError(f"per_class={per_class!r} must be a whole number >= 1, e.g. 10")
        return np.minimum(int(per_class), class_sizes)
    if not 0 < fraction <= 1:
        raise InputError(f"label fraction {fraction!r} must lie in (0, 1], e.g. 0.01 or 0.1")
    exact = np.round(fraction * class_sizes, 9)  # drop float noise before rounding half up
    return np.clip(np.floor(exact + 0.5).astype(np.int64), 1, class_sizes)
