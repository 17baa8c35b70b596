"""Near-duplicate frames: scene descriptors, grouping by descriptor distance, the leak report.

Endoscopy datasets are cut from videos, so an image-level split puts frames of one scene on
both sides of it. :func:`scene_descriptors` describes each image by small colour thumbnails of
its central field of view under a few camera motions, :func:`near_duplicate_groups` joins
images whose descriptors lie within ``threshold`` of each other (and images of one known
sequence or video, e.g. from :func:`name_sequences`) for
:func:`ssl4gie.data.splits.grouped_split_indices`, and :func:`leak_report` counts the images a
split puts in another part than the rest of their group.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_lab

from ssl4gie.data.splits import PARTS, Split, _check_same_length, _encode, _to_list
from ssl4gie.errors import InputError

__all__ = [
    "DEFAULT_THRESHOLD",
    "LeakReport",
    "descriptor_distances",
    "leak_report",
    "name_sequences",
    "near_duplicate_groups",
    "near_duplicate_pairs",
    "scene_descriptors",
]

DEFAULT_THRESHOLD = 0.45
"""Descriptor distance up to which two images count as views of one scene.

Measured on public real frames (224 px): 20 consecutive frames of one CVC-ClinicDB sequence
[Bernal et al. 2015], 5 Kvasir-SEG images [Jha et al. 2020], 4 HyperKvasir frames sharing the
black border, position box and burnt-in text [Borgli et al. 2020], and 10 C3VD frames 30 frames
apart in one video [Bobrow et al. 2023]. The 506 pairs of distinct scenes (across datasets, and
within Kvasir-SEG and HyperKvasir) lie at 0.62 or more (5 % below 0.88, median 1.20; the
HyperKvasir pairs, overlay and all, at 0.99 or more). The 19 consecutive CVC-ClinicDB steps lie
at 0.18 / 0.50 / 1.55 (min / median / max): 8 steps are small camera moves (0.18 to 0.39),
the rest large moves and changes of view (0.47 to 1.55) that no appearance threshold can
join without also joining distinct scenes; those need the sequence ids
(``known_groups``). 0.45 sits 0.06 above the small moves and 0.17 below the closest distinct
pair. C3VD frames 30 apart are mostly other views (steps 0.38 / 0.73 / 0.91, 2 of 9 linked);
its reader's video ids join them. Found with this threshold alone: 7 groups in the CVC-ClinicDB
sequence (one of 13 frames), 5 in Kvasir-SEG, 4 in HyperKvasir, 8 in C3VD, none across
datasets; with the sequence ids, 1 group per video. A distance ``d`` is a mean correlation of
``1 - d**2 / 2`` between the best-aligned thumbnails, so 0.45 means 0.90.
"""

_FIELD = 32  # side of the antialiased thumbnail the views are sampled from
_SIDE = 8  # samples per side of a view
_HALF = 0.25  # half-side of the central view, as a fraction of the image side
_SHIFT = 0.08  # shift of the shifted views, as a fraction of the image side
_ZOOMS = (0.8, 1.25)  # zoomed views: half-side times these
_CHANNELS = 3  # CIE L*, a*, b*
_EXACT_MAX = 4096  # up to this many images, every pair is compared
_SIGN_BITS = 256  # random-hyperplane sign bits per vector, sampled by the bands
_BAND_BITS = 32  # sign bits per hash band
_BANDS = 64  # hash bands
_LSH_SEED = 0
_BLOCK_ELEMENTS = 1 << 22  # float32 distances or candidate pairs handled at once (16 MiB)


def _check_threshold(threshold: float) -> float:
    if not 0 <= threshold < 2:
        raise InputError(
            f"descriptor distance threshold {threshold!r} must lie in [0, 2); "
            f"try {DEFAULT_THRESHOLD}"
        )
    return float(threshold)


# ----------------------------------------------------------------------------- descriptors


def _view_grids() -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling grids of the views, float32 [T, S, S, 2] (identity first), and the disc mask
    of the samples kept, bool [S * S].

    Grid coordinates follow ``grid_sample``: -1 and 1 are the image edges. Every view stays
    inside the central 60 % of the image side.
    """
    motions = [(1.0, 0.0, 0.0)]
    shifts = (-_SHIFT, 0.0, _SHIFT)
    motions += [(1.0, dx, dy) for dy in shifts for dx in shifts if dx or dy]
    motions += [(zoom, 0.0, 0.0) for zoom in _ZOOMS]
    centres = (torch.arange(_SIDE, dtype=torch.float32) + 0.5) / _SIDE * 2 - 1  # in (-1, 1)
    grids = []
    for zoom, dx, dy in motions:
        x = 2 * (dx + _HALF * zoom * centres)
        y = 2 * (dy + _HALF * zoom * centres)
        grids.append(torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1))
    in_disc = (centres[None, :] ** 2 + centres[:, None] ** 2) <= 1
    return torch.stack(grids), in_disc.reshape(-1)


