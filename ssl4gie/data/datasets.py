"""One torch Dataset per on-disk layout (``docs/datasets.md``), each returning the sample dict of
``docs/architecture.md`` at a fixed ``size`` (``int`` or ``(height, width)``).

Bad data, in every reader:

- *Unreadable at training time* (a file corrupted after indexing, a bad slice): the sample is
  replaced by the next index that reads, counted in ``.replaced`` (per worker process) and
  reported with a warning naming the file. Training never stops for one bad file.
- *Unreadable at construction* (readers built on :func:`~ssl4gie.data.index.build_index`):
  skipped, with the index's single warning and list of bad files.
- *Structural problems* (missing dataset root, a missing mask or depth file, a mask whose size
  differs from its image, an expected class without images): :class:`~ssl4gie.errors.InputError`
  at construction, naming the file and the expected layout.
- *A bad annotation* (a Kvasir-SEG box that is empty or outside its image): dropped, with one
  warning naming the file.

Samples carry ``index`` (the position read, which differs from the one asked for when a sample
was replaced). All readers work inside ``torch.utils.data.ConcatDataset``; readers without
labels give the same keys, so unlabeled sets concatenate for pretraining.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from ssl4gie.data.decode import (
    UnreadableImageError,
    as_size,
    read_depth_c3vd,
    read_image,
    read_mask,
    resize_image,
    resize_nearest,
)
from ssl4gie.data.index import build_index
from ssl4gie.errors import InputError, check_choice

PathLike = str | os.PathLike
Size = int | Sequence[int]
SOURCES = {
    "HyperKvasir": "https://datasets.simula.no/hyper-kvasir/",
    "Kvasir-SEG": "https://datasets.simula.no/kvasir-seg/",
    "CVC-ClinicDB": "https://polyp.grand-challenge.org/CVCClinicDB/",
    "C3VD": "https://durrlab.github.io/C3VD/",
    "ImageNet": "https://image-net.org/download.php",
    "ACDC": "https://www.creatis.insa-lyon.fr/Challenge/acdc/",
    "lung CT": "http://medicaldecathlon.com/ (Task06_Lung)",
}
_COLITIS_GRADES = ("0-1", "1", "1-2", "2", "2-3", "3")
HYPERKVASIR_CLASSES = {
    "landmarks": ("cecum", "ileum", "retroflex-rectum", "pylorus", "retroflex-stomach", "z-line"),
    "findings": (
        *("hemorrhoids", "polyps", "barretts", "barretts-short-segment", "esophagitis-a"),
        *("esophagitis-b-d", *(f"ulcerative-colitis-grade-{g}" for g in _COLITIS_GRADES)),
    ),
    "other": (
        "bbps-0-1",
        "bbps-2-3",
        "impacted-stool",
        "dyed-lifted-polyps",
        "dyed-resection-margins",
    ),
}
HYPERKVASIR_SPLIT_NAMES = {
    "hemorroids": "hemorrhoids",
    "normal-cecum": "cecum",
    "normal-pylorus": "pylorus",
    "normal-z-line": "z-line",
    "oesophagitis-a": "esophagitis-a",
    "oesophagitis-b-d": "esophagitis-b-d",
    "polyp": "polyps",
    "short-segment-barretts": "barretts-short-segment",
}
"""Class names of the HyperKvasir repository's split files (simula/hyper-kvasir
``official_splits/2_fold_split.csv``, used by its ``scripts/annotation_file_to_folders.py``) that
differ from the release's folder names, mapped to the folder names."""
CLASS_ORDERS = ("sorted", "ssl4gie")
PAIRING_SUFFIXES = ("_mask", "_gt", "_label", "_seg", "_fram", "_frame", "_image", "_img")
"""Stem suffixes ``seg-folder`` strips (one, any case) before pairing an image with its mask."""
CVC_MASK_FOLDERS = ("Ground Truth", "Ground_Truth", "GroundTruth")
C3VD_UNDER_REVIEW = "_under_review"
_C3VD_V1_SUBFOLDER = re.compile(r"[a-z]\d+v\d+")  # e.g. c4v2, t2v2 (first C3VD release)
CVC_SEQUENCES_FILE = Path(__file__).with_name("cvc_clinicdb_sequences.json")
_MAX_REPLACEMENTS = 16


