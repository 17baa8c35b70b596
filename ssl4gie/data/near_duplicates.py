"""Near-duplicate frames: perceptual hashes, grouping by Hamming distance, the leak report.

Endoscopy datasets are cut from videos, so an image-level split puts near-identical frames on
both sides of it. :func:`perceptual_hashes` gives each image a 64-bit DCT hash,
:func:`near_duplicate_groups` joins images whose hashes differ in at most ``threshold`` bits
(and images of one known sequence or video) for :func:`ssl4gie.data.splits.grouped_split_indices`,
and :func:`leak_report` counts the near-duplicate pairs a split puts across its parts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ssl4gie.data.splits import PARTS, Split, _check_same_length, _encode, _to_list
from ssl4gie.errors import InputError

__all__ = [
    "DEFAULT_THRESHOLD",
    "LeakReport",
    "hamming_distances",
    "leak_report",
    "near_duplicate_groups",
    "perceptual_hashes",
]

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
