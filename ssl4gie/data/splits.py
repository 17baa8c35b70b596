"""Dataset splits, leak-aware grouping, the leak report and nested label fractions.

Everything here works on plain sequences, numpy arrays or tensors of labels and group ids (and
uint8 image tensors for hashing), so it does not depend on the Dataset classes: pass
``dataset.targets`` or ``dataset.video_ids`` and index the dataset with the result.

**Protocol split.** SSL4GIE splits images at random 80/10/10 with a seed
(:func:`random_split_indices`); C3VD is split by video, with the video names as configuration
(:func:`group_split`). Part sizes follow the largest-remainder rule (see :func:`part_sizes`).

**Leaks.** Endoscopy datasets are cut from videos, so an image-level split puts near-identical
frames on both sides of it. :func:`perceptual_hashes` gives each image a 64-bit DCT hash,
:func:`near_duplicate_groups` joins images whose hashes differ in at most ``threshold`` bits
(and images of one known sequence or video), :func:`grouped_split_indices` then splits whole
groups, and :func:`leak_report` counts the near-duplicate pairs a split puts across its parts.

**Label fractions.** :func:`label_fraction_indices` takes stratified, seeded and nested
subsets of the training set for data-efficiency studies.

Randomness comes from ``numpy.random.default_rng(seed)`` only, so a seed gives the same split on
every machine and run.

Example::

    hashes = perceptual_hashes(dataset[i]["image"] for i in range(len(dataset)))
    groups = near_duplicate_groups(hashes, threshold=8, known_groups=dataset.video_ids)
    split = grouped_split_indices(groups, (0.8, 0.1, 0.1), seed=0, labels=dataset.targets)
    print(leak_report(hashes, split, threshold=8))
    train_labels = np.asarray(dataset.targets)[split.train]
    few = split.train[label_fraction_indices(train_labels, fraction=0.01, seed=0)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ssl4gie.errors import InputError, did_you_mean

__all__ = [
    "DEFAULT_THRESHOLD",
    "PARTS",
    "LeakReport",
    "Split",
    "group_split",
    "grouped_split_indices",
    "hamming_distances",
    "label_fraction_indices",
    "leak_report",
    "near_duplicate_groups",
    "part_sizes",
    "perceptual_hashes",
    "random_split_indices",
]

PARTS = ("train", "val", "test")
DEFAULT_THRESHOLD = 8
"""Hamming distance (of 64 bits) up to which two hashes count as near-duplicates.