def hyperkvasir_classes(task: str) -> list[str]:
    """The sorted class names of a HyperKvasir task: landmarks (6), findings (12), all (23)."""
    check_choice("HyperKvasir task", task, ("landmarks", "findings", "all"))
    if task == "all":
        return sorted(name for names in HYPERKVASIR_CLASSES.values() for name in names)
    return sorted(HYPERKVASIR_CLASSES[task])


def _locate(root: PathLike, relatives: Sequence[str], expected: str, dataset: str) -> Path:
    """``root/<relative>``, or ``root/<one extra folder>/<relative>``, for the first relative
    that exists; else an InputError with the expected layout and where to get the dataset."""
    root = Path(root).expanduser()
    for relative in relatives:
        for candidate in (root / relative, *sorted(root.glob(f"*/{relative}"))):
            if candidate.is_dir():
                return candidate
    raise InputError(
        f"{dataset} not found: expected {root}/{expected}; get it from {SOURCES[dataset]}"
    )


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header."""
    with Image.open(path) as image:
        return image.size


class _Reader(Dataset):
    """The shared reader: ``images`` (one path per sample), fixed ``size`` (None: every array
    as stored, for :class:`~ssl4gie.data.datamodules.PretrainDataModule`'s aspect-true input),
    bad-sample replacement. Subclasses fill ``images`` and implement ``_load``."""

    images: list[Path]
    groups: list | None = None  # leak-aware split groups (video, sequence, patient) if known

    def __init__(self, size: Size | None) -> None:
        self.size = None if size is None else as_size(size)
        self.replaced = 0

    def __len__(self) -> int:
        return len(self.images)

    def _image(self, path: Path) -> torch.Tensor:
        """uint8 ``[3, H, W]`` at ``size`` (as stored where ``size`` is None)."""
        return resize_image(read_image(path), self.size)

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        for attempt in range(min(len(self), _MAX_REPLACEMENTS)):
            position = (i + attempt) % len(self)
            try:
                sample = self._load(position)
            except UnreadableImageError as err:
                self.replaced += 1
                warnings.warn(
                    f"replaced an unreadable sample ({err}); {self.replaced} replaced so far",
                    stacklevel=2,
                )
                continue
            sample["index"] = torch.tensor(position)
            return sample
        raise UnreadableImageError(
            f"{_MAX_REPLACEMENTS} samples in a row from {i} are unreadable: check the files"
        )


class ImageFolderDataset(_Reader):
    """Every readable image under ``root`` (flat or nested), without labels: ``{"image",
    "index"}``. Built on the cached index; unreadable files are skipped at construction."""

    def __init__(self, root: PathLike, size: Size, cache_dir: PathLike | None = None) -> None:
        super().__init__(size)
        self.images = build_index(root, cache_dir).paths()
        if not self.images:
            raise InputError(f"no images found under {root}; expected *.jpg, *.png, ... files")

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self._image(self.images[i])}


class HyperKvasirUnlabeled(ImageFolderDataset):
    """HyperKvasir's 99,417 unlabeled frames, ``<root>/unlabeled-images/images/*.jpg`` (``root``
    is the ``hyper-kvasir`` folder or one above it): ``{"image", "index"}``."""

    def __init__(self, root: PathLike, size: Size, cache_dir: PathLike | None = None) -> None:
        expected = "unlabeled-images/images/*.jpg"
        folder = _locate(root, ["unlabeled-images/images"], expected, "HyperKvasir")
        super().__init__(folder, size, cache_dir)


class _ClassFolders(_Reader):
    """Images labelled by the name of the folder holding them: ``{"image", "label", "index"}``.
    ``classes`` fixes the label order; images in other folders are left out. ``targets`` holds
    each sample's label for stratified splits. A class without images is an InputError."""

    def __init__(self, folder: Path, size: Size, classes: Sequence[str], cache_dir) -> None:
        super().__init__(size)
        paths = build_index(folder, cache_dir).paths()
        _check_classes(folder, classes, {path.parent.name for path in paths})
        wanted = set(classes)
        self.images = [path for path in paths if path.parent.name in wanted]
        self.relabel(classes)

    def relabel(self, classes: Sequence[str]) -> None:
        """Number the classes in the order of ``classes`` (the same names, reordered)."""
        self.classes = list(classes)
        label_of = {name: label for label, name in enumerate(self.classes)}
        self.targets = [label_of[path.parent.name] for path in self.images]

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self._image(self.images[i]), "label": torch.tensor(self.targets[i])}