_GRIDS, _IN_DISC = _view_grids()
_VIEWS = len(_GRIDS)
_DIMENSION = _CHANNELS * int(_IN_DISC.sum())
# A faint horizontal ramp, zero-mean, added before scaling: a flat channel (no texture) then
# still becomes a unit vector, the same for every flat image (Lab values span tens of units).
_FLAT = 1e-3 * _GRIDS[0, :, :, 0].reshape(-1)[_IN_DISC]


def _describe(image: torch.Tensor) -> torch.Tensor:
    """uint8 [3, H, W] -> float32 [T, D] unit vectors, one per view.

    One image at a time: converting a large batch to float at once runs out of cache.
    """
    rgb = image[None].float() / 255
    thumbnail = F.interpolate(rgb, size=(_FIELD, _FIELD), mode="bilinear", antialias=True)
    lab = rgb_to_lab(thumbnail.clamp(0, 1))  # [1, 3, F, F]
    grid = _GRIDS.to(image.device).reshape(1, _VIEWS * _SIDE, _SIDE, 2)
    views = F.grid_sample(lab, grid, mode="bilinear", align_corners=False)  # [1, 3, T*S, S]
    views = views.reshape(_CHANNELS, _VIEWS, _SIDE * _SIDE).transpose(0, 1)
    views = views[:, :, _IN_DISC.to(image.device)]  # [T, 3, M]
    views = views - views.mean(dim=-1, keepdim=True) + _FLAT.to(image.device)
    views = views / views.norm(dim=-1, keepdim=True) / math.sqrt(_CHANNELS)
    return views.reshape(_VIEWS, _DIMENSION)


