"""Checks that kill the mutants ``nox -s mutants`` found surviving in
``ssl4gie/data/near_duplicates.py``: bad-input lines in full, the threshold's bounds and default,
the leak report's text and the sequence names, each against a hand-made case."""

import inspect

import numpy as np
import pytest
import torch

from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    descriptor_distances,
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
    "cannot describe a Tensor of torch.float32; pass uint8 image tensors [3, H, W] or "
    "[B, 3, H, W]": lambda: scene_descriptors([torch.zeros(3, 8, 8)]),
    "cannot describe a list; pass uint8 image tensors [3, H, W] or [B, 3, H, W]": (
        lambda: scene_descriptors([[0, 1, 2]])
    ),
    "descriptor distance threshold 2 must lie in [0, 2); try 0.45": lambda: near_duplicate_pairs(
        _FLAT, 2
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


# ------------------------------------------------------------------ search against brute force

_T, _D = 11, 156  # views and descriptor length of scene_descriptors (pinned above)


def _rotated(rng: np.random.Generator, u: np.ndarray, distance: float) -> np.ndarray:
    """A unit vector at Euclidean ``distance`` from the unit vector ``u`` (random direction)."""
    w = rng.standard_normal(u.shape)
    w -= (w @ u) * u
    angle = 2 * np.arcsin(distance / 2)
    return np.cos(angle) * u + np.sin(angle) * w / np.linalg.norm(w)


def _group_descriptors(distances: list[float], seed: int = 0) -> np.ndarray:
    """Pairs of images (2k, 2k + 1) at the given distances, float16 [2 * len, 11, 156], linked
    through view 1 + k % 10 of the first image (k % 3 == 0: found only with the first image as
    the query), through the reference views (k % 3 == 1) or through a view of the second image
    (k % 3 == 2); every other view is random, so unrelated images lie near sqrt(2)."""
    rng = np.random.default_rng(seed)
    unit = lambda: (lambda v: v / np.linalg.norm(v))(rng.standard_normal(_D))  # noqa: E731
    descriptors = np.stack([np.stack([unit() for _ in range(_T)]) for _ in distances for _ in "ab"])
    for k, distance in enumerate(distances):
        first, second = 2 * k, 2 * k + 1
        if k % 3 == 0:
            descriptors[first, 1 + k % 10] = _rotated(rng, descriptors[second, 0], distance)
        else:
            view = 0 if k % 3 == 1 else 1 + k % 10
            descriptors[second, view] = _rotated(rng, descriptors[first, 0], distance)
    return descriptors.astype(np.float16)


def _brute_pairs(descriptors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Every pair i < j whose best view of one lies within ``threshold`` of the reference view
    of the other, by loops in float64 (the definition in descriptor_distances' docstring)."""
    d = descriptors.astype(np.float64)
    pairs = []
    for i in range(len(d)):
        for j in range(i + 1, len(d)):
            forward = min(np.linalg.norm(d[i, t] - d[j, 0]) for t in range(_T))
            backward = min(np.linalg.norm(d[j, t] - d[i, 0]) for t in range(_T))
            if min(forward, backward) <= threshold:
                pairs.append((i, j))
    return pairs


_DISTANCES = [0.05, 0.1, 0.3, 0.4, 0.5, 0.8, 0.12, 0.2] * 3  # 48 images, none within 0.02 of 0.45


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 22 query rows (exact), 17 (hashed) and 6 candidate pairs per check: every loop
    of the search runs several times on 48 images, and a hashed block starts at image 17, which
    is linked to image 16 only as the query (pair k = 8 at 0.05): its block's first candidate."""
    from ssl4gie.data import near_duplicates

    monkeypatch.setattr(near_duplicates, "_BLOCK_ELEMENTS", _T * 64 * 17)
    return near_duplicates


def test_exact_search_matches_brute_force_over_blocks(small_blocks) -> None:
    descriptors = _group_descriptors(_DISTANCES)
    expected = _brute_pairs(descriptors, 0.45)
    assert len(expected) == 6 * 3  # the six distances below 0.45, three times
    assert list(zip(*near_duplicate_pairs(descriptors).tolist(), strict=True)) == expected


def test_hashed_search_finds_close_pairs_only_and_is_reproducible(small_blocks, monkeypatch):
    monkeypatch.setattr(small_blocks, "_EXACT_MAX", 0)  # force the hashed search
    descriptors = _group_descriptors(_DISTANCES)
    found = list(zip(*near_duplicate_pairs(descriptors).tolist(), strict=True))
    close = _brute_pairs(descriptors, 0.2)  # found with probability > 0.9997 per view
    assert set(close) <= set(found) <= set(_brute_pairs(descriptors, 0.45))
    # pairs near the threshold are found by chance (about 1 in 3): the same ones every call
    borderline = _group_descriptors([0.42, 0.44] * 16, seed=1)
    first = near_duplicate_pairs(borderline)
    assert 0 < first.shape[1] < 32
    np.testing.assert_array_equal(near_duplicate_pairs(borderline), first)


def test_hashed_search_keeps_a_pair_at_exactly_the_threshold(monkeypatch) -> None:
    from ssl4gie.data import near_duplicates

    monkeypatch.setattr(near_duplicates, "_EXACT_MAX", 0)
    assert near_duplicate_pairs(_FLAT, 0.0).tolist() == [[0, 0, 1], [1, 2, 2]]


def test_band_keys_pack_each_bands_sign_bits() -> None:
    from ssl4gie.data.near_duplicates import _band_keys, _lsh_bands

    planes, weights = _lsh_bands()
    assert planes.shape == (_D, 256) and weights.shape == (256, 2 * 64)
    for band in range(64):
        low, high = weights[:, band], weights[:, 64 + band]
        for half in (low, high):
            assert sorted(half[half > 0].tolist()) == [2.0**k for k in range(16)]
        assert not ((low > 0) & (high > 0)).any()  # 32 distinct bits per band
    # axis hyperplanes: the sign bits are the vector's positive entries (0 is not positive)
    axes = torch.eye(_D, 256)
    vectors = np.random.default_rng(0).choice([-1.0, 0.0, 1.0], size=(4, _D)).astype(np.float16)
    keys = _band_keys(vectors, axes, weights)
    for m, vector in enumerate(vectors):
        bits = [int(k < _D and vector[k] > 0) for k in range(256)]
        for band in range(64):
            low = sum(bit * int(w) for bit, w in zip(bits, weights[:, band].tolist(), strict=True))
            high = sum(bit * int(w) for bit, w in zip(bits, weights[:, 64 + band], strict=True))
            assert keys[band, m] == low + (high << 16)


# --------------------------------------------------------------- descriptors on real pictures


def _texture(seed: int, size: int = 256, amplitude: float = 60.0) -> torch.Tensor:
    """A smooth random colour texture around a mucosa-like pink, uint8 [3, size, size]."""
    coarse = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(seed))
    field = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")[0]
    image = torch.tensor([150.0, 80.0, 70.0]).view(3, 1, 1) + amplitude * field
    return image.clamp(0, 255).round().to(torch.uint8)


def _distance(first: torch.Tensor, second: torch.Tensor) -> float:
    descriptors = scene_descriptors([first[None], second[None]])
    return float(descriptor_distances(descriptors, [0], [1])[0])


@pytest.mark.parametrize("dy, dx", [(20, 20), (20, -20), (-20, 20), (-20, -20), (0, -20), (20, 0)])
def test_camera_moves_of_8_percent_in_every_direction_are_near(dy: int, dx: int) -> None:
    image = _texture(0)
    assert _distance(image, torch.roll(image, (dy, dx), dims=(1, 2))) < 0.15  # 20 px of 256
    assert _distance(image, _texture(1)) > 1.0  # another scene


def test_pixel_noise_is_ignored_by_the_antialiased_thumbnail() -> None:
    image = _texture(0, size=512)
    noise = torch.randint(-60, 61, image.shape, generator=torch.Generator().manual_seed(5))
    noisy = (image.float() + noise).clamp(0, 255).to(torch.uint8)
    assert _distance(image, noisy) < 0.1


def test_faint_textures_still_tell_scenes_apart() -> None:
    # one grey level of texture: the ramp that makes flat channels unit vectors (1e-3 Lab units)
    # must not drown it, against a flat picture or another faint texture
    flat = torch.full((3, 256, 256), 120, dtype=torch.uint8)
    faint = _texture(2, amplitude=1.0)
    assert _distance(flat, faint) > 1.2
    assert _distance(faint, _texture(3, amplitude=1.0)) > 1.2


def test_only_the_central_72_percent_is_described() -> None:
    # the black border, corners and burnt-in overlays lie outside: painting everything there
    # green leaves every view of the descriptor unchanged; inside (60 %), it changes them
    image = _texture(0)

    def painted(keep: float) -> torch.Tensor:
        margin = round(256 * (1 - keep) / 2)
        outside = torch.ones(256, 256, dtype=torch.bool)
        outside[margin:-margin, margin:-margin] = False
        out = image.clone()
        out[:, outside] = torch.tensor([0, 200, 0], dtype=torch.uint8)[:, None]
        return out

    original, outer, inner = scene_descriptors(torch.stack([image, painted(0.72), painted(0.6)]))
    np.testing.assert_array_equal(outer, original)
    assert np.abs(inner.astype(np.float32) - original).max() > 0.1


def test_descriptor_distances_are_pinned() -> None:
    # DEFAULT_THRESHOLD was measured on real frames with this exact descriptor (thumbnail side,
    # views, Lab, centring): a change that moves these distances must re-measure it
    image = _texture(0)
    crop = image[None, :, 26:-26, 26:-26].float()  # a 1.25 zoom
    zoomed = torch.nn.functional.interpolate(crop, size=(256, 256), mode="bilinear")[0]
    pictures = [
        image,
        torch.roll(image, (20, -20), dims=(1, 2)),
        zoomed.round().to(torch.uint8),
        _texture(1),
        (image.float() * 0.7 + 30).to(torch.uint8),  # darker, lower contrast
    ]
    descriptors = scene_descriptors(torch.stack(pictures))
    distances = descriptor_distances(descriptors, [0] * 4, [1, 2, 3, 4])
    np.testing.assert_allclose(distances, [0.0723, 0.0505, 1.3508, 0.0875], atol=2e-3)
