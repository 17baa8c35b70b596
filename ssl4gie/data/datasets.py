"""One torch Dataset per on-disk layout (``shared/DATASETS.md``), each returning the sample dict of
``docs/architecture.md`` at a fixed ``size`` (``int`` or ``(height, width)``).

Bad data, in every reader:

- *Unreadable at training time* (a file corrupted after indexing, a bad slice): the sample is
  replaced by the next index that reads, counted in ``.replaced`` (per worker process) and
  reported with a warning naming the file. Training never stops for one bad file.
- *Unreadable at construction* (readers built on :func:`~ssl4gie.data.index.build_index`):
  skipped, with the index's single warning and list of bad files.
- *Structural problems* (missing dataset root, a missing mask or depth file, a mask whose size
  differs from its image, a box outside its image): :class:`~ssl4gie.errors.InputError` at
  construction, naming the file and the expected layout.

Samples carry ``index`` (the position read, which differs from the one asked for when a sample
was replaced). All readers work inside ``torch.utils.data.ConcatDataset``; readers without
labels give the same keys, so unlabeled sets concatenate for pretraining.
"""

from __future__ import annotations

import bisect
import json
import os
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
    each sample's label for stratified splits."""

    def __init__(self, folder: Path, size: Size, classes: Sequence[str], cache_dir) -> None:
        super().__init__(size)
        self.classes = list(classes)
        label_of = {name: label for label, name in enumerate(self.classes)}
        paths = build_index(folder, cache_dir).paths()
        self.images = [path for path in paths if path.parent.name in label_of]
        self.targets = [label_of[path.parent.name] for path in self.images]

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self._image(self.images[i]), "label": torch.tensor(self.targets[i])}


class HyperKvasirLabeled(_ClassFolders):
    """HyperKvasir's labelled images, ``<root>/labeled-images/**/<class>/*.jpg``, for the
    ``task`` landmarks (6 classes), findings (12) or all (23); ``classes`` sorted.

    ``groups`` stays None: the only id column of ``image-labels.csv`` ("Video file") names the
    image itself, not a video, so near-duplicate grouping is left to the split code."""

    def __init__(
        self,
        root: PathLike,
        size: Size,
        task: str = "all",
        cache_dir: PathLike | None = None,
    ) -> None:
        expected = "labeled-images/<gi-tract>/<category>/<class>/*.jpg"
        folder = _locate(root, ["labeled-images"], expected, "HyperKvasir")
        super().__init__(folder, size, hyperkvasir_classes(task), cache_dir)


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
    """Images paired with binary masks of the same stem: ``{"image", "mask", "index"}``, the
    mask resized nearest. Both folders go through the index; a pair with an unreadable file is
    dropped, a missing mask or a mask of another size is an InputError."""

    def __init__(self, images: Path, masks: Path, size: Size, cache_dir, sort_key=str) -> None:
        super().__init__(size)
        mask_index = build_index(masks, cache_dir)
        mask_of = {Path(name).stem: masks / name for name in mask_index.files}
        unreadable = {Path(name).stem for name in mask_index.bad_files}
        image_paths = build_index(images, cache_dir).paths()
        self.images = sorted(
            (path for path in image_paths if path.stem not in unreadable),
            key=lambda path: sort_key(path.stem),
        )
        for path in self.images:
            if path.stem not in mask_of:
                raise InputError(f"no mask for {path}: expected {masks}/{path.stem}.<ext>")
        self.masks = [mask_of[path.stem] for path in self.images]
        self.image_sizes = [_image_size(path) for path in self.images]
        for mask, image_size in zip(self.masks, self.image_sizes, strict=True):
            if _image_size(mask) != image_size:
                raise InputError(
                    f"mask {mask} is {_image_size(mask)} (w, h); its image {image_size}"
                )

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        mask = resize_nearest(read_mask(self.masks[i]), self.size)
        return {"image": self._image(self.images[i]), "mask": mask}