def _check_classes(folder: Path, classes: Sequence[str], found: set[str]) -> None:
    """InputError naming the ``classes`` without images (``found``: the folders with images),
    and any HyperKvasir split-file names among ``found`` with their folder names."""
    missing = [name for name in classes if name not in found]
    if classes and not missing:
        return
    split_names = sorted(found & HYPERKVASIR_SPLIT_NAMES.keys())
    renames = ", ".join(f"{name} -> {HYPERKVASIR_SPLIT_NAMES[name]}" for name in split_names)
    hint = f"; rename the split-file folders {renames}" if renames else ""
    what = f"class(es) {', '.join(missing)}" if classes else "any class (no class folders)"
    raise InputError(
        f"no images for {what} under {folder}: expected one folder of images per class, "
        f"<class>/*.jpg{hint}"
    )


def ssl4gie_class_order(folder: Path, images: Sequence[Path], classes: Sequence[str]) -> list[str]:
    """``classes`` in SSL4GIE's label order (ESandML/SSL4GIE, ``Classification/
    train_classification.py`` ``build``): it globs ``labeled-images/*/``, then ``<tract>/*/``, then
    ``<category>/*/``, each level ``sorted()`` as path strings ending in ``/``, and numbers the
    class folders in that order. So the lower GI tract comes first, and names compare with their
    trailing ``/`` (``"-" < "/"``): ``barretts-short-segment`` before ``barretts``,
    ``ulcerative-colitis-grade-1-2`` before ``ulcerative-colitis-grade-1``. Landmarks: cecum,
    ileum, retroflex-rectum, pylorus, retroflex-stomach, z-line."""
    where = {}
    for path in images:
        where.setdefault(path.parent.name, path.parent.relative_to(folder).parts)
    return sorted(classes, key=lambda name: tuple(f"{part}/" for part in where[name]))


class HyperKvasirLabeled(_ClassFolders):
    """HyperKvasir's labelled images, ``<root>/labeled-images/**/<class>/*.jpg``, for the
    ``task`` landmarks (6 classes), findings (12) or all (23). ``class_order``: ``"sorted"``
    (alphabetical, the default) or ``"ssl4gie"`` (SSL4GIE's label numbers, lower tract first:
    :func:`ssl4gie_class_order`), for comparing per-class results with the paper.

    ``groups`` stays None: the only id column of ``image-labels.csv`` ("Video file") names the
    image itself, not a video, so near-duplicate grouping is left to the split code."""

    def __init__(
        self,
        root: PathLike,
        size: Size,
        task: str = "all",
        cache_dir: PathLike | None = None,
        class_order: str = "sorted",
    ) -> None:
        check_choice("class_order", class_order, CLASS_ORDERS)
        expected = "labeled-images/<gi-tract>/<category>/<class>/*.jpg"
        folder = _locate(root, ["labeled-images"], expected, "HyperKvasir")
        super().__init__(folder, size, hyperkvasir_classes(task), cache_dir)
        if class_order == "ssl4gie":
            self.relabel(ssl4gie_class_order(folder, self.images, self.classes))


class ImageNetFolder(_ClassFolders):
    """ImageNet-style ``<root>/<split>/<wnid>/*.JPEG``; ``classes`` are the sorted wnid folders:
    ``{"image", "label", "index"}``."""

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        size: Size = 224,
        cache_dir: PathLike | None = None,
    ) -> None:
        folder = _locate(root, [split], f"{split}/<wnid>/*.JPEG", "ImageNet")
        classes = sorted(path.name for path in folder.iterdir() if path.is_dir())
        super().__init__(folder, size, classes, cache_dir)