def _as_image_batch(images: torch.Tensor) -> torch.Tensor:
    """Return uint8 [3, H, W] or [B, 3, H, W] as [B, 3, H, W], or raise InputError."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        kind = type(images).__name__
        if isinstance(images, torch.Tensor):
            kind += f" of {images.dtype}"
        raise InputError(
            f"cannot describe a {kind}; pass uint8 image tensors [3, H, W] or [B, 3, H, W]"
        )
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise InputError(
            f"cannot describe images of shape {tuple(images.shape)}; pass RGB uint8 tensors "
            "[3, H, W] or [B, 3, H, W]"
        )
    return batch


def scene_descriptors(images: Iterable[torch.Tensor] | torch.Tensor) -> np.ndarray:
    """Shift- and exposure-tolerant descriptors of images -> float16 [N, T, D].

    ``images`` is a uint8 tensor [3, H, W] or [B, 3, H, W], or an iterable of such tensors
    (sizes may differ between items), on any device.

    Each image is resized (antialiased) to 32 x 32 and converted to CIE L*a*b*; T = 11 views
    of its centre are sampled at 8 x 8 points: the central square of half the image side
    (``[0]``, the reference view), the same square shifted by 8 % of the side in the 8
    directions, and zoomed by 0.8 and 1.25. Only the samples inside each view's inscribed disc
    are kept (D = 3 x 52): the views keep to the central 60 % of the image, away from the black
    border, the corners and the overlays endoscopes burn in near them, of which at most a
    sliver enters (HyperKvasir's position box ends at 34 % of the width and 67 % of the
    height; frames that share it stay 0.99 apart, see :data:`DEFAULT_THRESHOLD`). This is a
    fixed region, not a per-image mask of the field of view. Each channel of each view is centred
    and scaled to norm ``1 / sqrt(3)``, so a view is a unit vector that ignores exposure and
    white-balance offsets and gains; the coarse sampling ignores blur and noise. See
    :func:`descriptor_distances` for the distance.
    """
    batches = [images] if isinstance(images, torch.Tensor) else images
    described = [
        torch.stack([_describe(image) for image in _as_image_batch(batch)]).half().cpu().numpy()
        for batch in batches
    ]
    if not described:
        return np.zeros((0, _VIEWS, _DIMENSION), dtype=np.float16)
    return np.concatenate(described)


def _as_descriptors(descriptors) -> np.ndarray:
    """Return descriptors as float16 [N, T, D], or raise InputError."""
    descriptors = np.asarray(descriptors)
    if descriptors.shape[1:] != (_VIEWS, _DIMENSION):  # implies ndim == 3
        raise InputError(
            f"descriptors have shape {descriptors.shape}; pass the [N, {_VIEWS}, "
            f"{_DIMENSION}] array from scene_descriptors"
        )
    return descriptors.astype(np.float16, copy=False)


def _directed_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """min over views t of ``|queries[p, t] - references[p]|``: float32 [P]."""
    queries = torch.from_numpy(queries).float()  # [P, T, D]
    references = torch.from_numpy(references).float()[:, None]  # [P, 1, D]
    return (queries - references).norm(dim=-1).amin(dim=1).numpy()


def descriptor_distances(descriptors, first, second) -> np.ndarray:
    """Scene distance of image pairs ``(first[p], second[p])`` -> float32 [P], in [0, 2].

    The distance of images i and j is the smallest Euclidean distance between a view of one
    and the reference view of the other, over the T views and both orders: the camera
    motion between the two frames that aligns them best. 0 is the same picture; unrelated
    pictures lie near ``sqrt(2)``.
    """
    descriptors = _as_descriptors(descriptors)
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    forward = _directed_distances(descriptors[first], descriptors[second, 0])
    backward = _directed_distances(descriptors[second], descriptors[first, 0])
    return np.minimum(forward, backward)


# ------------------------------------------------------------------------- candidate search


def _exact_links(descriptors: np.ndarray, threshold: float) -> Iterator[np.ndarray]:
    """Yield ``(query, reference)`` int64 [2, P] with some view of the query within
    ``threshold`` of the reference view, comparing every pair (a block of rows at a time,
    one matrix product each: ``|q - r|^2 = |q|^2 + |r|^2 - 2 q.r``)."""
    n = len(descriptors)
    references = torch.from_numpy(descriptors[:, 0]).float()  # [N, D]
    reference_norms = (references**2).sum(dim=1)  # [N]
    rows = max(1, _BLOCK_ELEMENTS // (n * _VIEWS))
    for start in range(0, n, rows):
        queries = torch.from_numpy(descriptors[start : start + rows]).float()
        queries = queries.reshape(-1, _DIMENSION)  # [b * T, D]
        norms = (queries**2).sum(dim=1, keepdim=True) + reference_norms  # [b * T, N]
        squared = torch.addmm(norms, queries, references.T, alpha=-2)
        closest = squared.reshape(-1, _VIEWS, n).amin(dim=1)  # [b, N]
        query, reference = torch.nonzero(closest <= threshold**2).T.numpy()
        yield np.stack([query + start, reference])


def _lsh_bands() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed random hyperplanes, float32 [D, K], and the bit weights of the bands,
    float32 [K, 2 * L]: band l takes b of the K sign bits, its low and high halves weighted
    1, 2, 4, ... (exact in float32), so one matrix product packs every band's bits."""
    generator = torch.Generator().manual_seed(_LSH_SEED)
    planes = torch.randn(_DIMENSION, _SIGN_BITS, generator=generator)
    weights = torch.zeros(_SIGN_BITS, 2 * _BANDS)
    half = _BAND_BITS // 2
    for band in range(_BANDS):
        bits = torch.randperm(_SIGN_BITS, generator=generator)[:_BAND_BITS]
        weights[bits[:half], band] = 2.0 ** torch.arange(half)
        weights[bits[half:], _BANDS + band] = 2.0 ** torch.arange(_BAND_BITS - half)
    return planes, weights


