"""Splits, near-duplicate grouping, the leak report and nested label fractions."""

import io
import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssl4gie.data import near_duplicates, splits
from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    hamming_distances,
    leak_report,
    near_duplicate_groups,
    perceptual_hashes,
)
from ssl4gie.data.splits import (
    Split,
    group_split,
    grouped_split_indices,
    label_fraction_indices,
    part_sizes,
    random_split_indices,
)
from ssl4gie.errors import InputError

FRACTIONS = (0.8, 0.1, 0.1)


def assert_partition(split: Split, n: int) -> None:
    """The parts are disjoint and together hold exactly range(n)."""
    everything = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(everything), np.arange(n))


def assert_same_split(a: Split, b: Split) -> None:
    assert all(np.array_equal(getattr(a, part), getattr(b, part)) for part in splits.PARTS)


def smooth_images(count: int, seed: int, size: int = 96) -> torch.Tensor:
    """uint8 [count, 3, size, size] random smooth images (bicubic upsampling of 8 x 8 noise)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 256, (count, 3, 8, 8), generator=generator).float()
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fine.clamp(0, 255).round().to(torch.uint8)


def add_noise(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator) * std
    return (images.float() + noise).clamp(0, 255).round().to(torch.uint8)


def jpeg_round_trip(image: torch.Tensor, quality: int = 40) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1).contiguous()


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two group-id arrays group the items the same way, whatever the ids."""
    pairs = set(zip(first.tolist(), second.tolist(), strict=True))
    return len(pairs) == len(set(first.tolist())) == len(set(second.tolist()))


# ------------------------------------------------------------------------------- protocol split


@pytest.mark.parametrize(
    ("n", "sizes"), [(612, (490, 61, 61)), (10, (8, 1, 1)), (7, (5, 1, 1)), (1000, (800, 100, 100))]
)
def test_part_sizes_follow_largest_remainder(n, sizes):
    assert part_sizes(n, FRACTIONS) == sizes


def test_part_sizes_sum_to_n_and_stay_within_one_of_exact():
    for n in range(1, 300):
        sizes = np.array(part_sizes(n, (0.7, 0.2, 0.1)))
        assert sizes.sum() == n
        assert np.all(np.abs(sizes - np.array([0.7, 0.2, 0.1]) * n) < 1)


def test_random_split_is_exact_disjoint_covering_and_seeded():
    split = random_split_indices(612, FRACTIONS, seed=0)
    assert_partition(split, 612)
    assert (len(split.train), len(split.val), len(split.test)) == (490, 61, 61)
    assert all(np.all(np.diff(getattr(split, part)) > 0) for part in splits.PARTS)
    assert_same_split(split, random_split_indices(612, FRACTIONS, seed=0))
    other = random_split_indices(612, FRACTIONS, seed=1)
    assert not np.array_equal(split.test, other.test)


def test_split_to_dict_is_json():
    split = random_split_indices(20, seed=3)
    restored = Split(**json.loads(json.dumps(split.to_dict())))
    assert_same_split(split, restored)


# ---------------------------------------------------------------------------------- group splits


def test_group_split_by_named_videos():
    videos = ["cecum_t1_a"] * 4 + ["trans_t4_a"] * 3 + ["desc_t4_a"] * 2 + ["sigmoid_t3_a"] * 5
    split = group_split(videos, val_groups=["trans_t4_a"], test_groups=["desc_t4_a"])
    assert split.val.tolist() == [4, 5, 6]
    assert split.test.tolist() == [7, 8]
    assert split.train.tolist() == [0, 1, 2, 3, 9, 10, 11, 12, 13]


