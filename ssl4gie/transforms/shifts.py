"""Controlled acquisition shifts for robustness evaluation, at severities 0 (none) to 5.

Jiang et al. 2024 (arXiv:2405.08657) compare wild- and self-pretrained networks on test images
acquired differently from the training images. This module makes such shifts for endoscopy,
deterministically, on the uint8 images of a collated batch: white balance (the light source),
blur (focus, motion), JPEG compression (the recorder), resolution (the sensor) and the field of
view (the scope's window). The severity tables follow ImageNet-C [Hendrycks & Dietterich 2019,
arXiv:1903.12261] where it has the corruption (blur, JPEG, pixelation); every shift keeps the
image size, so masks, boxes, depth and labels are left as they are.

Each shift is a function ``(images, severity) -> images`` on uint8 ``[B, 3, H, W]`` with severity
1..5 (:data:`SHIFTS`); :func:`apply_shift` applies one to a batch dict (severity 0 returns the
batch unchanged) and :class:`ShiftedLoader` to every batch of a loader, e.g.
``trainer.test(task, dataloaders=ShiftedLoader(dm.test_dataloader(), "blur", 3))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from ssl4gie.data.decode import _quiet_torchvision
from ssl4gie.errors import InputError, check_choice
from ssl4gie.transforms.fov import estimate_fov, fov_boxes

__all__ = ["MAX_SEVERITY", "SHIFTS", "ShiftedLoader", "apply_shift", "check_shift"]

MAX_SEVERITY = 5

# Per severity 1..5.
WHITE_BALANCE_GAINS = (0.08, 0.16, 0.24, 0.32, 0.40)  # red x (1 + g), blue x (1 - g)
BLUR_SIGMA = (1.0, 2.0, 3.0, 4.0, 6.0)  # ImageNet-C gaussian_blur, pixels at 224 px
JPEG_QUALITY = (25, 18, 15, 10, 7)  # ImageNet-C jpeg_compression
RESOLUTION_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)  # ImageNet-C pixelate
FOV_RADIUS = (0.9, 0.8, 0.7, 0.6, 0.5)  # of half the shorter side of the field of view's box


def white_balance(images: Tensor, severity: int) -> Tensor:
    """A warmer light source: red gain ``1 + g``, blue gain ``1 - g`` (green kept), clipped."""
    gain = WHITE_BALANCE_GAINS[severity - 1]
    gains = images.new_tensor([1 + gain, 1.0, 1 - gain], dtype=torch.float32).view(1, 3, 1, 1)
    return _to_uint8(images * gains)


def blur(images: Tensor, severity: int) -> Tensor:
    """Gaussian blur (kornia, reflected border); sigma scales with the image: ImageNet-C's sigma
    for 224 px times ``min(H, W) / 224``, kernel ``2 ceil(3 sigma) + 1`` (at most the image)."""
    sigma = BLUR_SIGMA[severity - 1] * min(images.shape[-2:]) / 224
    kernel = min(2 * math.ceil(3 * sigma) + 1, _largest_odd(min(images.shape[-2:])))
    return _to_uint8(gaussian_blur2d(images.float(), kernel, (sigma, sigma)))


def jpeg(images: Tensor, severity: int) -> Tensor:
    """Encode and decode each image as JPEG at ImageNet-C's quality (torchvision)."""
    quality = JPEG_QUALITY[severity - 1]
    with _quiet_torchvision():
        decoded = decode_jpeg(encode_jpeg(list(images.cpu()), quality=quality))
    return torch.stack(decoded).to(images.device)


def resolution(images: Tensor, severity: int) -> Tensor:
    """A coarser sensor: antialiased bilinear downsampling by ImageNet-C's pixelate factor, then
    bilinear upsampling back to the same size."""
    size = images.shape[-2:]
    small = [max(1, round(side * RESOLUTION_SCALE[severity - 1])) for side in size]
    low = F.interpolate(images.float(), size=small, mode="bilinear", antialias=True)
    return _to_uint8(F.interpolate(low, size=size, mode="bilinear"))