A starting point: independent images differ in about 32 bits, and re-encoding, noise and
brightness changes move a hash by a few bits. Check it on the data with :func:`leak_report`.
"""

_HASH_BITS = 64
_RESIZE = 32  # side of the grayscale thumbnail the DCT runs on
_LOW = 8  # side of the block of low frequencies kept (8 x 8 = 64 bits)
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
_BLOCK_ELEMENTS = 1 << 20  # hash pairs compared per block (8 MiB of uint64), close pairs per chunk
_POPCOUNT_TABLE = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


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


def _check_threshold(threshold: int) -> int:
    if not 0 <= threshold <= _HASH_BITS or int(threshold) != threshold:
        raise InputError(
            f"hash distance threshold {threshold!r} must be a whole number of bits in "
            f"0..{_HASH_BITS}; try {DEFAULT_THRESHOLD}"
        )
    return int(threshold)


def _as_hashes(hashes) -> np.ndarray:
    """Return hashes as uint64 [N]."""
    if isinstance(hashes, torch.Tensor):
        hashes = hashes.cpu().numpy()
    elif not isinstance(hashes, np.ndarray):
        hashes = np.array(list(hashes), dtype=np.uint64)
    if hashes.ndim != 1 or (hashes.size and hashes.dtype.kind not in "ui"):
        raise InputError(
            f"hashes have shape {hashes.shape} and dtype {hashes.dtype}; pass the uint64 [N] "
            "array from perceptual_hashes"
        )
    return hashes.astype(np.uint64)


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


# -------------------------------------------------------------------------------- hashing


def _dct_matrix(size: int) -> torch.Tensor:
    """DCT-II basis [size, size] without the orthonormal scale (the hash ignores scale)."""
    frequency = torch.arange(size, dtype=torch.float32)[:, None]
    position = torch.arange(size, dtype=torch.float32)[None, :]
    return torch.cos(math.pi * (2 * position + 1) * frequency / (2 * size))


def _thumbnail(image: torch.Tensor) -> torch.Tensor:
    """uint8 [3, H, W] -> float32 [32, 32] BT.601 grayscale, antialiased bilinear resize.

    One image at a time: converting a large batch to float at once runs out of cache and is
    several times slower.
    """
    weights = torch.tensor(_GRAY_WEIGHTS, device=image.device)
    gray = torch.tensordot(weights, image.float(), dims=([0], [0]))  # [H, W]
    size = (_RESIZE, _RESIZE)
    return F.interpolate(gray[None, None], size=size, mode="bilinear", antialias=True)[0, 0]


def _hash_batch(images: torch.Tensor) -> np.ndarray:
    """pHash of uint8 [B, 3, H, W] images -> uint64 [B]."""
    thumbnails = torch.stack([_thumbnail(image) for image in images])  # [B, 32, 32]
    basis = _dct_matrix(_RESIZE).to(images.device)
    coefficients = basis @ thumbnails @ basis.T  # [B, 32, 32]
    low = coefficients[:, 1 : _LOW + 1, 1 : _LOW + 1].reshape(len(images), _LOW * _LOW)
    bits = (low > low.median(dim=1, keepdim=True).values).cpu().numpy()
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def _as_image_batch(images: torch.Tensor) -> torch.Tensor:
    """Return uint8 [3, H, W] or [B, 3, H, W] as [B, 3, H, W], or raise InputError."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise InputError(
            f"cannot hash {type(images).__name__} {getattr(images, 'dtype', '')}; pass uint8 "
            "image tensors [3, H, W] or [B, 3, H, W]"
        )
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise InputError(
            f"cannot hash images of shape {tuple(images.shape)}; pass RGB uint8 tensors "
            "[3, H, W] or [B, 3, H, W]"
        )
    return batch


def perceptual_hashes(images: Iterable[torch.Tensor] | torch.Tensor) -> np.ndarray:
    """64-bit DCT perceptual hashes (pHash) of images -> uint64 [N].

    ``images`` is a uint8 tensor [3, H, W] or [B, 3, H, W], or an iterable of such tensors
    (sizes may differ between items), on any device.

    The hash follows Zauner, "Implementation and Benchmarking of Perceptual Image Hash
    Functions" (2010) and the pHash library's ``ph_dct_imagehash``: BT.601 grayscale, an
    antialiased bilinear resize to 32 x 32 (in place of pHash's 7 x 7 mean filter), a 2-D
    DCT-II, then the 8 x 8 lowest frequencies without the DC row and column (rows and columns
    1..8), each bit set where the coefficient exceeds their median. Dropping the DC terms makes
    the hash ignore brightness shifts; the median makes it ignore contrast changes.
    """
    batches = [images] if isinstance(images, torch.Tensor) else images
    hashes = [_hash_batch(_as_image_batch(batch)) for batch in batches]
    return np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array (numpy >= 2 has it built in)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    return _popcount_by_table(values)