def _band_keys(vectors: np.ndarray, planes: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """Sign bits of float16 [M, D] vectors on the hyperplanes, packed per band -> int64 [L, M]."""
    signs = (torch.from_numpy(vectors).float() @ planes > 0).float()  # [M, K]
    low, high = (signs @ weights).long().T.chunk(2)  # [L, M] each
    return ((high << (_BAND_BITS // 2)) | low).numpy()


def _bucket_members(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key, the positions in ``sorted_keys`` holding it: ``(owner, position)`` int64."""
    low = np.searchsorted(sorted_keys, keys, side="left")
    counts = np.searchsorted(sorted_keys, keys, side="right") - low
    owner = np.repeat(np.arange(len(keys)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.repeat(low - starts, counts) + np.arange(counts.sum())


def _hashed_links(descriptors: np.ndarray, threshold: float) -> Iterator[np.ndarray]:
    """Yield ``(query, reference)`` links as :func:`_exact_links`, comparing only the pairs
    that share a hash band (far fewer than all: see :func:`near_duplicate_pairs`).

    Locality-sensitive hashing by random hyperplanes [Charikar 2002]: a view and a reference
    at angle ``theta`` agree on one sign bit with probability ``1 - theta / pi``, so on a band
    of b = 32 bits with probability ``(1 - theta / pi) ** 32``: 0.12 at distance 0.2, 0.040
    at 0.3, 0.0068 at the threshold 0.45, 1.3e-5 at 0.9, 2e-10 for unrelated images (90
    degrees). Each of the L = 64 bands samples 32 of K = 256 sign bits (one matrix product per
    vector); a pair is checked when a band of one of the T views of one image matches the
    reference view of the other, and the check is the exact distance.
    """
    n = len(descriptors)
    planes, weights = _lsh_bands()
    reference_keys = _band_keys(descriptors[:, 0], planes, weights)  # [L, N]
    order = np.argsort(reference_keys, axis=1, kind="stable")  # [L, N]
    sorted_keys = np.take_along_axis(reference_keys, order, axis=1)
    rows = max(1, _BLOCK_ELEMENTS // (_VIEWS * _BANDS))
    for start in range(0, n, rows):
        queries = descriptors[start : start + rows].reshape(-1, _DIMENSION)
        query_keys = _band_keys(queries, planes, weights)  # [L, rows * T]
        candidates = []
        for band in range(_BANDS):
            owner, position = _bucket_members(sorted_keys[band], query_keys[band])
            candidates.append((owner // _VIEWS + start) * n + order[band, position])
        for codes in _chunks(np.unique(np.concatenate(candidates))):
            query, reference = np.divmod(codes, n)
            close = _directed_distances(descriptors[query], descriptors[reference, 0])
            yield np.stack([query, reference])[:, close <= threshold]


def _chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    step = max(1, _BLOCK_ELEMENTS // (_VIEWS * _DIMENSION))
    for start in range(0, len(values), step):
        yield values[start : start + step]


def near_duplicate_pairs(descriptors, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The pairs of images within ``threshold`` of each other -> int64 [2, P], sorted,
    ``first < second``.

    Up to 4096 images every pair is compared (exact). Above, only the pairs that share a hash
    band (:func:`_hashed_links`): no false link, and a pair at distance 0.2 / 0.3 / 0.45 is
    found with probability 0.9997 / 0.93 / 0.35 per view and direction (11 views, 2
    directions: a pair has several chances). The cost is the band look-ups, linear in N,
    plus one exact check per pair sharing a band, mostly pairs within about 0.7 of each other.

    Measured on 100,000 synthetic descriptors (10,000 groups of 10 at a median distance of
    0.28 within groups; 5 % of the other pairs below 0.89, their median 1.39, like the real
    frames): 23.0 million pairs checked (0.46 % of all 5.0e9; 230 per image, 31 per image at
    10,000), 449,953 of the 450,000 links found, 154 s on one CPU thread (4.2 s at 10,000),
    peak memory 2.6 GB with the descriptors (343 MB at float16). Comparing every pair takes
    7.0 s at 10,000 on that thread, so about 12 min at 100,000.
    """
    descriptors, threshold = _as_descriptors(descriptors), _check_threshold(threshold)
    search = _exact_links if len(descriptors) <= _EXACT_MAX else _hashed_links
    links = [np.sort(pairs, axis=0) for pairs in search(descriptors, threshold)]
    links = np.concatenate([np.zeros((2, 0), np.int64), *links], axis=1)
    links = links[:, links[0] != links[1]]
    return np.unique(links, axis=1)


# ---------------------------------------------------------------------------------- grouping


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
    _check_same_length(values, "known_groups", range(n), "descriptors")
    grouped = np.array([value is not None for value in values], dtype=bool)
    codes, _ = _encode([value for value in values if value is not None], "known_groups")
    members = np.flatnonzero(grouped)
    _, first_position = np.unique(codes, return_index=True)
    return members, members[first_position[codes]]


def near_duplicate_groups(
    descriptors, threshold: float = DEFAULT_THRESHOLD, known_groups=None
) -> np.ndarray:
    """Group ids -> int64 [N]: connected components of near-duplicate and known-group links.

    Args:
        descriptors: float16 [N, T, D] from :func:`scene_descriptors`.
        threshold: images within this :func:`descriptor_distances` are linked.
        known_groups: optional [N] sequence/video id per image (CVC-ClinicDB sequences, C3VD
            videos, :func:`name_sequences`); images with the same id are linked, ``None``
            means none.

    Links are transitive (union-find), so a video whose consecutive frames are close becomes
    one group. Group ids are numbered 0..G-1 in order of each group's first image.
    """
    descriptors = _as_descriptors(descriptors)
    parent = np.arange(len(descriptors))
    if known_groups is not None:
        _union(parent, *_known_group_edges(known_groups, len(descriptors)))
    first, second = near_duplicate_pairs(descriptors, threshold)
    _union(parent, first, second)
    return _encode(parent, "groups")[0]


_LAST_NUMBER = re.compile(r"\d+(?=\D*$)")


def name_sequences(paths: Sequence[str | os.PathLike]) -> list[str | None]:
    """Sequence id per image from its file name, for ``known_groups`` -> list [N].

    Frames exported from one video are usually numbered: ``fine_3_7_fram.jpg``,
    ``fine_3_8_fram.jpg``, or ``0_color.png``, ``30_color.png``. Images in one folder whose
    names differ only in their last number share an id (the folder and the name with that
    number replaced by ``#``); names without a digit get ``None``. Use it only where numbered
    names mean video frames: ImageNet's ``n01440764_10026.JPEG`` would join a whole class.
    """
    ids = []
    for path in paths:
        path = Path(path)
        template, found = _LAST_NUMBER.subn("#", path.stem)
        ids.append(str(path.parent / template) if found else None)
    return ids


# ------------------------------------------------------------------------------- leak report


@dataclass(frozen=True)
class LeakReport:
    """Near-duplicate groups within and across the parts of a split.

    ``pairs[a][b]`` (a <= b in train, val, test order) counts image pairs of one group with
    one image in part a and one in part b; ``leaked[part]`` counts the val or test images
    whose group has an image in train; ``sizes[part]`` is the part's size.
    """

    pairs: dict[str, dict[str, int]]
    leaked: dict[str, int]
    sizes: dict[str, int]

    def to_dict(self) -> dict:
        """Return the report as plain JSON-ready types."""
        return {
            "pairs": {
                f"{a}/{b}": count for a, row in self.pairs.items() for b, count in row.items()
            },
            "leaked": dict(self.leaked),
            "sizes": dict(self.sizes),
        }

    def __str__(self) -> str:
        lines = [
            "image pairs in one near-duplicate group",
            f"{'':>8}" + "".join(f"{part:>10}" for part in PARTS),
        ]
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


def leak_report(groups, split: Split) -> LeakReport:
    """Count the image pairs of one group that ``split`` keeps within and puts across parts.

    Args:
        groups: [N] group id per image, from :func:`near_duplicate_groups` (the grouping the
            leak-aware split uses).
        split: a :class:`Split` of ``range(N)``; images in no part are left out.
    """
    group_codes, group_names = _encode(groups, "groups")
    part_of = split.part_codes(len(group_codes))
    in_split = part_of >= 0
    counts = np.zeros((len(group_names), len(PARTS)), dtype=np.int64)  # [G, 3]
    np.add.at(counts, (group_codes[in_split], part_of[in_split]), 1)
    across = counts.T @ counts  # [3, 3]: ordered pairs (including an image with itself)
    within = (np.diag(across) - counts.sum(axis=0)) // 2  # unordered pairs of distinct images
    train_in_group = counts[group_codes, 0] > 0  # [N]
    return LeakReport(
        pairs={
            a: {
                b: int(within[i] if i == j else across[i, j]) for j, b in enumerate(PARTS) if j >= i
            }
            for i, a in enumerate(PARTS)
        },
        leaked={part: int(train_in_group[getattr(split, part)].sum()) for part in PARTS[1:]},
        sizes={part: len(getattr(split, part)) for part in PARTS},
    )