def fov(images: Tensor, severity: int) -> Tensor:
    """A narrower field of view: black outside a circle centred on the estimated field of view
    (:func:`~ssl4gie.transforms.fov.estimate_fov`, its box), of radius ``FOV_RADIUS`` times half
    the box's shorter side (the whole image where no window is found)."""
    boxes = fov_boxes(estimate_fov(images))  # [B, 4] x0, y0, x1, y1
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    sides = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    radius = FOV_RADIUS[severity - 1] * sides / 2
    height, width = images.shape[-2:]
    y = torch.arange(height, device=images.device).view(1, -1, 1) + 0.5  # pixel centres
    x = torch.arange(width, device=images.device).view(1, 1, -1) + 0.5
    distance = (x - centre_x.view(-1, 1, 1)) ** 2 + (y - centre_y.view(-1, 1, 1)) ** 2
    inside = distance <= radius.view(-1, 1, 1) ** 2  # [B, H, W]
    return images * inside.unsqueeze(1)


SHIFTS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "white_balance": white_balance,
    "blur": blur,
    "jpeg": jpeg,
    "resolution": resolution,
    "fov": fov,
}
"""Shift name -> ``(images uint8 [B, 3, H, W], severity 1..5) -> shifted images`` of the same
shape; :func:`apply_shift` applies one to a batch dict."""


def _to_uint8(images: Tensor) -> Tensor:
    return images.round().clamp(0, 255).to(torch.uint8)


def _largest_odd(side: int) -> int:
    return side if side % 2 else side - 1


def check_shift(name: str, severity: int) -> None:
    """Raise :class:`InputError` for a name not in :data:`SHIFTS` or a severity outside 0..5."""
    check_choice("shift", name, SHIFTS)
    if not (isinstance(severity, int) and 0 <= severity <= MAX_SEVERITY):
        raise InputError(
            f"shift severity must be an integer in 0..{MAX_SEVERITY} (0: none), got {severity!r}"
        )


def apply_shift(batch: dict[str, Any], name: str, severity: int) -> dict[str, Any]:
    """Apply a shift to the images of a batch dict.

    Args:
        batch: ``image`` uint8 ``[B, 3, H, W]`` and any other keys (kept as they are).
        name: a key of :data:`SHIFTS` (``white_balance``, ``blur``, ``jpeg``, ``resolution``,
            ``fov``).
        severity: 1 (mild) to 5 (strong); 0 returns the batch unchanged.

    Returns:
        a new dict with the shifted ``image`` (uint8, same shape) and the other entries.

    Example:
        >>> batch = {"image": torch.full((2, 3, 64, 64), 128, dtype=torch.uint8)}
        >>> apply_shift(batch, "white_balance", 5)["image"][0, :, 0, 0].tolist()
        [179, 128, 77]
    """
    check_shift(name, severity)
    images = batch["image"]
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise InputError(
            f"shifts need uint8 images [B, 3, H, W], got {images.dtype} {tuple(images.shape)}; "
            "apply them before the task's normalisation (e.g. to the loader's batches)"
        )
    if severity == 0:
        return dict(batch)
    return {**batch, "image": SHIFTS[name](images, severity)}


class ShiftedLoader:
    """An iterable over a loader's collated batches with a shift applied to each.

    ``len()`` is the loader's. Pass it where Lightning takes dataloaders:
    ``trainer.test(task, dataloaders=ShiftedLoader(dm.test_dataloader(), "jpeg", 4))``. It is
    not a ``DataLoader``, so Lightning adds no distributed sampler: under DDP every process
    would read the whole loader (run shifted tests on one device).

    Args:
        loader: yields batch dicts with uint8 ``image`` ``[B, 3, H, W]``.
        name, severity: see :func:`apply_shift` (checked here, before any batch is read).
    """

    def __init__(self, loader: Iterable[dict[str, Any]], name: str, severity: int) -> None:
        check_shift(name, severity)
        self.loader, self.name, self.severity = loader, name, severity

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            yield apply_shift(batch, self.name, self.severity)

    def __len__(self) -> int:
        return len(self.loader)
