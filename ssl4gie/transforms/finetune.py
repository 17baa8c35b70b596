"""Fine-tuning augmentations of the SSL4GIE protocol, batched on the device with kornia.

Each module takes the batch dict of ``docs/architecture.md`` (``image`` uint8 ``[B, 3, H, W]``
and, where present, ``mask`` uint8 ``[B, H, W]``, ``boxes`` a list of float ``[K, 4]`` xyxy,
``depth`` float ``[B, 1, H, W]``) and returns a new dict whose ``image`` is float, normalised
(``mean``, ``std``). In training mode (``module.train()``), one
:class:`kornia.augmentation.AugmentationSequential` draws the parameters once per image and
applies them to the image and to every target present: masks and depth move with nearest
resampling and never get colour changes; boxes move with the image, are clipped to it, and boxes
narrower or shorter than ``min_box_size`` pixels are dropped. In eval mode only the conversion
and normalisation run. Other keys pass through untouched.

The values follow the official SSL4GIE code (Sanderson & Matuszewski 2024, arXiv:2401.06278;
ESandML/SSL4GIE ``*/Data/dataloaders.py`` and ``dataset.py``):

- every task: colour jitter brightness 0.4, contrast 0.5, saturation 0.25, hue 0.01 (always);
- classification, segmentation, detection: Gaussian blur, kernel 25, sigma U(0.001, 2.0)
  (always); depth: no blur;
- classification: horizontal and vertical flips (p 0.5), rotation U(-180, 180) degrees;
- segmentation: flips, then an affine map with rotation U(-180, 180), translation up to 1/8 of
  the side, scale U(0.5, 1.5) and x-shear U(-22.5, 22.5) degrees;
- detection: a quarter turn (p 0.5), then flips;
- depth: flips.

Deviation: areas exposed by a rotation or affine map are black (0 before normalisation) in the
image; the official segmentation code fills -1 after normalisation. kornia draws from the
global torch RNG: ``torch.manual_seed(seed)`` before the call fixes the augmentation.
"""

from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl4gie.errors import InputError
from ssl4gie.transforms.ops import IMAGENET_MEAN, IMAGENET_STD, to_unit_float

__all__ = [
    "ClassificationAugment",
    "DepthAugment",
    "DetectionAugment",
    "SegmentationAugment",
    "TaskAugment",
]

SSL4GIE_JITTER = (0.4, 0.5, 0.25, 0.01)