class _MaskedImages(_Reader):
    """Images paired with binary masks: ``{"image", "mask", "index"}``, the mask (thresholded at
    128, :func:`~ssl4gie.data.decode.read_mask`) resized nearest. ``pair_key`` maps a file stem
    to the key pairing them (default: the stem itself). Both folders go through the index; a
    pair with an unreadable file is dropped, a missing mask or a mask of another size is an
    InputError. ``full_masks=True`` adds ``"full_mask"``: the mask at its original size, on which
    :class:`~ssl4gie.tasks.SegmentationTask` scores validation and test (SSL4GIE protocol)."""

    def __init__(
        self,
        images: Path,
        masks: Path,
        size: Size,
        cache_dir,
        sort_key=str,
        pair_key=str,
        full_masks: bool = False,
    ) -> None:
        super().__init__(size)
        self.full_masks = full_masks
        mask_index = build_index(masks, cache_dir)
        mask_of = _unique_keys((masks / name for name in mask_index.files), pair_key)
        unreadable = {pair_key(Path(name).stem) for name in mask_index.bad_files}
        image_paths = build_index(images, cache_dir).paths()
        self.images = sorted(
            (path for path in image_paths if pair_key(path.stem) not in unreadable),
            key=lambda path: sort_key(path.stem),
        )
        for path in self.images:
            if pair_key(path.stem) not in mask_of:
                raise InputError(f"no mask for {path}: expected {masks}/{path.stem}.<ext>")
        self.masks = [mask_of[pair_key(path.stem)] for path in self.images]
        self.image_sizes = [_image_size(path) for path in self.images]
        for mask, image_size in zip(self.masks, self.image_sizes, strict=True):
            if _image_size(mask) != image_size:
                raise InputError(
                    f"mask {mask} is {_image_size(mask)} (w, h); its image {image_size}"
                )

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        full = read_mask(self.masks[i])
        sample = {"image": self._image(self.images[i]), "mask": resize_nearest(full, self.size)}
        return {**sample, "full_mask": full} if self.full_masks else sample


def _unique_keys(masks, pair_key) -> dict[str, Path]:
    """``{pair_key(stem): mask}``; two masks with one key are an InputError."""
    mask_of = {}
    for mask in masks:
        other = mask_of.setdefault(pair_key(mask.stem), mask)
        if other != mask:
            raise InputError(f"masks {other} and {mask} pair with the same image: keep one")
    return mask_of


class KvasirSEG(_MaskedImages):
    """Kvasir-SEG: ``<root>/images/<id>.jpg``, ``<root>/masks/<id>.jpg`` (lossy JPEG, thresholded
    at 128) and ``kavsir_bboxes.json`` (or HyperKvasir's ``segmented-images`` with
    ``bounding-boxes.json``): ``{"image", "mask", "boxes", "index"}``, boxes ``[K, 4]`` xyxy in
    pixels of the resized image. An empty box or one outside its image is dropped with a warning
    naming the file. ``full_masks``: see :class:`_MaskedImages`."""

    def __init__(
        self,
        root: PathLike,
        size: Size,
        cache_dir: PathLike | None = None,
        full_masks: bool = False,
    ) -> None:
        expected = "images/<id>.jpg, masks/<id>.jpg and kavsir_bboxes.json"
        folder = _locate(root, ["masks"], expected, "Kvasir-SEG").parent
        super().__init__(
            folder / "images", folder / "masks", size, cache_dir, full_masks=full_masks
        )
        boxes_of = _kvasir_boxes(folder)
        self.boxes = [
            _scaled_boxes(boxes_of, path, image_size, self.size)
            for path, image_size in zip(self.images, self.image_sizes, strict=True)
        ]

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        return {**super()._load(i), "boxes": self.boxes[i]}


def _kvasir_boxes(folder: Path) -> dict[str, list[dict]]:
    """``{id: [{"xmin", "ymin", "xmax", "ymax", ...}, ...]}`` from the boxes json."""
    for name in ("kavsir_bboxes.json", "bounding-boxes.json"):
        if (folder / name).is_file():
            entries = json.loads((folder / name).read_text())
            return {key: entry["bbox"] for key, entry in entries.items()}
    source = SOURCES["Kvasir-SEG"]
    raise InputError(f"no boxes file: expected {folder}/kavsir_bboxes.json; get it from {source}")


def _scaled_boxes(boxes_of, path: Path, image_size, size: tuple[int, int] | None) -> torch.Tensor:
    """float32 ``[K, 4]`` xyxy boxes of ``path`` scaled from ``image_size`` (w, h) to ``size``
    (None: unscaled); empty boxes and boxes outside the image are dropped with a warning."""
    if path.stem not in boxes_of:
        raise InputError(f"no boxes for {path.name} in the Kvasir-SEG boxes json")
    corners = [[box[k] for k in ("xmin", "ymin", "xmax", "ymax")] for box in boxes_of[path.stem]]
    boxes = torch.tensor(corners, dtype=torch.float32).reshape(-1, 4)
    width, height = image_size
    inside = (boxes[:, :2] >= 0).all(1) & (boxes[:, 2:] <= torch.tensor([width, height])).all(1)
    good = inside & (boxes[:, 2:] > boxes[:, :2]).all(1)
    if not good.all():
        warnings.warn(
            f"dropped {int((~good).sum())} of {len(boxes)} boxes of {path}: empty or outside its "
            f"{width}x{height} image",
            stacklevel=3,
        )
    height_to, width_to = (height, width) if size is None else size
    return boxes[good] * torch.tensor([width_to / width, height_to / height] * 2)


