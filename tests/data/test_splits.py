"""Splits, near-duplicate grouping, the leak report and nested label fractions."""

import io
import itertools
import json
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssl4gie.data import near_duplicates, splits
from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    descriptor_distances,
    leak_report,
    near_duplicate_groups,
    near_duplicate_pairs,
    scene_descriptors,
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


def test_class_weighting_counts_a_rare_class_in_a_mixed_group():
    # Group 0: 3 common (C) images; group 1: the only rare (R) image and 4 C. Fractions
    # 0.7 / 0.3: targets R 0.7 / 0.3, C 4.9 / 2.1; seed 0 visits group 0, then group 1.
    assert np.random.default_rng(0).permutation(2).tolist() == [0, 1]
    groups, labels = [0, 0, 0, 1, 1, 1, 1, 1], ["C", "C", "C", "R", "C", "C", "C", "C"]
    # Group 0 goes to train. Group 1, cost change per part, weighted by 1 / class size:
    #   train: R (2 (0 - 0.7) + 1) / 1 = -0.4, C (2 (3 - 4.9) + 4) 4 / 7 = +0.11 -> -0.29
    #   val:   R (2 (0 - 0.3) + 1) / 1 = +0.4, C (2 (0 - 2.1) + 4) 4 / 7 = -0.11 -> +0.29
    # so it joins train. Unweighted, C's +0.8 / -0.8 would outweigh R and send it to val.
    split = grouped_split_indices(groups, (0.7, 0.3, 0.0), seed=0, labels=labels)
    assert split.train.tolist() == list(range(8)) and split.val.size == 0


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


# -------------------------------------------------------------------------------- descriptors


def plain_distance(descriptors: np.ndarray, i: int, j: int) -> float:
    """The scene distance written out: the closest view of one image to the other's reference."""
    d = descriptors.astype(np.float64)
    views = range(d.shape[1])
    forward = min(np.linalg.norm(d[i, t] - d[j, 0]) for t in views)
    backward = min(np.linalg.norm(d[j, t] - d[i, 0]) for t in views)
    return min(forward, backward)