class TaskAugment(nn.Module):
    """Base: colour jitter, optional blur, a task's geometric steps, then normalisation.

    Subclasses only choose the geometric steps (:meth:`geometric_steps`) and their defaults.
    """

    def __init__(
        self,
        jitter: tuple[float, float, float, float] = SSL4GIE_JITTER,
        blur_p: float = 1.0,
        blur_kernel: int = 25,
        blur_sigma: tuple[float, float] = (0.001, 2.0),
        flip_p: float = 0.5,
        min_box_size: float = 1.0,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        for name, value in (("blur_p", blur_p), ("flip_p", flip_p)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} is a probability and must be in [0, 1], got {value}")
        if blur_kernel < 3 or blur_kernel % 2 == 0:
            raise InputError(f"blur_kernel must be an odd number >= 3, got {blur_kernel}")
        if min(std) <= 0:
            raise InputError(f"std must be positive, got {std}")
        color: list[nn.Module] = [K.ColorJitter(*jitter, p=1.0)]
        if blur_p > 0:
            color.append(K.RandomGaussianBlur(blur_kernel, blur_sigma, p=blur_p))
        flips = [K.RandomHorizontalFlip(p=flip_p), K.RandomVerticalFlip(p=flip_p)]
        self.augment = K.AugmentationSequential(*color, *self.geometric_steps(flips))
        self.min_box_size = min_box_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def geometric_steps(self, flips: list[nn.Module]) -> list[nn.Module]:
        """The task's geometric augmentations; ``flips`` are the horizontal and vertical flips."""
        return flips

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Augment (in training mode) and normalise a batch dict; see the module docstring."""
        out = dict(batch)
        image = to_unit_float(batch["image"])
        if self.training:
            image = self._augment(image, batch, out)
        out["image"] = (image - self.mean) / self.std
        return out

    def _augment(self, image: Tensor, batch: dict[str, Any], out: dict[str, Any]) -> Tensor:
        """Run the kornia sequence on the image and the targets of ``batch``; write targets to
        ``out`` and return the image."""
        inputs, keys = [image], ["input"]
        if "mask" in batch:
            inputs.append(batch["mask"].unsqueeze(1))
            keys.append("mask")
        if "depth" in batch:
            inputs.append(batch["depth"])
            keys.append("mask")
        if "boxes" in batch:
            inputs.append(pad_boxes(batch["boxes"], image))
            keys.append("bbox_xyxy")
        outputs = self.augment(*inputs, data_keys=keys)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        results = iter(outputs[1:])
        if "mask" in batch:
            out["mask"] = next(results).squeeze(1)
        if "depth" in batch:
            out["depth"] = next(results)
        if "boxes" in batch:
            padded = next(results)
            counts = [len(boxes) for boxes in batch["boxes"]]
            out["boxes"] = clean_boxes(padded, counts, image.shape[-2:], self.min_box_size)
        return outputs[0]


def pad_boxes(boxes: list[Tensor], like: Tensor) -> Tensor:
    """List of ``[K_i, 4]`` boxes -> zero-padded float ``[B, max K_i, 4]`` on ``like``'s device."""
    longest = max((len(b) for b in boxes), default=0)
    padded = [F.pad(b.to(like.device, torch.float32), (0, 0, 0, longest - len(b))) for b in boxes]
    return torch.stack(padded) if padded else like.new_zeros(0, 0, 4)


def clean_boxes(
    padded: Tensor, counts: list[int], image_size: torch.Size, min_size: float
) -> list[Tensor]:
    """Unpad ``[B, K, 4]`` xyxy boxes, clip them to the image and drop those under ``min_size``.

    Dropping needs a data-dependent shape, so this is the one step that waits for the device.
    """
    height, width = image_size
    limits = padded.new_tensor([width, height, width, height])
    clipped = torch.minimum(padded.clamp(min=0), limits)
    kept = []
    for boxes, count in zip(clipped, counts, strict=True):
        boxes = boxes[:count]
        sides = boxes[:, 2:] - boxes[:, :2]
        kept.append(boxes[(sides >= min_size).all(dim=1)])
    return kept


class ClassificationAugment(TaskAugment):
    """SSL4GIE classification: jitter, blur, flips, rotation U(-rotation, rotation) degrees."""

    def __init__(self, rotation: float = 180.0, **kwargs: Any) -> None:
        self.rotation = rotation
        super().__init__(**kwargs)

    def geometric_steps(self, flips: list[nn.Module]) -> list[nn.Module]:
        return [*flips, K.RandomRotation(self.rotation, p=1.0)]


class SegmentationAugment(TaskAugment):
    """SSL4GIE segmentation: jitter, blur, flips, then a random affine map (mask: nearest)."""

    def __init__(
        self,
        rotation: float = 180.0,
        translate: tuple[float, float] = (0.125, 0.125),
        scale: tuple[float, float] = (0.5, 1.5),
        shear: float = 22.5,
        **kwargs: Any,
    ) -> None:
        self.affine = {"degrees": rotation, "translate": translate, "scale": scale, "shear": shear}
        super().__init__(**kwargs)

    def geometric_steps(self, flips: list[nn.Module]) -> list[nn.Module]:
        return [*flips, K.RandomAffine(**self.affine, p=1.0)]


class DetectionAugment(TaskAugment):
    """SSL4GIE detection: jitter, blur, a quarter turn with ``rot90_p``, flips; boxes follow.

    The SSL4GIE detector (torchvision Faster R-CNN) normalises inside the model: build it with
    ``image_mean=(0, 0, 0), image_std=(1, 1, 1)`` when fed this module's normalised images.
    """

    def __init__(self, rot90_p: float = 0.5, **kwargs: Any) -> None:
        self.rot90_p = rot90_p
        super().__init__(**kwargs)

    def geometric_steps(self, flips: list[nn.Module]) -> list[nn.Module]:
        return [K.RandomRotation90(times=(1, 1), p=self.rot90_p), *flips]


class DepthAugment(TaskAugment):
    """SSL4GIE depth: jitter (no blur), flips; depth follows with nearest resampling."""

    def __init__(self, blur_p: float = 0.0, **kwargs: Any) -> None:
        super().__init__(blur_p=blur_p, **kwargs)
