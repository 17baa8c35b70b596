"""Endoscopy field-of-view (FOV) masks, estimated per image from a batch with tensor ops only.

Endoscopy frames show the scene through a circular or octagonal window on a black border, and
the border often carries burnt-in text or a position-indicator box. :func:`estimate_fov` finds
the window so that view recipes can keep their crops inside it and blank everything outside it.

Method (all batched, no host synchronisation, cost independent of the input size):

1. **Brightness.** The maximum over RGB, area-averaged down to ``work_size x work_size``; the
   averaging also suppresses JPEG noise and thin text strokes.
2. **Threshold.** Pixels brighter than ``threshold`` (in [0, 1]) are candidate FOV pixels.
3. **Opening.** A 3x3 erosion then dilation at the working size removes bright structures
   thinner than about 3/``work_size`` of the image (text glyphs, thin overlay lines).
4. **Largest bright region.** Connected components by label propagation: every bright pixel
   starts with its own index and takes the maximum over its 3x3 neighbourhood for
   ``2 * work_size`` steps (enough for any convex region and most others); the label with the
   most pixels wins. Text blocks and indicator boxes not touching the window are dropped.
5. **Fill.** A pixel between the first and last FOV pixel of its row, or of its column, is
   inside: this fills dark lumen and specular holes and, for a convex window, restores notches
   where the lumen reaches the rim.
6. **Upsample** to the input size (bilinear, threshold 0.5).

Burnt-in text and boxes that overlap the window itself cannot be told apart from the scene and
stay inside the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl4gie.errors import InputError

__all__ = ["estimate_fov", "fov_boxes"]


def estimate_fov(images: Tensor, threshold: float = 0.1, work_size: int = 64) -> Tensor:
    """Estimate the field-of-view mask of each image.

    Args:
        images: ``[B, 3, H, W]`` float in [0, 1] (or uint8, scaled by 1/255).
        threshold: brightness (max over RGB, in [0, 1]) above which a pixel may be in the FOV.
        work_size: side of the square working resolution of steps 1-5 (see module docstring).

    Returns:
        bool ``[B, 1, H, W]``, True inside the field of view.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"FOV images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if not 0.0 < threshold < 1.0:
        raise InputError(
            f"FOV threshold must be in (0, 1), got {threshold}; 0.1 suits JPEG borders"
        )
    if work_size < 8:
        raise InputError(f"FOV work_size must be at least 8, got {work_size}")
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    brightness = images.amax(dim=1, keepdim=True).float() / scale
    small = F.interpolate(brightness, size=(work_size, work_size), mode="area")
    bright = _open(small > threshold)
    region = _fill_spans(_largest_component(bright))
    full = F.interpolate(region.float(), size=images.shape[-2:], mode="bilinear")
    return full > 0.5


def fov_boxes(mask: Tensor) -> Tensor:
    """Bounding box of each FOV mask, in pixel-edge coordinates.

    Args:
        mask: bool ``[B, 1, H, W]`` from :func:`estimate_fov`.

    Returns:
        float ``[B, 4]`` as ``x0, y0, x1, y1`` with ``0 <= x0 < x1 <= W`` (the pixels
        ``x0 .. x1 - 1`` are covered); an empty mask gives the whole image.
    """
    height, width = mask.shape[-2:]
    x0, x1 = _extent(mask.any(dim=-2).flatten(1), width)
    y0, y1 = _extent(mask.any(dim=-1).flatten(1), height)
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def _extent(occupied: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """First index and one past the last True index of each row of ``occupied`` ``[B, L]``."""
    first = occupied.int().argmax(dim=1)
    last = length - occupied.flip(1).int().argmax(dim=1)
    empty = ~occupied.any(dim=1)
    return first.masked_fill(empty, 0), last.masked_fill(empty, length)


def _open(mask: Tensor) -> Tensor:
    """Morphological opening with a 3x3 square of a bool ``[B, 1, h, w]`` mask."""
    as_float = mask.float()
    eroded = -F.max_pool2d(-as_float, 3, stride=1, padding=1)
    return F.max_pool2d(eroded, 3, stride=1, padding=1) > 0.5


def _largest_component(mask: Tensor) -> Tensor:
    """Keep the largest 8-connected region of a bool ``[B, 1, h, w]`` mask."""
    batch, _, height, width = mask.shape
    bright = mask.float()
    index = torch.arange(1, height * width + 1, device=mask.device, dtype=torch.float32)
    labels = index.view(1, 1, height, width) * bright
    for _ in range(2 * max(height, width)):
        labels = F.max_pool2d(labels, 3, stride=1, padding=1) * bright
    flat = labels.flatten(1).long()
    counts = torch.zeros(batch, height * width + 1, device=mask.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=counts.dtype))
    counts[:, 0] = 0
    winner = counts.argmax(dim=1, keepdim=True)
    return ((flat == winner) & (flat > 0)).view_as(mask)


def _fill_spans(mask: Tensor) -> Tensor:
    """Fill each row and each column of a bool ``[B, 1, h, w]`` mask between its end points."""
    return _span(mask, dim=-1) | _span(mask, dim=-2)


def _span(mask: Tensor, dim: int) -> Tensor:
    """True between the first and last True element along ``dim``."""
    as_int = mask.int()
    seen_before = as_int.cummax(dim=dim).values
    seen_after = as_int.flip(dim).cummax(dim=dim).values.flip(dim)
    return (seen_before & seen_after).bool()