def plain_links(descriptors: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Every pair within threshold, by the formula above over all pairs (brute force)."""
    d = descriptors.astype(np.float64)
    # directed[i, j]: the closest view of image i to the reference of image j
    directed = np.stack([np.linalg.norm(views[:, None] - d[:, 0], axis=-1).min(0) for views in d])
    close = np.minimum(directed, directed.T) <= threshold
    return {(i, j) for i, j in zip(*np.nonzero(close), strict=True) if i < j}


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    blurred = kornia.filters.gaussian_blur2d(images.float(), (9, 9), (sigma, sigma))
    return blurred.round().clamp(0, 255).to(torch.uint8)


def test_descriptors_ignore_noise_jpeg_exposure_blur_and_small_shifts():
    large = smooth_images(12, seed=0, size=120)
    images = large[..., 12:108, 12:108]  # 96 x 96 centres
    descriptors = scene_descriptors(images)
    assert descriptors.dtype == np.float16 and descriptors.shape[0] == 12
    darker = (images.float() * 0.7 + 10).round().to(torch.uint8)
    jpeg = torch.stack([jpeg_round_trip(image) for image in images])
    moved = large[..., 18:114, 18:114]  # content moved by 6 % of the side, both axes
    changes = [add_noise(images, std=6, seed=1), darker, jpeg, blur(images, 1.5), moved]
    for changed, bound in zip(changes, [0.1] * 4 + [DEFAULT_THRESHOLD], strict=True):
        both = np.concatenate([descriptors, scene_descriptors(changed)])
        assert max(plain_distance(both, i, 12 + i) for i in range(12)) <= bound
    apart = [plain_distance(descriptors, i, j) for i, j in itertools.combinations(range(12), 2)]
    assert min(apart) > 1.5 * DEFAULT_THRESHOLD


def test_descriptor_distances_follow_the_formula():
    descriptors = scene_descriptors(smooth_images(6, seed=3, size=64))
    first, second = np.array([0, 1, 2, 5, 4]), np.array([3, 1, 5, 0, 2])
    expected = [plain_distance(descriptors, i, j) for i, j in zip(first, second, strict=True)]
    got = descriptor_distances(descriptors, first, second)
    assert np.allclose(got, expected, atol=2e-3) and got[1] == 0


def test_views_are_unit_vectors_even_for_flat_images():
    flat = torch.stack([torch.full((3, 32, 32), value, dtype=torch.uint8) for value in (0, 90)])
    descriptors = scene_descriptors(torch.cat([flat, smooth_images(2, seed=4, size=32)]))
    norms = np.linalg.norm(descriptors.astype(np.float64), axis=-1)
    assert np.allclose(norms, 1, atol=2e-3)
    assert plain_distance(descriptors, 0, 1) < 0.01  # two flat frames: no scene, one group
    assert plain_distance(descriptors, 0, 2) > 2 * DEFAULT_THRESHOLD


def test_descriptors_take_batches_single_images_and_sizes_that_differ():
    images = smooth_images(4, seed=1)
    batch = scene_descriptors(images)
    assert np.array_equal(batch, scene_descriptors(iter(images)))
    assert np.array_equal(batch, scene_descriptors([images[:1], images[1:]]))
    assert np.array_equal(batch[:1], scene_descriptors(images[0]))
    mixed = scene_descriptors([images[0], smooth_images(1, seed=2, size=64)[0]])
    assert mixed.shape == (2, *batch.shape[1:])
    assert scene_descriptors([]).shape == (0, *batch.shape[1:])


# ------------------------------------------------------------------------- near-duplicate groups


def great_circle(count: int, step: float) -> np.ndarray:
    """[count, T, D] descriptors on a great circle, neighbours ``step`` apart, views = reference."""
    views, dimension = near_duplicates._VIEWS, near_duplicates._DIMENSION
    angle = 2 * np.arcsin(step / 2) * np.arange(count)
    vectors = np.zeros((count, dimension))
    vectors[:, 0], vectors[:, 1] = np.cos(angle), np.sin(angle)
    return np.repeat(vectors[:, None], views, axis=1).astype(np.float16)


def test_near_duplicate_groups_recover_videos():
    videos, frames_per_video = 6, 5
    bases = smooth_images(videos, seed=3, size=120)
    frames, video_of_frame = [], []
    for video, base in enumerate(bases):
        for frame in range(frames_per_video):
            crop = base[:, 10 + 2 * frame : 106 + 2 * frame, 12:108]  # the camera drifts down
            changed = add_noise(crop[None], std=4, seed=100 * video + frame)[0]
            frames.append(jpeg_round_trip(changed, quality=50 + 10 * frame))
            video_of_frame.append(video)
    order = np.random.default_rng(0).permutation(len(frames))
    groups = near_duplicate_groups(scene_descriptors(frames[i] for i in order))
    assert same_partition(groups, np.asarray(video_of_frame)[order])


def test_known_groups_join_images_that_descriptors_do_not():
    descriptors = scene_descriptors(smooth_images(4, seed=6, size=64))
    assert near_duplicate_groups(descriptors).tolist() == [0, 1, 2, 3]
    joined = near_duplicate_groups(descriptors, known_groups=["seq1", None, "seq2", "seq1"])
    assert joined.tolist() == [0, 1, 2, 0]


def test_grouping_chains_links_transitively():
    chain = great_circle(8, step=0.4)  # neighbours 0.4 apart, the ends 2.0 apart
    assert plain_distance(chain, 0, 7) > 1.9
    assert near_duplicate_groups(chain, threshold=0.45).tolist() == [0] * 8
    assert near_duplicate_groups(chain, threshold=0.35).tolist() == list(range(8))


def clustered_descriptors(clusters: int, size: int, spread: float, seed: int) -> np.ndarray:
    """[clusters * size, T, D] unit vectors: each cluster a random centre plus small offsets."""
    rng = np.random.default_rng(seed)
    views, dimension = near_duplicates._VIEWS, near_duplicates._DIMENSION

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    centres = np.repeat(unit(rng.standard_normal((clusters, dimension))), size, axis=0)
    frames = unit(centres + spread * unit(rng.standard_normal(centres.shape)))
    offsets = spread * unit(rng.standard_normal((len(frames), views, dimension)))
    descriptors = unit(frames[:, None] + offsets)
    descriptors[:, 0] = frames
    return descriptors.astype(np.float16)


def test_exact_search_finds_the_brute_force_links():
    descriptors = clustered_descriptors(clusters=40, size=3, spread=0.25, seed=0)
    found = near_duplicate_pairs(descriptors, 0.45)
    assert set(zip(*found.tolist(), strict=True)) == plain_links(descriptors, 0.45)


def test_hashed_search_finds_the_brute_force_links_comparing_few_pairs(monkeypatch):
    descriptors = clustered_descriptors(clusters=60, size=4, spread=0.15, seed=1)
    n = len(descriptors)
    expected = plain_links(descriptors, 0.45)
    assert len(expected) >= 60 * 6  # every cluster is linked
    compared = []
    directed = near_duplicates._directed_distances

    def counting(queries, references):
        compared.append(len(queries))
        return directed(queries, references)

    monkeypatch.setattr(near_duplicates, "_EXACT_MAX", 0)
    monkeypatch.setattr(near_duplicates, "_directed_distances", counting)
    found = near_duplicate_pairs(descriptors, 0.45)
    assert set(zip(*found.tolist(), strict=True)) == expected
    assert sum(compared) < n * n / 20  # all pairs would be n * (n - 1)


def test_name_sequences_join_numbered_frames_of_one_folder():
    names = [
        "seq/fine_3_7_fram.jpg",
        "seq/fine_3_8_fram.jpg",
        "seq/fine_4_1_fram.jpg",
        "other/fine_3_9_fram.jpg",
        "c3vd/cecum/30_color.png",
        "c3vd/cecum/0_color.png",
        "kvasir/cjuabc.jpg",
    ]
    ids = near_duplicates.name_sequences(names)
    assert ids[0] == ids[1] == str(Path("seq/fine_3_#_fram"))
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert ids[4] == ids[5] == str(Path("c3vd/cecum/#_color"))
    assert ids[6] is None


# ----------------------------------------------------------------------------------- leak report


@pytest.mark.parametrize("train_holds_the_higher_index", [False, True])
def test_leak_report_counts_a_hand_made_case(train_holds_the_higher_index):
    # Group 0: images 0, 1, 2; group 1: images 3, 4; group 2: image 5; group 3: images 6, 7.
    groups = [0, 0, 0, 1, 1, 2, 3, 3]
    parts = {"train": [0, 5, 6], "val": [3, 4], "test": [1, 2, 7]}
    if train_holds_the_higher_index:  # the same split with every index mirrored
        groups = groups[::-1]
        parts = {part: [7 - i for i in indices] for part, indices in parts.items()}
    report = leak_report(groups, Split(**parts))
    # group 0: train x test twice, test x test once; group 1: val x val; group 3: train x test
    assert report.pairs["train"] == {"train": 0, "val": 0, "test": 3}
    assert report.pairs["val"] == {"val": 1, "test": 0}
    assert report.pairs["test"] == {"test": 1}
    assert report.leaked == {"val": 0, "test": 3}
    assert report.sizes == {"train": 3, "val": 2, "test": 3}
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["pairs"]["train/test"] == 3 and as_dict["sizes"]["train"] == 3
    assert "test images with a near-duplicate in train: 3 / 3" in str(report)


def test_leak_report_leaves_out_images_in_no_part():
    report = leak_report([0, 0, 0], Split(train=[0], val=[], test=[2]))
    assert report.pairs["train"]["test"] == 1 and report.leaked["test"] == 1
    assert sum(n for row in report.pairs.values() for n in row.values()) == 1


def test_leak_report_finds_leaks_of_image_split_and_none_of_grouped_split():
    bases = smooth_images(8, seed=5)
    frames = torch.cat([add_noise(bases, std=3, seed=seed) for seed in range(5)])
    groups = near_duplicate_groups(scene_descriptors(frames))
    assert same_partition(groups, np.tile(np.arange(8), 5))
    image_split = random_split_indices(len(frames), (0.6, 0.2, 0.2), seed=0)
    assert leak_report(groups, image_split).pairs["train"]["test"] > 0
    grouped = grouped_split_indices(groups, (0.6, 0.2, 0.2), seed=0)
    report = leak_report(groups, grouped)
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
        (lambda: near_duplicate_groups(great_circle(3, 0.1), 2.5), "threshold"),
        (lambda: near_duplicate_groups(great_circle(3, 0.1), known_groups=[1]), "known_groups"),
        (lambda: near_duplicate_groups(np.zeros((3, 64)), 0.4), "scene_descriptors"),
        (lambda: scene_descriptors([torch.zeros(3, 8, 8)]), "uint8"),
        (lambda: scene_descriptors([torch.zeros(1, 8, 8, dtype=torch.uint8)]), "RGB"),
        (lambda: leak_report([0, 1], Split([0], [1], [2])), "only 2 images"),
        (lambda: Split([0, 1], [1], []), "overlap"),
    ],
)
def test_bad_input_raises_one_line_input_error(call, words):
    with pytest.raises(InputError) as error:
        call()
    message = str(error.value)
    assert words in message and "\n" not in message