class CVCClinicDB(_MaskedImages):
    """CVC-ClinicDB: ``<root>/Original/<n>.tif`` with ``<root>/Ground Truth/<n>.tif`` (also spelt
    ``Ground_Truth`` or ``GroundTruth`` by redistributions; or the ``PNG/`` copies): ``{"image",
    "mask", "index"}``, ordered by ``n``. ``sequence_ids`` (also ``groups``) give each frame's
    sequence, 1..29, from ``cvc_clinicdb_sequences.json``. ``full_masks``: see
    :class:`_MaskedImages`."""

    def __init__(
        self,
        root: PathLike,
        size: Size,
        cache_dir: PathLike | None = None,
        full_masks: bool = False,
    ) -> None:
        expected = "Original/<n>.tif and Ground Truth/<n>.tif"
        folder = _locate(root, ["Original", "PNG/Original"], expected, "CVC-ClinicDB")
        masks = next(
            (folder.parent / name for name in CVC_MASK_FOLDERS if (folder.parent / name).is_dir()),
            folder.parent / CVC_MASK_FOLDERS[0],
        )
        super().__init__(folder, masks, size, cache_dir, sort_key=int, full_masks=full_masks)
        self.sequence_ids = [cvc_sequence(int(path.stem)) for path in self.images]
        self.groups = self.sequence_ids


def pairing_key(stem: str) -> str:
    """The key ``seg-folder`` pairs images and masks by: ``stem`` without one trailing suffix of
    :data:`PAIRING_SUFFIXES` (any case): ``fine_3_7_fram`` and ``fine_3_7_mask`` -> ``fine_3_7``;
    ``cju0a`` and ``cju0a_mask`` -> ``cju0a``."""
    lowered = stem.lower()
    suffix = next((s for s in PAIRING_SUFFIXES if lowered.endswith(s)), "")
    return stem[: len(stem) - len(suffix)]


