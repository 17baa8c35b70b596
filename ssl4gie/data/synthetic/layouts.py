"""Writers that lay synthetic frames out exactly as the real datasets' releases do.

Each writer follows the layout notes in ``docs/datasets.md``: folder and file names, side
files (csv, json) and the encodings of masks and depth. Frame ``index`` of a layout draws
everything (its file name included) from a generator seeded by ``(seed, layout, index)``, so
the output is byte-identical for a seed and independent of the order of generation. ``size``
is the frame height (its short side); the width is ``size`` times the dataset's aspect ratio.
"""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ssl4gie._io import atomic_dir, check_free_space, check_writable
from ssl4gie.data.synthetic.render import MIN_SIZE, render_frame
from ssl4gie.data.synthetic.styles import PLAIN, STYLES
from ssl4gie.errors import InputError, check_choice

LAYOUTS = (
    "hyperkvasir-unlabeled",
    "hyperkvasir-labeled",
    "kvasir-seg",
    "cvc-clinicdb",
    "c3vd",
    "imagefolder",
)
"""The on-disk layouts :func:`synthesize` writes (``ssl4gie data synth --layout``)."""

HYPERKVASIR_CLASSES: tuple[tuple[str, str, str], ...] = tuple(
    (tract, classification, finding)
    for tract, groups in {
        "lower-gi-tract": {
            "anatomical-landmarks": ("cecum", "ileum", "retroflex-rectum"),
            "pathological-findings": (
                "hemorrhoids",
                "polyps",
                *(f"ulcerative-colitis-grade-{g}" for g in ("0-1", "1", "1-2", "2", "2-3", "3")),
            ),
            "quality-of-mucosal-views": ("bbps-0-1", "bbps-2-3", "impacted-stool"),
            "therapeutic-interventions": ("dyed-lifted-polyps", "dyed-resection-margins"),
        },
        "upper-gi-tract": {
            "anatomical-landmarks": ("pylorus", "retroflex-stomach", "z-line"),
            "pathological-findings": (
                "barretts",
                "barretts-short-segment",
                "esophagitis-a",
                "esophagitis-b-d",
            ),
        },
    }.items()
    for classification, findings in groups.items()
    for finding in findings
)
"""The 23 labelled HyperKvasir classes as ``(tract folder, classification, finding)``."""

ORGANS = {"lower-gi-tract": "Lower GI", "upper-gi-tract": "Upper GI"}
"""The ``Organ`` column of ``image-labels.csv`` for each tract folder."""

C3VD_VIDEOS = (
    *(f"cecum_t{t}" for t in ("1_a", "1_b", "2_a", "2_b", "2_c", "3_a", "4_a", "4_b")),
    "desc_t4_a",
    *(f"sigmoid_t{t}" for t in ("1_a", "2_a", "3_a", "3_b")),
    *(f"trans_t{t}" for t in ("1_a", "1_b", "2_a", "2_b", "2_c", "3_a", "3_b", "4_a", "4_b")),
)
"""Video folder names of the registered C3VD release."""

C3VD_FRAMES_PER_VIDEO = 4
"""``ceil(n / 4)`` videos are written (at most the 22 names), so small runs have several."""

DEPTH_MAX_MM = 100.0
"""C3VD depth TIFFs map uint16 0..65535 linearly to 0..100 mm."""

JPEG_QUALITY = 90

BYTES_PER_FRAME = {
    "hyperkvasir-unlabeled": (1600, 0.20),
    "hyperkvasir-labeled": (1800, 0.21),
    "kvasir-seg": (2300, 0.23),
    "cvc-clinicdb": (200, 5.40),
    "c3vd": (800, 4.60),
    "imagefolder": (1600, 0.20),
}
"""``(fixed, per size²)`` bytes one frame of a layout writes, files beside it included, as
measured with seed 0 at sizes 64 and 256 (JPEG compresses larger frames better, so the linear
fit overestimates above 256; TIFF and PNG grow with the pixels)."""

Writer = Callable[[Path, int, int, int, bool], None]


def frame_rng(seed: int, layout: str, index: int, *stream: int) -> np.random.Generator:
    """The generator for frame (or C3VD video) ``index`` of ``layout``; ``stream`` forks it."""
    return np.random.default_rng([seed, LAYOUTS.index(layout), index, *stream])


