"""LightningDataModules: one for pretraining, one per downstream task.

They hand over uint8 sample dicts (``docs/architecture.md``); random augmentation runs on the
device in the LightningModule (``ssl4gie.transforms``). Loaders use pinned memory on CUDA,
persistent workers, and ``num_workers`` defaults to the cores this process may use (at most 8).

Every dataset is named by a *layout* (``LAYOUTS``) and a root folder, e.g.
``Source("hyperkvasir-unlabeled", "data/hyper-kvasir")``; layout-specific options (the
HyperKvasir ``task``, the ImageNet ``split``, the C3VD ``videos``) go in ``Source.options``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ssl4gie.data import datasets as ds
from ssl4gie.data.decode import decode_fit_batch, decode_resize_batch, fit_to_canvas
from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    leak_report,
    name_sequences,
    near_duplicate_groups,
    scene_descriptors,
)
from ssl4gie.data.nifti import NiftiSlices
from ssl4gie.data.splits import (
    Split,
    group_split,
    grouped_split_indices,
    label_fraction_indices,
    random_split_indices,
)
from ssl4gie.data.streaming import check_uri, open_streaming, pretrain_stream, streaming_loader
from ssl4gie.data.video import VideoFrames
from ssl4gie.errors import InputError, check_choice

log = logging.getLogger(__name__)
# By design the LightningModule makes its views in on_after_batch_transfer and the DataModule
# does not: Lightning's warning that it "will use the implementation from LightningModule" is
# the intended behaviour, not a problem to report on every run.
warnings.filterwarnings(
    "ignore", message=r".*overridden `on_after_batch_transfer` in `LightningModule` but have passed"
)

LAYOUTS = {
    "folder": ds.ImageFolderDataset,
    "hyperkvasir-unlabeled": ds.HyperKvasirUnlabeled,
    "hyperkvasir-labeled": ds.HyperKvasirLabeled,
    "kvasir-seg": ds.KvasirSEG,
    "cvc-clinicdb": ds.CVCClinicDB,
    "c3vd": ds.C3VD,
    "imagefolder": ds.ImageNetFolder,
    "acdc": functools.partial(NiftiSlices, layout="acdc"),
    "lung": functools.partial(NiftiSlices, layout="lung"),
    "seg-folder": ds.SegFolder,
    "video": VideoFrames,
    "streaming": open_streaming,
}
SplitName = Literal["ssl4gie", "leak-aware", "groups"]


@dataclass
class Source:
    """One dataset on disk: a ``layout`` from ``LAYOUTS``, its ``root``, layout ``options``."""

    layout: str
    root: str
    options: dict[str, Any] = field(default_factory=dict)


def check_source(source: Source) -> Source:
    """Fail early, with one line, on an unknown layout or a root that does not exist."""
    check_choice("dataset layout", source.layout, LAYOUTS)
    if source.layout == "streaming":
        check_uri(source.root)
        return source
    if not Path(source.root).expanduser().exists():
        raise InputError(
            f"data root {source.root} does not exist; give the folder of the {source.layout} "
            "dataset as unpacked from its release (see docs/architecture.md for layouts)"
        )
    return source


def open_dataset(source: Source, size: int | Sequence[int]) -> Dataset:
    """Build the reader for ``source`` at a fixed ``size``."""
    check_choice("dataset layout", source.layout, LAYOUTS)
    reader = LAYOUTS[source.layout]
    accepted = set(inspect.signature(reader).parameters) - {"root", "size"}
    unknown = sorted(set(source.options) - accepted)
    if unknown:
        raise InputError(
            f"layout {source.layout!r} takes no option {unknown[0]!r}; its options are: "
            f"{', '.join(sorted(accepted)) or 'none'}"
        )
    return reader(source.root, size=size, **source.options)


def default_num_workers() -> int:
    """Loader workers: the cores this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cores or 1)