def _popcount_by_table(values: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array, by a 256-entry table over its bytes."""
    per_byte = _POPCOUNT_TABLE[np.ascontiguousarray(values).view(np.uint8)]
    return per_byte.reshape(*values.shape, 8).sum(axis=-1, dtype=np.uint8)


def hamming_distances(hashes_a, hashes_b) -> np.ndarray:
    """Number of differing bits between uint64 hash arrays, elementwise with broadcasting.

    E.g. ``hamming_distances(h[:, None], h[None, :])`` is the uint8 [N, N] distance matrix.
    """
    return _popcount(
        np.bitwise_xor(np.asarray(hashes_a, np.uint64), np.asarray(hashes_b, np.uint64))
    )


def _near_duplicate_pairs(
    hashes: np.ndarray, threshold: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield chunks of pairs ``(i, j)``, ``i < j``, with at most ``threshold`` differing bits.

    Chunks hold at least ``_BLOCK_ELEMENTS`` pairs (the last one may hold fewer), so that
    consumers pay their per-chunk cost rarely.
    """
    firsts, seconds, pending = [], [], 0
    for first, second in _scan_pairs(hashes, threshold):
        firsts.append(first)
        seconds.append(second)
        pending += len(first)
        if pending >= _BLOCK_ELEMENTS:
            yield np.concatenate(firsts), np.concatenate(seconds)
            firsts, seconds, pending = [], [], 0
    if pending:
        yield np.concatenate(firsts), np.concatenate(seconds)


def _scan_pairs(hashes: np.ndarray, threshold: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the close pairs ``(i, j)``, ``i < j``, of one block of rows at a time.

    Every pair is compared (N^2 / 2 comparisons), vectorised: a block of rows is XORed
    against all later hashes and its bits counted at once. One XOR buffer of about
    ``_BLOCK_ELEMENTS`` uint64 is reused for every block, and the matches are found with a flat
    ``flatnonzero``: allocating the buffer per block and a 2-D ``nonzero`` cost 3x as much.
    """
    n = len(hashes)
    rows_per_block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    xor_buffer = np.empty(rows_per_block * n, dtype=np.uint64)
    for start in range(0, n, rows_per_block):
        rows, columns = hashes[start : start + rows_per_block], hashes[start:]
        shape = (len(rows), len(columns))
        xor = xor_buffer[: shape[0] * shape[1]].reshape(shape)
        np.bitwise_xor(rows[:, None], columns[None, :], out=xor)
        row, column = np.divmod(np.flatnonzero(_popcount(xor) <= threshold), shape[1])
        later = column > row  # keep i < j; column is offset by start like row
        yield row[later] + start, column[later] + start


def _find_roots(parent: np.ndarray) -> np.ndarray:
    """Point every node of a union-find forest at its root (pointer jumping), in place."""
    while True:
        grandparent = parent[parent]
        if np.array_equal(grandparent, parent):
            return parent
        parent[:] = grandparent


def _union(parent: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Union-find over edge arrays, vectorised: hook the larger root under the smaller.

    ``parent`` [N] must have every node pointing at its root; it is left that way.
    """
    while first.size:
        root_first, root_second = parent[first], parent[second]
        apart = root_first != root_second
        high = np.maximum(root_first, root_second)[apart]
        low = np.minimum(root_first, root_second)[apart]
        np.minimum.at(parent, high, low)
        _find_roots(parent)
        first, second = first[apart], second[apart]


def _known_group_edges(known_groups, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining each image to the first image of its known group (None: no group)."""
    values = _to_list(known_groups, "known_groups")
    _check_same_length(values, "known_groups", range(n), "hashes")
    grouped = np.array([value is not None for value in values], dtype=bool)
    codes, _ = _encode([value for value in values if value is not None], "known_groups")
    members = np.flatnonzero(grouped)
    _, first_position = np.unique(codes, return_index=True)
    return members, members[first_position[codes]]


def near_duplicate_groups(
    hashes, threshold: int = DEFAULT_THRESHOLD, known_groups=None
) -> np.ndarray:
    """Group ids -> int64 [N]: connected components of near-duplicate and known-group links.

    Args:
        hashes: uint64 [N] from :func:`perceptual_hashes`.
        threshold: images whose hashes differ in at most this many bits are linked.
        known_groups: optional [N] sequence/video id per image (CVC-ClinicDB sequences, C3VD
            videos, HyperKvasir videos); images with the same id are linked, ``None`` means none.

    Links are transitive (union-find), so a slowly changing video becomes one group. Group ids
    are numbered 0..G-1 in order of each group's first image.
    """
    hashes, threshold = _as_hashes(hashes), _check_threshold(threshold)
    parent = np.arange(len(hashes))
    if known_groups is not None:
        _union(parent, *_known_group_edges(known_groups, len(hashes)))
    for first, second in _near_duplicate_pairs(hashes, threshold):
        _union(parent, first, second)
    return _encode(parent, "groups")[0]


# ------------------------------------------------------------------------------- leak report


@dataclass(frozen=True)
class LeakReport:
    """Near-duplicate pairs within and across the parts of a split.

    ``pairs[a][b]`` (a <= b in train, val, test order) counts pairs with one image in part a
    and one in part b; ``leaked[part]`` counts the val or test images that have a near-duplicate
    in train; ``sizes[part]`` is the part's size.
    """

    threshold: int
    pairs: dict[str, dict[str, int]]
    leaked: dict[str, int]
    sizes: dict[str, int]

    def to_dict(self) -> dict:
        """Return the report as plain JSON-ready types."""
        return {
            "threshold": self.threshold,
            "pairs": {
                f"{a}/{b}": count for a, row in self.pairs.items() for b, count in row.items()
            },
            "leaked": dict(self.leaked),
            "sizes": dict(self.sizes),
        }

    def __str__(self) -> str:
        header = f"near-duplicate pairs (hash distance <= {self.threshold} of {_HASH_BITS} bits)"
        lines = [header, f"{'':>8}" + "".join(f"{part:>10}" for part in PARTS)]
        for position, first in enumerate(PARTS):
            cells = [f"{'':>10}"] * position
            cells += [f"{self.pairs[first][second]:>10}" for second in PARTS[position:]]
            lines.append(f"{first:>8}" + "".join(cells))
        for part in PARTS[1:]:
            share = self.leaked[part] / self.sizes[part] if self.sizes[part] else 0.0
            lines.append(
                f"{part} images with a near-duplicate in train: "
                f"{self.leaked[part]} / {self.sizes[part]} ({share:.1%})"
            )
        return "\n".join(lines)


def leak_report(hashes_or_images, split: Split, threshold: int = DEFAULT_THRESHOLD) -> LeakReport:
    """Count the near-duplicate pairs that ``split`` keeps within and puts across its parts.

    Args:
        hashes_or_images: a uint64 [N] numpy array from :func:`perceptual_hashes`, or the images
            themselves (anything :func:`perceptual_hashes` takes).
        split: a :class:`Split` of ``range(N)``; images in no part are left out.
        threshold: the near-duplicate distance in bits, as in :func:`near_duplicate_groups`.
    """
    if isinstance(hashes_or_images, np.ndarray) and hashes_or_images.ndim == 1:
        hashes = _as_hashes(hashes_or_images)
    else:
        hashes = perceptual_hashes(hashes_or_images)
    threshold = _check_threshold(threshold)
    part_of = split.part_codes(len(hashes))
    pair_counts = np.zeros((len(PARTS), len(PARTS)), dtype=np.int64)
    has_train_duplicate = np.zeros(len(hashes), dtype=bool)
    for first, second in _near_duplicate_pairs(hashes, threshold):
        part_first, part_second = part_of[first], part_of[second]
        in_split = (part_first >= 0) & (part_second >= 0)
        low = np.minimum(part_first, part_second)[in_split]
        high = np.maximum(part_first, part_second)[in_split]
        np.add.at(pair_counts, (low, high), 1)
        has_train_duplicate[second[part_first == 0]] = True
        has_train_duplicate[first[part_second == 0]] = True
    return LeakReport(
        threshold=threshold,
        pairs={
            a: {b: int(pair_counts[i, j]) for j, b in enumerate(PARTS) if j >= i}
            for i, a in enumerate(PARTS)
        },
        leaked={part: int(has_train_duplicate[getattr(split, part)].sum()) for part in PARTS[1:]},
        sizes={part: len(getattr(split, part)) for part in PARTS},
    )


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