def _progress(n: int, layout: str, progress: bool) -> Iterable[int]:
    return tqdm(range(n), desc=f"synth {layout}", unit="frame", disable=not progress)


def _varied_aspect(rng: np.random.Generator) -> float:
    """Width / height of HyperKvasir-like frames: 720x576-like (1.25) or square."""
    return float(rng.choice((1.25, 1.0)))


def _uuid_stem(rng: np.random.Generator) -> str:
    """A HyperKvasir-like file stem, e.g. ``0a3b9c1e-...``, from ``rng``."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _kvasir_id(rng: np.random.Generator) -> str:
    """A Kvasir-SEG-like id: 25 lowercase alphanumerics starting ``cj``, from ``rng``."""
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
    return "cj" + "".join(rng.choice(alphabet, 23))


def _save(image: np.ndarray, path: Path) -> None:
    """Write uint8/uint16 ``[H, W]`` or ``[H, W, 3]``; the suffix picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    quality = {"quality": JPEG_QUALITY} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(image).save(path, **quality)


def _mask_u8(mask: np.ndarray) -> np.ndarray:
    """bool ``[H, W]`` -> uint8 0/255."""
    return mask.astype(np.uint8) * 255


def _bbox_entry(frame: dict) -> dict:
    """The Kvasir-SEG json entry of a frame: height, width and one box per polyp."""
    height, width = frame["mask"].shape
    boxes = [
        {"label": "polyp", "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}
        for x0, y0, x1, y1 in frame["boxes"]
    ]
    return {"height": height, "width": width, "bbox": boxes}


def _write_segmentation(root: Path, stem: str, frame: dict) -> dict:
    """``images/<stem>.jpg`` and ``masks/<stem>.jpg`` (0/255 JPEG); return the json entry."""
    _save(frame["image"], root / "images" / f"{stem}.jpg")
    _save(_mask_u8(frame["mask"]), root / "masks" / f"{stem}.jpg")
    return _bbox_entry(frame)


def _write_json(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_hyperkvasir_unlabeled(root: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """``unlabeled-images/images/<uuid>.jpg``: frames of all 23 class styles mixed, no labels."""
    layout = "hyperkvasir-unlabeled"
    for index in _progress(n, layout, progress):
        rng = frame_rng(seed, layout, index)
        finding = HYPERKVASIR_CLASSES[rng.integers(len(HYPERKVASIR_CLASSES))][2]
        stem = _uuid_stem(rng)
        frame = render_frame(rng, size, STYLES[finding], _varied_aspect(rng))
        _save(frame["image"], root / "unlabeled-images" / "images" / f"{stem}.jpg")


def write_hyperkvasir_labeled(root: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """The labelled HyperKvasir images, their csv, and the segmented polyps.

    Frame ``i`` belongs to class ``i % 23`` (the order of :data:`HYPERKVASIR_CLASSES`), so the
    classes get ``n // 23`` or one more images each: all 23 when ``n >= 23``, the first ``n``
    otherwise (only folders with images are created). Writes
    ``labeled-images/<tract>/<classification>/<finding>/<uuid>.jpg``,
    ``labeled-images/image-labels.csv`` (columns ``Video file`` = the image stem, ``Finding``,
    ``Organ`` = ``Lower GI``/``Upper GI``, ``Classification``), and for the ``polyps`` class
    ``segmented-images/{images,masks}/<uuid>.jpg`` with ``segmented-images/bounding-boxes.json``
    (the Kvasir-SEG json structure).
    """
    layout = "hyperkvasir-labeled"
    rows, boxes = [], {}
    for index in _progress(n, layout, progress):
        tract, classification, finding = HYPERKVASIR_CLASSES[index % len(HYPERKVASIR_CLASSES)]
        rng = frame_rng(seed, layout, index)
        stem = _uuid_stem(rng)
        frame = render_frame(rng, size, STYLES[finding], _varied_aspect(rng))
        folder = root / "labeled-images" / tract / classification / finding
        _save(frame["image"], folder / f"{stem}.jpg")
        rows.append((stem, finding, ORGANS[tract], classification))
        if finding == "polyps":
            boxes[stem] = _write_segmentation(root / "segmented-images", stem, frame)
    with open(root / "labeled-images" / "image-labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("Video file", "Finding", "Organ", "Classification"))
        writer.writerows(rows)
    if boxes:
        _write_json(boxes, root / "segmented-images" / "bounding-boxes.json")


def write_kvasir_seg(root: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """``images/<id>.jpg``, ``masks/<id>.jpg`` (0/255 as JPEG) and ``kavsir_bboxes.json``.

    Every frame has 1 to 3 polyps (mostly 1); the json maps each id to
    ``{"height", "width", "bbox": [{"label": "polyp", "xmin", "ymin", "xmax", "ymax"}]}`` with
    the mask extent of each polyp (max coordinates inclusive).
    """
    layout = "kvasir-seg"
    style = replace(STYLES["polyps"], polyps=(1, 3))
    boxes = {}
    for index in _progress(n, layout, progress):
        rng = frame_rng(seed, layout, index)
        stem = _kvasir_id(rng)
        boxes[stem] = _write_segmentation(
            root, stem, render_frame(rng, size, style, _varied_aspect(rng))
        )
    _write_json(boxes, root / "kavsir_bboxes.json")


def write_cvc_clinicdb(root: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """``Original/<n>.tif`` (RGB) and ``Ground Truth/<n>.tif`` (0/255), n = 1..N, 4:3 frames.

    Each frame has one polyp and no overlays; frames are independent (no sequences).
    """
    layout = "cvc-clinicdb"
    style = replace(STYLES["polyps"], polyps=(1, 1), overlays=0.0)
    for index in _progress(n, layout, progress):
        frame = render_frame(frame_rng(seed, layout, index), size, style, aspect=4 / 3)
        _save(frame["image"], root / "Original" / f"{index + 1}.tif")
        _save(_mask_u8(frame["mask"]), root / "Ground Truth" / f"{index + 1}.tif")


def _c3vd_frames(n: int) -> list[tuple[int, int]]:
    """``(video, frame number)`` of each of ``n`` frames, spread evenly over the videos."""
    videos = min(len(C3VD_VIDEOS), math.ceil(n / C3VD_FRAMES_PER_VIDEO))
    counts = [n // videos + (video < n % videos) for video in range(videos)]
    return [(video, t) for video, count in enumerate(counts) for t in range(count)]


def _lumen_path(seed: int, video: int, t: int) -> tuple[float, float]:
    """Where the lumen is in frame ``t`` of a C3VD video: a slow loop, in FOV radii."""
    phase_u, phase_v, speed = frame_rng(seed, "c3vd", video, 1).uniform(0, 2 * np.pi, 3)
    step = 0.05 + 0.05 * speed / (2 * np.pi)
    return 0.4 * math.sin(phase_u + step * t), 0.3 * math.sin(phase_v + 1.3 * step * t)


def write_c3vd(root: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """``<video>/<nnnn>_color.png`` and ``<video>/<nnnn>_depth.tiff`` (4 digits: the current
    release's layout, C3VD page).

    Depth is uint16, 0..65535 linear in 0..100 mm. Frames are 5:4 (like 1350x1080) without a
    black border or overlays. ``n`` frames are spread over ``ceil(n / 4)`` videos (at most 22,
    the real names); within a video the texture stays and the lumen drifts from frame to frame.
    """
    frames = _c3vd_frames(n)
    for index in _progress(n, "c3vd", progress):
        video, t = frames[index]
        style = replace(PLAIN, fov="full", overlays=0.0, lumen=_lumen_path(seed, video, t))
        frame = render_frame(frame_rng(seed, "c3vd", video), size, style, aspect=1.25)
        folder = root / C3VD_VIDEOS[video]
        _save(frame["image"], folder / f"{t:04d}_color.png")
        depth = np.round(frame["depth"] / DEPTH_MAX_MM * 65535).astype(np.uint16)
        _save(depth, folder / f"{t:04d}_depth.tiff")


def wnid(class_index: int) -> str:
    """An ImageNet-like class folder name for class ``class_index``: ``n00000001``, ..."""
    return f"n{class_index + 1:08d}"


def write_imagefolder(root: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """ImageNet style: ``train/<wnid>/<wnid>_<k>.JPEG`` and ``val/<wnid>/ILSVRC2012_val_<i>.JPEG``.

    The classes are the 23 HyperKvasir class styles, class ``c`` in folder ``wnid(c)``. Frame
    ``i`` is image ``k = i // 23`` of class ``i % 23``; images ``k = 1, 6, 11, ...`` of each
    class go to ``val`` (1 in 5), the rest to ``train``, so from ``n >= 46`` both splits have
    the same 23 class folders. Only folders with images are created.
    """
    layout = "imagefolder"
    for index in _progress(n, layout, progress):
        class_index, k = index % len(HYPERKVASIR_CLASSES), index // len(HYPERKVASIR_CLASSES)
        rng = frame_rng(seed, layout, index)
        style = STYLES[HYPERKVASIR_CLASSES[class_index][2]]
        frame = render_frame(rng, size, style, _varied_aspect(rng))
        if k % 5 == 1:
            path = root / "val" / wnid(class_index) / f"ILSVRC2012_val_{index + 1:08d}.JPEG"
        else:
            path = root / "train" / wnid(class_index) / f"{wnid(class_index)}_{k}.JPEG"
        _save(frame["image"], path)


WRITERS: dict[str, Writer] = {
    "hyperkvasir-unlabeled": write_hyperkvasir_unlabeled,
    "hyperkvasir-labeled": write_hyperkvasir_labeled,
    "kvasir-seg": write_kvasir_seg,
    "cvc-clinicdb": write_cvc_clinicdb,
    "c3vd": write_c3vd,
    "imagefolder": write_imagefolder,
}


def _check_count(name: str, value: object, minimum: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}: {why}")


def _check_root(root: str | os.PathLike) -> Path:
    """Return ``root`` as an absolute path if it is a new or empty folder that can be written."""
    root = Path(root).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise InputError(f"root {root} is a file: choose a new or empty folder")
    if root.is_dir() and any(root.iterdir()):
        raise InputError(f"root {root} is not empty: choose a new folder or empty this one")
    check_writable(root, "root")
    return root


def estimated_bytes(layout: str, n: int, size: int) -> int:
    """What :func:`synthesize` writes for ``n`` frames of ``size`` px (:data:`BYTES_PER_FRAME`)."""
    fixed, per_pixel = BYTES_PER_FRAME[layout]
    return math.ceil(n * (fixed + per_pixel * size * size))


def synthesize(
    layout: str,
    root: str | os.PathLike,
    n: int,
    size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write ``n`` synthetic frames in ``layout``'s real on-disk layout to ``root``; return it.

    ``layout`` is one of :data:`LAYOUTS` (what each writes: the ``write_*`` functions here and
    ``docs/datasets.md``). ``size`` is the frame height in px (at least :data:`MIN_SIZE`, so
    polyps stay several px wide); widths follow the dataset's aspect ratio. ``root`` must not
    exist or be an empty folder: the dataset is written beside it under a temporary name and
    renamed into place when complete, so an error, Ctrl-C or SIGTERM leaves nothing behind; a
    run whose estimate (:func:`estimated_bytes`) exceeds the free space is refused up front.
    The same ``seed`` gives byte-identical files. Bad arguments raise
    :class:`~ssl4gie.errors.InputError`.

    Examples:
        >>> synthesize("kvasir-seg", "data/kvasir-seg", n=100, size=128)  # doctest: +SKIP
        PosixPath('data/kvasir-seg')
    """
    layout = check_choice("layout", layout, LAYOUTS)
    _check_count("n", n, 1, "ask for at least one frame")
    _check_count("size", size, MIN_SIZE, "smaller frames cannot hold the field of view and polyps")
    _check_count("seed", seed, 0, "seeds are non-negative")
    root = _check_root(root)
    check_free_space(root, estimated_bytes(layout, n, size), f"{n} {layout} frames at {size} px")
    with atomic_dir(root) as tmp:
        WRITERS[layout](tmp, n, size, seed, progress)
    return root