def collate_samples(
    samples: list[dict[str, torch.Tensor]], keys: Sequence[str] | None = None
) -> dict[str, Any]:
    """Stack sample dicts into a batch; ``boxes``, ``jpeg`` and ``full_mask`` (sizes differ)
    stay lists.

    ``keys`` keeps only those keys (pretraining keeps ``image`` and ``index``, so labelled and
    unlabelled datasets concatenate).
    """
    keys = samples[0].keys() if keys is None else keys
    return {
        key: [s[key] for s in samples]
        if key in ("boxes", "jpeg", "full_mask")
        else torch.stack([s[key] for s in samples])
        for key in keys
    }


def _stack_images(samples: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    return torch.stack([s["image"] for s in samples])


class EncodedJpegs(Dataset):
    """The JPEG files of a reader as raw bytes, ``{"jpeg": uint8 [n_bytes], "index"}``, for
    decoding on the device (:func:`~ssl4gie.data.decode.decode_resize_batch`)."""

    def __init__(self, reader: Dataset) -> None:
        self.paths = list(reader.images)
        odd = next((p for p in self.paths if p.suffix.lower() not in (".jpg", ".jpeg")), None)
        if odd is not None:
            raise InputError(
                f"decode_on_device needs JPEG files, found {odd}; set decode_on_device: false"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        data = torch.frombuffer(bytearray(self.paths[i].read_bytes()), dtype=torch.uint8)
        return {"jpeg": data, "index": torch.tensor(i)}


class AspectTrueFrames(Dataset):
    """The frames of a reader (read at their stored size) fitted to a canvas, aspect ratio kept:
    ``{"image": uint8 [3, max_size, max_size], "region": float [4], "index"}`` (see
    :func:`~ssl4gie.data.decode.fit_to_canvas`; ``region`` is the frame's part of the canvas)."""

    def __init__(self, reader: Dataset, max_size: int) -> None:
        self.reader, self.max_size = reader, max_size

    @property
    def images(self) -> list[Path]:
        return self.reader.images

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = self.reader[i]
        canvas, region = fit_to_canvas(sample["image"], self.max_size)
        return {"image": canvas, "region": region, "index": sample["index"]}


class _LoaderModule(L.LightningDataModule):
    """Loader settings shared by every DataModule."""

    def __init__(self, batch_size: int, num_workers: int | None, drop_last: bool) -> None:
        super().__init__()
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.drop_last = drop_last

    def _loader(
        self, dataset: Dataset, train: bool, keys: Sequence[str] | None = None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=functools.partial(collate_samples, keys=keys),
        )


class PretrainDataModule(_LoaderModule):
    """Unlabelled images for SSL pretraining: one dataset or a concatenation of several.

    The input is aspect-true: workers decode each frame and resize it, keeping its aspect ratio,
    so that its longer side is ``max_size`` (never enlarged), on a fixed ``max_size`` square
    canvas; batches carry each frame's ``region`` on it, and the views crop inside it with
    torchvision's ``RandomResizedCrop`` sampling, as the official pipelines crop the
    full-resolution image. A 720x576 HyperKvasir frame becomes 512x410 at the default 512;
    squashing it to 256x256 instead (``size=256``) distorts its aspect and upsamples 87 % of
    224-px crops at scale (0.08, 1) (``benchmarks/input_pipeline.py`` measures both).

    Args:
        sources: datasets read as unlabelled images (every layout has ``image``), e.g.
            ImageNet + Hyperkvasir-unlabelled; or one ``Source("streaming", uri)``: shards
            written by ``ssl4gie data optimize`` (:mod:`ssl4gie.data.streaming`).
        max_size: longer side of the aspect-true frames and side of the canvas; at least the
            views' size. At 512 a 720x576 frame keeps 3.2x the pixels of a 256 squash, and
            22 % of 224-px crops at scale (0.08, 1) are upsampled, against 87 % from the squash
            and 6 % from the full-resolution frame (``benchmarks/input_pipeline.py``).
        size: squash every frame to ``size`` x ``size`` instead (the input before aspect-true
            frames, kept for comparisons); overrides ``max_size``.
        batch_size: per-process batch (the global batch is this times the world size).
        probe: an optional labelled dataset for the validation loop (online linear probe and
            kNN accuracy), e.g. ``Source("hyperkvasir-labeled", root, {"task": "landmarks"})``.
        probe_size: the fixed size the probe set is read at (the method resizes it to its view
            size).
        drop_last: drop the last incomplete training batch (batch-norm methods need it).
        decode_on_device: workers only read JPEG bytes; batches are decoded and fitted on the
            training device (nvjpeg on a GPU, frames of one size resized together), which frees
            the CPU workers.

    Examples:
        >>> frames = Source("folder", "data/our-frames")
        >>> hk = Source("hyperkvasir-unlabeled", "data/hyper-kvasir")
        >>> data = PretrainDataModule([frames, hk], max_size=512, batch_size=128)  # doctest: +SKIP
        >>> batch = next(iter(data.train_dataloader()))  # after data.setup()  # doctest: +SKIP
        >>> batch["image"].shape, batch["region"][0]  # doctest: +SKIP
        (torch.Size([128, 3, 512, 512]), tensor([  0.,   0., 512., 410.]))
    """

    def __init__(
        self,
        sources: Source | list[Source],
        max_size: int | None = 512,
        size: int | None = None,
        batch_size: int = 256,
        num_workers: int | None = None,
        probe: Source | None = None,
        probe_size: int = 256,
        drop_last: bool = True,
        decode_on_device: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last)
        self.decode_on_device = decode_on_device
        sources = [sources] if isinstance(sources, Source) else list(sources)
        self.sources = [check_source(source) for source in sources]
        if not self.sources:
            raise InputError("PretrainDataModule needs at least one source; give data.sources")
        if size is None and max_size is None:
            raise InputError("give data.max_size (aspect-true frames) or data.size (squashed)")
        self.size = size
        self.max_size = None if size is not None else max_size
        for name, value in (("max_size", self.max_size), ("size", size)):
            if value is not None and value < 1:
                raise InputError(f"data.{name} must be a positive number of pixels, got {value}")
        self.probe, self.probe_size = (None if probe is None else check_source(probe)), probe_size
        if probe is None:  # no validation loop at all (Lightning skips a hook that is None)
            self.val_dataloader = None
        self.train_set: Dataset | None = None
        self.probe_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and self.sources[0].layout == "streaming":
            self.train_set = pretrain_stream(
                self.sources, self.size, self.max_size, self.decode_on_device, self.drop_last
            )
        if self.train_set is None:
            parts = [open_dataset(source, self.size) for source in self.sources]
            if self.decode_on_device:
                parts = [EncodedJpegs(part) for part in parts]
            elif self.max_size is not None:
                parts = [AspectTrueFrames(part, self.max_size) for part in parts]
            self.train_set = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        if self.probe is not None and self.probe_set is None:
            self.probe_set = open_dataset(self.probe, self.probe_size)

    def train_dataloader(self) -> DataLoader:
        if self.decode_on_device:
            keys = ("jpeg", "index")
        else:
            keys = ("image", "index") if self.max_size is None else ("image", "region", "index")
        if self.sources[0].layout == "streaming":
            collate = functools.partial(collate_samples, keys=keys)
            return streaming_loader(
                self.train_set, self.batch_size, self.num_workers, collate, self.drop_last
            )
        return self._loader(self.train_set, train=True, keys=keys)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Decode ``jpeg`` bytes on ``device`` into ``image`` (and ``region``) before the usual
        transfer."""
        if isinstance(batch, dict) and "jpeg" in batch:
            encoded = batch.pop("jpeg")
            if self.max_size is None:
                batch["image"] = decode_resize_batch(encoded, self.size, device)
            else:
                batch["image"], batch["region"] = decode_fit_batch(encoded, self.max_size, device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.probe_set, train=False)


class TaskDataModule(_LoaderModule):
    """A labelled dataset split into train/val/test, with label fractions for data efficiency.

    Args:
        root: the dataset folder, in the layout's real on-disk form.
        layout: a key of ``LAYOUTS``.
        size: fixed image size the workers resize to.
        split: ``"ssl4gie"`` the protocol's seeded random image-level split; ``"leak-aware"``
            groups near-duplicate frames (scene descriptors within ``leak_threshold``, see
            :mod:`ssl4gie.data.near_duplicates`) and the dataset's known sequences/videos
            before a stratified group split; ``"groups"`` uses the named
            ``val_groups``/``test_groups`` (C3VD videos, as in SSL4GIE).
        fractions: train/val/test fractions (SSL4GIE: 80/10/10).
        seed: fixes the split, and the label-fraction subset unless ``label_seed`` is given.
        label_fraction: keep this stratified fraction of the training labels (nested across
            fractions for one seed: the 1% subset lies inside the 10% one).
        labels_per_class: keep this many training images per class instead.
        label_seed: draws the label-fraction subset (None: ``seed``); vary it alone to repeat a
            fraction over several subsets of one fixed split.
        leak_threshold: the near-duplicate distance of the leak-aware split (0.45, measured
            on real video frames: :data:`~ssl4gie.data.near_duplicates.DEFAULT_THRESHOLD`).
        sequences_from_names: the leak-aware split also joins frames whose file names differ
            only in their last number (frames exported from one video, e.g. ``seq3_17.jpg``;
            :func:`~ssl4gie.data.near_duplicates.name_sequences`), for layouts without known
            sequences. Appearance alone does not join a video whose camera moves far.
        options: layout options passed to the reader (e.g. ``{"task": "landmarks"}``).

    Examples:
        >>> data = ClassificationDataModule("data/hyper-kvasir", options={"task": "landmarks"},
        ...                                 label_fraction=0.1, seed=0)  # doctest: +SKIP
        >>> data.num_classes  # doctest: +SKIP
        6
        >>> SegmentationDataModule("data/Kvasir-SEG", split="leak-aware")  # doctest: +SKIP
    """

    default_layout = "folder"

    def __init__(
        self,
        root: str,
        layout: str | None = None,
        size: int = 224,
        batch_size: int = 48,
        num_workers: int | None = None,
        split: SplitName = "ssl4gie",
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        label_fraction: float | None = None,
        labels_per_class: int | None = None,
        label_seed: int | None = None,
        val_groups: list[str] | None = None,
        test_groups: list[str] | None = None,
        leak_threshold: float = DEFAULT_THRESHOLD,
        sequences_from_names: bool = False,
        options: dict[str, Any] | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last)
        self.source = check_source(Source(layout or self.default_layout, root, dict(options or {})))
        check_choice("split", split, ("ssl4gie", "leak-aware", "groups"))
        if split == "groups" and not (val_groups and test_groups):
            raise InputError("split 'groups' needs val_groups and test_groups (e.g. video names)")
        self.size, self.split_name, self.fractions, self.seed = size, split, fractions, seed
        self.label_fraction, self.labels_per_class = label_fraction, labels_per_class
        self.label_seed = seed if label_seed is None else label_seed
        self.val_groups, self.test_groups = val_groups, test_groups
        self.leak_threshold = leak_threshold
        self.sequences_from_names = sequences_from_names
        self.dataset: Dataset | None = None
        self.split: Split | None = None
        self.parts: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        self.dataset = open_dataset(self.source, self.size)
        self.split = self._make_split()
        train = self.split.train
        if self.label_fraction is not None or self.labels_per_class is not None:
            labels = np.asarray(self._labels())[train]
            kept = label_fraction_indices(
                labels, self.label_fraction, self.labels_per_class, self.label_seed
            )
            train = train[kept]
        self.parts = {
            "train": Subset(self.dataset, train.tolist()),
            "val": Subset(self.dataset, self.split.val.tolist()),
            "test": Subset(self.dataset, self.split.test.tolist()),
        }
        log.info("split %s: %s", self.split_name, {k: len(v) for k, v in self.parts.items()})

    def _labels(self) -> list:
        """Class per image for stratification (all one class where the layout has none)."""
        return getattr(self.dataset, "targets", None) or [0] * len(self.dataset)

    def _known_groups(self) -> list | None:
        """The layout's sequences/videos, or (``sequences_from_names``) ids from file names."""
        groups = getattr(self.dataset, "groups", None)
        if not self.sequences_from_names:
            return groups
        if groups is not None:
            raise InputError(
                f"layout {self.source.layout!r} has its own sequences or videos; drop "
                "sequences_from_names"
            )
        return name_sequences(self.dataset.images)

    def _make_split(self) -> Split:
        n = len(self.dataset)
        if self.split_name == "ssl4gie":
            return random_split_indices(n, self.fractions, self.seed)
        if self.split_name == "groups":
            groups = self._known_groups()
            if groups is None:
                raise InputError(
                    f"layout {self.source.layout!r} has no groups (videos, sequences); "
                    "use split 'ssl4gie' or 'leak-aware'"
                )
            return group_split(groups, self.val_groups, self.test_groups)
        labels, groups = getattr(self.dataset, "targets", None), self.image_groups()
        split = grouped_split_indices(groups, self.fractions, self.seed, labels=labels)
        parts = {"train": split.train, "val": split.val, "test": split.test}
        empty = [
            name
            for (name, part), fraction in zip(parts.items(), self.fractions, strict=True)
            if fraction > 0 and len(part) == 0
        ]
        if empty:
            warnings.warn(
                f"the leak-aware split left {' and '.join(empty)} empty: {len(groups)} images in "
                f"{len(set(groups.tolist()))} near-duplicate group(s); check them with 'ssl4gie "
                "data duplicates', or use split 'groups' with named groups",
                stacklevel=2,
            )
        return split

    def image_groups(self) -> np.ndarray:
        """Near-duplicate group of every image ([N] int64): scene descriptors (decoded with
        the loader's workers) within ``leak_threshold``, joined with the layout's groups."""
        loader = DataLoader(
            self.dataset,
            batch_size=64,
            num_workers=self.num_workers,
            collate_fn=_stack_images,
        )
        descriptors = np.concatenate([scene_descriptors(images) for images in loader])
        return near_duplicate_groups(
            descriptors, self.leak_threshold, known_groups=self._known_groups()
        )

    def leak_report(self):
        """Near-duplicate pairs crossing the parts of the protocol's random split (SSL4GIE)."""
        self.setup()
        protocol = random_split_indices(len(self.dataset), self.fractions, self.seed)
        return leak_report(self.image_groups(), protocol)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.parts["train"], train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.parts["val"], train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.parts["test"], train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class ClassificationDataModule(TaskDataModule):
    """Image classification; SSL4GIE: HyperKvasir ``task`` landmarks (6) or findings (12)."""

    default_layout = "hyperkvasir-labeled"

    @property
    def classes(self) -> list[str]:
        self.setup()
        return list(self.dataset.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> torch.Tensor:
        """Training images per class ([C] int64), for the class-weighted cross-entropy."""
        self.setup()
        labels = torch.as_tensor(self._labels())[self.parts["train"].indices]
        return torch.bincount(labels, minlength=self.num_classes)


class SegmentationDataModule(TaskDataModule):
    """Polyp segmentation (Kvasir-SEG, CVC-ClinicDB) and multi-class masks (ACDC, lung CT)."""

    default_layout = "kvasir-seg"


class DetectionDataModule(TaskDataModule):
    """Polyp detection from Kvasir-SEG's boxes; batches keep ``boxes`` as a list per image."""

    default_layout = "kvasir-seg"


class DepthDataModule(TaskDataModule):
    """Monocular depth on C3VD, split by video as in SSL4GIE (``split="groups"``)."""

    default_layout = "c3vd"