def natural_key(stem: str) -> tuple:
    """Sort key reading digit runs as numbers: ``frame_2`` before ``frame_10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", stem))


class SegFolder(_MaskedImages):
    """Your own segmentation data: ``<root>/images/*`` with ``<root>/masks/*`` (JPEG or PNG, any
    of the formats :func:`~ssl4gie.data.decode.read_image` reads), paired by
    :func:`pairing_key` and ordered naturally by name: ``{"image", "mask", "index"}``. Masks are
    binary, foreground where the grey level is >= 128 (0/255 masks; a mask whose values stop
    below 128, e.g. 0/1, is an InputError). ``full_masks``: see :class:`_MaskedImages`."""

    def __init__(
        self,
        root: PathLike,
        size: Size,
        cache_dir: PathLike | None = None,
        full_masks: bool = False,
    ) -> None:
        expected = "images/<name>.<ext> and masks/<name>[_mask].<ext>"
        folder = Path(root).expanduser()
        if not ((folder / "images").is_dir() and (folder / "masks").is_dir()):
            raise InputError(f"segmentation folder not found: expected {folder}/{expected}")
        super().__init__(
            folder / "images",
            folder / "masks",
            size,
            cache_dir,
            sort_key=natural_key,
            pair_key=pairing_key,
            full_masks=full_masks,
        )
        if not self.images:
            raise InputError(f"no image with a mask in {folder}: expected {folder}/{expected}")
        _check_mask_levels(self.masks[0])


def _check_mask_levels(mask: Path) -> None:
    """InputError if ``mask`` has foreground values but none reaches the 128 threshold."""
    peak = int(read_image(mask).max())
    if 0 < peak < 128:
        raise InputError(
            f"mask {mask} has values 0..{peak}: masks are thresholded at 128, so save them as 0/255"
        )


def cvc_sequence(frame: int) -> int:
    """The CVC-ClinicDB sequence (1..29) of frame ``frame`` (1..612)."""
    last_frames = json.loads(CVC_SEQUENCES_FILE.read_text())["last_frame_of_sequence"]
    if not 1 <= frame <= last_frames[-1]:
        raise InputError(f"CVC-ClinicDB frame {frame} is outside 1..{last_frames[-1]}")
    return bisect.bisect_left(last_frames, frame) + 1


class C3VD(_Reader):
    """C3VD registered videos in any of the three release layouts (DurrLab C3VD page's revision
    history): the current ``<video>/0000_color.png`` with ``0000_depth.tiff``; the flat
    ``<video>_under_review/0000_color.png``; the first ``<video>_under_review/<cNvM>/0_color.png``
    with ``0_depth.tiff`` (as SSL4GIE read it). Colour and depth pair by (folder, integer frame),
    whatever the zero padding: ``{"image", "depth", "index"}``, depth float32 ``[1, H, W]`` in mm,
    0 where invalid (:func:`~ssl4gie.data.decode.read_depth_c3vd`), resized nearest.

    ``video_ids`` (also ``groups``) name each frame's video as in the current release
    (:func:`c3vd_video`, e.g. ``cecum_t2_c`` in all three layouts); ``videos`` selects by those
    names (default all). ``pad_square=True`` (SSL4GIE protocol, ``make_square`` in ESandML/SSL4GIE
    ``Depth_estimation/Data/dataset.py``) centres each frame on a square black canvas, depth 0
    (invalid, so never scored), before resizing, instead of squashing 1350x1080 frames to a
    square. A missing depth is an InputError."""

    def __init__(
        self,
        root: PathLike,
        size: Size,
        videos: Sequence[str] | None = None,
        pad_square: bool = False,
    ) -> None:
        super().__init__(size)
        self.pad_square = pad_square
        expected = "<video>/<nnnn>_color.png with <nnnn>_depth.tiff"
        root = _locate(root, [""], expected, "C3VD")
        colors = _frames(root, "_color.png")
        if not colors:
            raise InputError(f"C3VD not found: expected {root}/{expected}; {SOURCES['C3VD']}")
        found = sorted({c3vd_video(path) for path in colors})
        for video in videos or []:
            check_choice("C3VD video", video, found)
        chosen = [path for path in colors if videos is None or c3vd_video(path) in videos]
        depths = _frames(root, "_depth.tiff")
        depth_of = {(path.parent, _frame_number(path)): path for path in depths}
        self.images = chosen
        self.depths = [_depth_for(path, depth_of) for path in chosen]
        self.video_ids = [c3vd_video(path) for path in chosen]
        self.groups = self.video_ids

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        image, depth = read_image(self.images[i]), read_depth_c3vd(self.depths[i])
        if self.pad_square:
            image, depth = pad_to_square(image), pad_to_square(depth)
        return {"image": resize_image(image, self.size), "depth": resize_nearest(depth, self.size)}


def c3vd_video(color: Path) -> str:
    """The video of a C3VD frame, named as in the current release: the folder name without
    ``_under_review``, or that of its parent for the first release's ``<cNvM>`` sub-folders
    (``cecum_t4_a_under_review/c4v2/0_color.png`` -> ``cecum_t4_a``)."""
    folder = color.parent
    if _C3VD_V1_SUBFOLDER.fullmatch(folder.name) and folder.parent.name.endswith(C3VD_UNDER_REVIEW):
        folder = folder.parent
    return folder.name.removesuffix(C3VD_UNDER_REVIEW)


def pad_to_square(values: torch.Tensor) -> torch.Tensor:
    """``[C, H, W]`` centred on a ``[C, S, S]`` canvas of zeros, ``S = max(H, W)``; the offset
    is ``(S - H) // 2`` rows and ``(S - W) // 2`` columns, as SSL4GIE's ``make_square``."""
    height, width = values.shape[-2:]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padding = (left, side - width - left, top, side - height - top)
    return torch.nn.functional.pad(values, padding)


def _frame_number(path: Path) -> int:
    return int(path.name.split("_", 1)[0])


def _frames(root: Path, suffix: str) -> list[Path]:
    """Files ``<n><suffix>`` under ``root``, sorted by (video folder, integer frame)."""
    paths = [path for path in root.rglob(f"*{suffix}") if path.name[: -len(suffix)].isdigit()]
    return sorted(paths, key=lambda path: (str(path.parent), _frame_number(path)))


def _depth_for(color: Path, depth_of: dict) -> Path:
    depth = depth_of.get((color.parent, _frame_number(color)))
    if depth is None:
        frame = _frame_number(color)
        raise InputError(f"no depth for {color}: expected {color.parent}/{frame:04d}_depth.tiff")
    return depth
