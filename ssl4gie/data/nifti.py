"""2D slices of NIfTI volumes with label maps (ACDC cardiac MRI, lung CT), read with nibabel,
for the convergence study's 2D pipeline (``docs/datasets.md``, "ACDC and lung CT")."""

from __future__ import annotations

import functools
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ssl4gie.data.datasets import SOURCES, PathLike, Size, _locate, _Reader
from ssl4gie.data.decode import UnreadableImageError, resize_image, resize_nearest
from ssl4gie.errors import InputError, check_choice

LUNG_WINDOW_HU = (-1000.0, 400.0)
MRI_PERCENTILES = (0.5, 99.5)


class NiftiSlices(_Reader):
    """2D slices (last axis) of NIfTI volumes with label maps: ``{"image", "mask", "index"}``,
    the image windowed to uint8 and replicated to 3 channels, the mask nearest-resized ids.

    ``layout="acdc"``: ``<root>/**/patientNNN/patientNNN_frameMM.nii.gz`` with ``..._gt.nii.gz``
    (0 background, 1 RV, 2 myocardium, 3 LV); intensities windowed per volume at the 0.5 and 99.5
    percentiles. The release unpacks to ``training/`` (patients 1-100) and ``testing/`` (the 50
    official test patients, 101-150, also with labels): where ``root`` (or a folder in it) has
    ``training/``, only it is read, unless ``include_testing=True`` adds ``testing/``.
    ``layout="lung"``: the Medical Segmentation Decathlon Task06_Lung layout,
    ``<root>/imagesTr/<case>.nii.gz`` with ``<root>/labelsTr/<case>.nii.gz`` (or ``images/`` with
    ``masks/``), CT windowed to -1000..400 HU, mask 1 where the label is non-zero. ``case_ids``
    (also ``groups``) name each slice's patient or case. A missing label file or one whose shape
    differs from its volume is an InputError. The last two volumes read are kept per worker."""

    def __init__(
        self, root: PathLike, size: Size, layout: str = "acdc", include_testing: bool = False
    ) -> None:
        super().__init__(size)
        self.layout = check_choice("NIfTI layout", layout, ("acdc", "lung"))
        if include_testing and layout != "acdc":
            raise InputError("include_testing is an ACDC option; remove it for layout 'lung'")
        volumes = _acdc_volumes(root, include_testing) if layout == "acdc" else _lung_volumes(root)
        self.images, self.labels, self.case_ids, self.slice_numbers = [], [], [], []
        for image, label, case in volumes:
            for k in range(_checked_depth(image, label)):
                self.images.append(image)
                self.labels.append(label)
                self.case_ids.append(case)
                self.slice_numbers.append(k)
        self.groups = self.case_ids

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        volume, labels = _windowed_volume(self.images[i], self.labels[i], self.layout)
        k = self.slice_numbers[i]
        image = resize_image(volume[k].expand(3, -1, -1), self.size)
        return {"image": image, "mask": resize_nearest(labels[k], self.size)}


def _acdc_volumes(root: PathLike, include_testing: bool) -> list[tuple[Path, Path, str]]:
    """``(frame volume, its _gt label map, patient)`` for every ACDC frame read (see
    :class:`NiftiSlices` for ``training/`` and ``testing/``)."""
    expected = "training/patientNNN/patientNNN_frameMM.nii.gz with patientNNN_frameMM_gt.nii.gz"
    root = _locate(root, ["training", ""], expected, "ACDC")
    folders = [root]
    if root.name == "training" and include_testing:
        folders.append(root.with_name("testing"))
        if not folders[-1].is_dir():
            raise InputError(f"include_testing: no {folders[-1]} beside {root}")
    elif include_testing:
        raise InputError(f"include_testing: no training/ and testing/ folders in {root}")
    frames = [
        f for folder in folders for f in sorted(folder.rglob("patient*_frame[0-9][0-9].nii.gz"))
    ]
    if not frames:
        raise InputError(f"ACDC not found: expected {root}/{expected}; {SOURCES['ACDC']}")
    return [(f, f.with_name(f.name.replace(".nii", "_gt.nii")), f.parent.name) for f in frames]


def _lung_volumes(root: PathLike) -> list[tuple[Path, Path, str]]:
    """``(CT volume, its label map, case)`` for the Decathlon-style lung layout."""
    expected = "imagesTr/<case>.nii.gz with labelsTr/<case>.nii.gz"
    images = _locate(root, ["imagesTr", "images"], expected, "lung CT")
    labels = images.with_name("labelsTr" if images.name == "imagesTr" else "masks")
    volumes = sorted(p for p in images.glob("*.nii.gz") if not p.name.startswith("."))
    return [(p, labels / p.name, p.name.removesuffix(".nii.gz")) for p in volumes]


def _checked_depth(image: Path, label: Path) -> int:
    """The number of slices of ``image``, after checking ``label`` exists with the same shape."""
    if not label.is_file():
        raise InputError(f"no label map for {image}: expected {label}")
    image_shape, label_shape = nib.load(image).shape, nib.load(label).shape
    if len(image_shape) != 3 or image_shape != label_shape:
        raise InputError(f"{label} has shape {label_shape} but {image} has {image_shape} (3-D)")
    return image_shape[2]


@functools.lru_cache(maxsize=2)
def _windowed_volume(image: Path, label: Path, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 slices ``[Z, 1, Y, X]`` of the windowed volume and uint8 ids ``[Z, Y, X]``."""
    try:
        values = np.asarray(nib.load(image).dataobj, dtype=np.float32).transpose(2, 1, 0)
        ids = np.asarray(nib.load(label).dataobj).transpose(2, 1, 0)
    except (OSError, EOFError, ValueError) as err:
        raise UnreadableImageError(f"cannot read {image} or {label}: {err}") from err
    if layout == "lung":
        low, high = LUNG_WINDOW_HU
        ids = ids != 0
    else:
        low, high = np.percentile(values, MRI_PERCENTILES)
    scaled = (values - low) / max(high - low, 1e-6) * 255.0
    volume = torch.from_numpy(np.clip(scaled, 0, 255).round().astype(np.uint8))
    return volume[:, None], torch.from_numpy(ids.astype(np.uint8))