def random_groups(n_groups: int, seed: int) -> np.ndarray:
    """[N] group ids for groups of 1..20 images, in shuffled order."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), rng.integers(1, 21, size=n_groups))
    return rng.permutation(groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_keeps_groups_whole_and_sizes_close(seed):
    groups = random_groups(200, seed=10)
    split = grouped_split_indices(groups, FRACTIONS, seed=seed)
    assert_partition(split, len(groups))
    parts_per_group = {}
    for code, part in enumerate(splits.PARTS):
        for group in np.unique(groups[getattr(split, part)]):
            parts_per_group.setdefault(group, set()).add(code)
    assert all(len(parts) == 1 for parts in parts_per_group.values())
    for fraction, part in zip(FRACTIONS, splits.PARTS, strict=True):
        assert abs(len(getattr(split, part)) - fraction * len(groups)) <= 20  # one group at most


def test_grouped_split_is_seeded():
    groups = random_groups(100, seed=4)
    assert_same_split(grouped_split_indices(groups, seed=5), grouped_split_indices(groups, seed=5))
    first, second = grouped_split_indices(groups, seed=5), grouped_split_indices(groups, seed=6)
    assert not np.array_equal(first.test, second.test)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_split_keeps_class_proportions_within_one(seed):
    labels = np.repeat(np.arange(6), [9, 40, 113, 250, 7, 81])
    split = grouped_split_indices(np.arange(len(labels)), FRACTIONS, seed=seed, labels=labels)
    assert_partition(split, len(labels))
    class_sizes = np.bincount(labels)
    for fraction, part in zip(FRACTIONS, splits.PARTS, strict=True):
        counts = np.bincount(labels[getattr(split, part)], minlength=6)
        assert np.all(np.abs(counts - fraction * class_sizes) < 1)


def test_grouped_split_gives_nothing_to_a_zero_fraction():
    split = grouped_split_indices(random_groups(30, seed=0), (0.9, 0.1, 0.0), seed=0)
    assert split.test.size == 0


# ---------------------------------------------------------------------------- label fractions


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_label_fractions_are_nested_and_follow_the_rule(seed):
    labels = np.random.default_rng(0).choice(5, size=2000, p=[0.5, 0.3, 0.15, 0.045, 0.005])
    subsets = [label_fraction_indices(labels, fraction=f, seed=seed) for f in (0.01, 0.1, 0.5, 1.0)]
    for smaller, larger in itertools.pairwise(subsets):
        assert np.all(np.isin(smaller, larger))
    assert np.array_equal(subsets[-1], np.arange(len(labels)))
    class_sizes = np.bincount(labels)
    expected = np.maximum(1, np.floor(0.01 * class_sizes + 0.5))
    assert np.array_equal(np.bincount(labels[subsets[0]], minlength=5), expected)


def test_label_fractions_per_class_are_nested_and_capped():
    labels = ["polyp"] * 30 + ["ileum"] * 3 + ["z-line"] * 12
    subsets = [label_fraction_indices(labels, per_class=k, seed=2) for k in (1, 5, 10)]
    for smaller, larger in itertools.pairwise(subsets):
        assert np.all(np.isin(smaller, larger))
    chosen = np.asarray(labels)[subsets[-1]]
    assert sorted(np.unique(chosen, return_counts=True)[1].tolist()) == [3, 10, 10]


def test_label_fractions_are_seeded():
    labels = torch.arange(500) % 4
    same = label_fraction_indices(labels, fraction=0.1, seed=3)
    assert np.array_equal(same, label_fraction_indices(labels, fraction=0.1, seed=3))
    assert not np.array_equal(same, label_fraction_indices(labels, fraction=0.1, seed=4))


# ------------------------------------------------------------------------------------ hashing


def test_hash_is_stable_under_small_changes_and_separates_different_images():
    images = smooth_images(24, seed=0)
    hashes = perceptual_hashes(images)
    assert hashes.dtype == np.uint64 and hashes.shape == (24,)
    assert np.all(hamming_distances(hashes, perceptual_hashes(images.clone())) == 0)
    brighter = (images.int() + 15).clamp(0, 255).to(torch.uint8)
    jpeg = torch.stack([jpeg_round_trip(image) for image in images])
    for changed in (add_noise(images, std=6, seed=1), brighter, jpeg):
        assert hamming_distances(hashes, perceptual_hashes(changed)).max() <= DEFAULT_THRESHOLD
    distances = hamming_distances(hashes[:, None], hashes[None, :])[~np.eye(24, dtype=bool)]
    assert distances.min() > 2 * DEFAULT_THRESHOLD - 4 and distances.mean() > 24


def test_hash_takes_batches_single_images_and_sizes_that_differ():
    images = smooth_images(4, seed=1)
    batch_hashes = perceptual_hashes(images)
    assert np.array_equal(batch_hashes, perceptual_hashes(iter(images)))
    assert np.array_equal(batch_hashes, perceptual_hashes([images[:1], images[1:]]))
    assert np.array_equal(batch_hashes[:1], perceptual_hashes(images[0]))
    mixed = perceptual_hashes([images[0], smooth_images(1, seed=2, size=64)[0]])
    assert mixed.shape == (2,)


def test_popcount_table_matches_numpy():
    values = np.random.default_rng(0).integers(0, 2**63, size=1000, dtype=np.uint64) * 2 + 1
    expected = np.array([bin(value).count("1") for value in values.tolist()])
    assert np.array_equal(near_duplicates._popcount_by_table(values), expected)
    assert np.array_equal(near_duplicates._popcount(values), expected)


# ------------------------------------------------------------------------- near-duplicate groups


def test_near_duplicate_groups_recover_videos():
    videos, frames_per_video = 6, 5
    bases = smooth_images(videos, seed=3)
    frames, video_of_frame = [], []
    for video, base in enumerate(bases):
        for frame in range(frames_per_video):
            changed = add_noise(base[None], std=4, seed=100 * video + frame)[0]
            frames.append(jpeg_round_trip(changed, quality=50 + 10 * frame))
            video_of_frame.append(video)
    order = np.random.default_rng(0).permutation(len(frames))
    hashes = perceptual_hashes(frames[i] for i in order)
    groups = near_duplicate_groups(hashes, DEFAULT_THRESHOLD)
    assert same_partition(groups, np.asarray(video_of_frame)[order])


def test_known_groups_join_images_that_hashes_do_not():
    hashes = np.array([0, 2**64 - 1, 0x00FF00FF00FF00FF, 0xF0F0F0F0F0F0F0F0], dtype=np.uint64)
    assert near_duplicate_groups(hashes, 4).tolist() == [0, 1, 2, 3]
    joined = near_duplicate_groups(hashes, 4, known_groups=["seq1", None, "seq2", "seq1"])
    assert joined.tolist() == [0, 1, 2, 0]


def test_grouping_is_transitive_across_a_chain():
    chain = np.array([(1 << (4 * k)) - 1 for k in range(8)], dtype=np.uint64)  # 4 more bits each
    assert near_duplicate_groups(chain, 4).tolist() == [0] * 8
    assert near_duplicate_groups(chain, 3).tolist() == list(range(8))


def test_grouping_spans_several_blocks(monkeypatch):
    monkeypatch.setattr(near_duplicates, "_BLOCK_ELEMENTS", 7)
    rng = np.random.default_rng(1)
    bases = rng.integers(0, 2**63, size=12, dtype=np.uint64) * 2 + 1
    video_of = rng.integers(0, 12, size=60)
    flip = np.left_shift(np.uint64(1), rng.integers(0, 64, size=60).astype(np.uint64))
    groups = near_duplicate_groups(bases[video_of] ^ flip, 2)
    assert same_partition(groups, video_of)


# ----------------------------------------------------------------------------------- leak report


def test_leak_report_counts_a_hand_made_case():
    # Three near-duplicate pairs: (0, 1) both train, (2, 7) and (3, 8) across train/test.
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=10, dtype=np.uint64) * 2 + 1
    hashes[1] = hashes[0] ^ np.uint64(1)
    hashes[7] = hashes[2]
    hashes[8] = hashes[3] ^ np.uint64(0b110)
    split = Split(train=[0, 1, 2, 3, 4, 5], val=[6], test=[7, 8, 9])
    report = leak_report(hashes, split, threshold=2)
    assert report.pairs["train"] == {"train": 1, "val": 0, "test": 2}
    assert report.pairs["val"] == {"val": 0, "test": 0}
    assert report.pairs["test"] == {"test": 0}
    assert report.leaked == {"val": 0, "test": 2}
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["pairs"]["train/test"] == 2 and as_dict["sizes"]["train"] == 6
    assert "test images with a near-duplicate in train: 2 / 3" in str(report)


def test_leak_report_finds_leaks_of_image_split_and_none_of_grouped_split():
    bases = smooth_images(8, seed=5)
    frames = torch.cat([add_noise(bases, std=3, seed=seed) for seed in range(5)])
    hashes = perceptual_hashes(frames)
    image_split = random_split_indices(len(frames), (0.6, 0.2, 0.2), seed=0)
    assert leak_report(frames, image_split).pairs["train"]["test"] > 0
    grouped = grouped_split_indices(near_duplicate_groups(hashes), (0.6, 0.2, 0.2), seed=0)
    report = leak_report(hashes, grouped)
    assert report.leaked == {"val": 0, "test": 0}
    assert report.pairs["train"]["val"] == report.pairs["train"]["test"] == 0


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: random_split_indices(10, (0.8, 0.1, 0.2)), "sum to"),
        (lambda: random_split_indices(10, (0.8, 0.2)), "three numbers"),
        (lambda: grouped_split_indices([0, 1], (1.2, -0.1, -0.1)), "[0, 1]"),
        (lambda: grouped_split_indices([0, 1, 2], labels=[0, 1]), "labels has 2"),
        (lambda: group_split(["a", "b"], ["cecum"], []), "unknown group 'cecum'"),
        (lambda: group_split(["cecum_t1", "b"], ["cecum_t2"], []), "did you mean"),
        (lambda: group_split(["a", "b"], ["a"], ["a"]), "both val and test"),
        (lambda: label_fraction_indices([0, 1], fraction=0.0), "(0, 1]"),
        (lambda: label_fraction_indices([0, 1], fraction=1.5), "(0, 1]"),
        (lambda: label_fraction_indices([0, 1], per_class=0), "per_class=0"),
        (lambda: label_fraction_indices([0, 1]), "exactly one"),
        (lambda: label_fraction_indices([0, 1], fraction=0.5, per_class=1), "exactly one"),
        (lambda: near_duplicate_groups(np.zeros(3, np.uint64), 65), "threshold"),
        (lambda: near_duplicate_groups(np.zeros(3, np.uint64), known_groups=[1]), "known_groups"),
        (lambda: perceptual_hashes([torch.zeros(3, 8, 8)]), "uint8"),
        (lambda: perceptual_hashes([torch.zeros(1, 8, 8, dtype=torch.uint8)]), "RGB"),
        (lambda: leak_report(np.zeros(2, np.uint64), Split([0], [1], [2])), "only 2 images"),
        (lambda: Split([0, 1], [1], []), "overlap"),
    ],
)
def test_bad_input_raises_one_line_input_error(call, words):
    with pytest.raises(InputError) as error:
        call()
    message = str(error.value)
    assert words in message and "\n" not in message