class KvasirSEG(_MaskedImages):
    """Kvasir-SEG: ``<root>/images/<id>.jpg``, ``<root>/masks/<id>.jpg`` (lossy JPEG, thresholded
    at 128) and ``kavsir_bboxes.json`` (or HyperKvasir's ``segmented-images`` with
    ``bounding-boxes.json``): ``{"image", "mask", "boxes", "index"}``, boxes ``[K, 4]`` xyxy in
    pixels of the resized image. A box outside its image is an InputError."""

    def __init__(self, root: PathLike, size: Size, cache_dir: PathLike | None = None) -> None:
        expected = "images/<id>.jpg, masks/<id>.jpg and kavsir_bboxes.json"
        folder = _locate(root, ["masks"], expected, "Kvasir-SEG").parent
        super().__init__(folder / "images", folder / "masks", size, cache_dir)
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


def _scaled_boxes(boxes_of, path: Path, image_size, size: tuple[int, int]) -> torch.Tensor:
    """float32 ``[K, 4]`` xyxy boxes of ``path`` scaled from ``image_size`` (w, h) to ``size``."""
    if path.stem not in boxes_of:
        raise InputError(f"no boxes for {path.name} in the Kvasir-SEG boxes json")
    corners = [[box[k] for k in ("xmin", "ymin", "xmax", "ymax")] for box in boxes_of[path.stem]]
    boxes = torch.tensor(corners, dtype=torch.float32).reshape(-1, 4)
    width, height = image_size
    inside = (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= torch.tensor([width, height])).all()
    if not (inside and (boxes[:, 2:] > boxes[:, :2]).all()):
        raise InputError(f"a box of {path.name} is empty or outside its {width}x{height} image")
    return boxes * torch.tensor([size[1] / width, size[0] / height] * 2)


class CVCClinicDB(_MaskedImages):
    """CVC-ClinicDB: ``<root>/Original/<n>.tif`` with ``<root>/Ground Truth/<n>.tif`` (or the
    ``PNG/`` copies): ``{"image", "mask", "index"}``, ordered by ``n``. ``sequence_ids`` (also
    ``groups``) give each frame's sequence, 1..29, from ``cvc_clinicdb_sequences.json``."""

    def __init__(self, root: PathLike, size: Size, cache_dir: PathLike | None = None) -> None:
        expected = "Original/<n>.tif and Ground Truth/<n>.tif"
        folder = _locate(root, ["Original", "PNG/Original"], expected, "CVC-ClinicDB")
        super().__init__(folder, folder.parent / "Ground Truth", size, cache_dir, sort_key=int)
        self.sequence_ids = [cvc_sequence(int(path.stem)) for path in self.images]
        self.groups = self.sequence_ids


def cvc_sequence(frame: int) -> int:
    """The CVC-ClinicDB sequence (1..29) of frame ``frame`` (1..612)."""
    last_frames = json.loads(CVC_SEQUENCES_FILE.read_text())["last_frame_of_sequence"]
    if not 1 <= frame <= last_frames[-1]:
        raise InputError(f"CVC-ClinicDB frame {frame} is outside 1..{last_frames[-1]}")
    return bisect.bisect_left(last_frames, frame) + 1


class C3VD(_Reader):
    """C3VD registered videos, ``<root>/<video>/<n>_color.png`` with ``<nnnn>_depth.tiff``,
    paired by integer frame number: ``{"image", "depth", "index"}``, depth float32 ``[1, H, W]``
    in mm, resized nearest (0 stays invalid). ``videos`` selects folders by name (default all);
    ``video_ids`` (also ``groups``) name each frame's video. A missing depth is an InputError."""

    def __init__(self, root: PathLike, size: Size, videos: Sequence[str] | None = None) -> None:
        super().__init__(size)
        expected = "<video>/<n>_color.png with <nnnn>_depth.tiff"
        root = _locate(root, [""], expected, "C3VD")
        colors = _frames(root, "_color.png")
        found = sorted({path.parent.name for path in colors})
        if not colors:
            raise InputError(f"C3VD not found: expected {root}/{expected}; {SOURCES['C3VD']}")
        for video in videos or []:
            check_choice("C3VD video", video, found)
        chosen = [path for path in colors if videos is None or path.parent.name in videos]
        depths = _frames(root, "_depth.tiff")
        depth_of = {(path.parent, _frame_number(path)): path for path in depths}
        self.images = chosen
        self.depths = [_depth_for(path, depth_of) for path in chosen]
        self.video_ids = [path.parent.name for path in chosen]
        self.groups = self.video_ids

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        depth = resize_nearest(read_depth_c3vd(self.depths[i]), self.size)
        return {"image": self._image(self.images[i]), "depth": depth}


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
