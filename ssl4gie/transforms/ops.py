"""The batched operations behind the view recipes: one view's parameters, crop-resize-flip in
one ``grid_sample``, colour jitter, grayscale, blur and solarisation selected per image with
``torch.where`` (no loop over the batch, no host synchronisation). See :mod:`.views`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_hue,
    adjust_saturation_with_gray_subtraction,
)
from kornia.filters import gaussian_blur2d
from torch import Tensor

from ssl4gie.errors import InputError, check_choice

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel mean (RGB, in [0, 1]): the normalisation of every view recipe and of timm's
ImageNet weights."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviation (RGB, in [0, 1]), with :data:`IMAGENET_MEAN`."""
Interpolation = Literal["bilinear", "bicubic"]
_CROP_ATTEMPTS = 10


@dataclass(frozen=True)
class ViewParams:
    """The augmentation of one view; probabilities are per image."""

    size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    jitter_p: float = 0.0
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    interpolation: Interpolation = "bilinear"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InputError(f"view size must be a positive number of pixels, got {self.size}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} is a probability and must be in [0, 1], got {value}")
        _check_range("crop_scale", self.crop_scale, low=0.0, high=1.0)
        _check_range("crop_ratio", self.crop_ratio, low=0.0, high=math.inf)
        _check_range("blur_sigma", self.blur_sigma, low=0.0, high=math.inf)
        if min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise InputError(f"jitter must be >= 0 with hue <= 0.5, got {self.jitter}")
        check_choice("interpolation", self.interpolation, ["bilinear", "bicubic"])


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    """Raise InputError unless ``low < bounds[0] <= bounds[1] <= high``."""
    if not (len(bounds) == 2 and low < bounds[0] <= bounds[1] <= high):
        raise InputError(
            f"{name} must be (min, max) with {low} < min <= max <= {high}, got {bounds}"
        )


def to_unit_float(images: Tensor) -> Tensor:
    """``[B, 3, H, W]`` uint8 or float in [0, 1] -> float32 in [0, 1]."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"views need images [B, 3, H, W], got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise InputError(f"views need uint8 or float images, got {images.dtype}")
    return images.float()


def augment_view(
    images: Tensor, params: ViewParams, regions: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One augmented view per image, not yet normalised.

    Args:
        images: float ``[B, C, H, W]`` in [0, 1]; channels after the first 3 (e.g. a FOV mask)
            are only cropped, never colour-augmented.
        params: the view's augmentation.
        regions: float ``[B, 4]`` ``x0, y0, x1, y1`` (pixel edges) to draw each crop from.
        generator: RNG for every random draw (the global torch RNG if None).

    Returns:
        float ``[B, C, size, size]``.
    """
    draw = _Draw(images.shape[0], images.device, generator)
    boxes = sample_crop_boxes(regions, params.crop_scale, params.crop_ratio, draw)
    flip = draw.chance(params.flip_p)
    views = crop_resize_flip(images, boxes, flip, params.size, params.interpolation)
    rgb, extra = views[:, :3], views[:, 3:]
    rgb = _color_jitter(rgb, params.jitter, draw.chance(params.jitter_p), draw)
    gray = rgb_to_grayscale(rgb).expand_as(rgb)
    rgb = torch.where(_per_image(draw.chance(params.grayscale_p)), gray, rgb)
    rgb = _blur(rgb, params.blur_sigma, draw.chance(params.blur_p), draw)
    solarized = torch.where(rgb >= 0.5, 1.0 - rgb, rgb)
    rgb = torch.where(_per_image(draw.chance(params.solarize_p)), solarized, rgb)
    return torch.cat([rgb, extra], dim=1)


class _Draw:
    """Per-image random draws on one device from one generator."""

    def __init__(self, batch: int, device: torch.device, generator: torch.Generator | None):
        self.batch, self.device, self.generator = batch, device, generator

    def uniform(self, low: float, high: float, *shape: int) -> Tensor:
        """``[batch, *shape]`` uniform in [low, high)."""
        rand = torch.rand(self.batch, *shape, device=self.device, generator=self.generator)
        return low + (high - low) * rand

    def chance(self, p: float) -> Tensor:
        """bool ``[batch]``, each True with probability p."""
        return self.uniform(0.0, 1.0) < p


def _per_image(flags: Tensor) -> Tensor:
    """bool ``[B]`` -> ``[B, 1, 1, 1]`` for broadcasting over images."""
    return flags.view(-1, 1, 1, 1)


def sample_crop_boxes(
    regions: Tensor, scale: tuple[float, float], ratio: tuple[float, float], draw: _Draw
) -> Tensor:
    """Random resized crop boxes: torchvision's ``RandomResizedCrop.get_params`` vectorised over
    the batch, in continuous coordinates.

    Area fraction ~ U(scale) of each region, log aspect ratio ~ U(log ratio); the first of 10
    attempts that fits is kept, else (as torchvision) the centre crop of the region with its
    aspect ratio clamped to ``ratio``.

    Returns:
        float ``[B, 4]`` ``x0, y0, x1, y1`` inside ``regions``.
    """
    width = (regions[:, 2] - regions[:, 0]).unsqueeze(1)
    height = (regions[:, 3] - regions[:, 1]).unsqueeze(1)
    area = width * height * draw.uniform(*scale, _CROP_ATTEMPTS)
    aspect = torch.exp(draw.uniform(math.log(ratio[0]), math.log(ratio[1]), _CROP_ATTEMPTS))
    crop_w, crop_h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (crop_w <= width) & (crop_h <= height)
    chosen = fits.int().argmax(dim=1, keepdim=True)
    found = fits.any(dim=1)
    width, height = width.squeeze(1), height.squeeze(1)
    clamped = (width / height).clamp(ratio[0], ratio[1])
    centre_w = torch.minimum(width, height * clamped)
    crop_w = torch.where(found, crop_w.gather(1, chosen).squeeze(1), centre_w)
    crop_h = torch.where(found, crop_h.gather(1, chosen).squeeze(1), centre_w / clamped)
    x_frac = torch.where(found, draw.uniform(0.0, 1.0), 0.5)
    y_frac = torch.where(found, draw.uniform(0.0, 1.0), 0.5)
    x0 = regions[:, 0] + (width - crop_w) * x_frac
    y0 = regions[:, 1] + (height - crop_h) * y_frac
    return torch.stack([x0, y0, x0 + crop_w, y0 + crop_h], dim=1)


def crop_resize_flip(
    images: Tensor, boxes: Tensor, flip: Tensor, size: int, interpolation: str = "bilinear"
) -> Tensor:
    """Crop ``boxes`` ``[B, 4]`` (pixel edges) out of ``images`` ``[B, C, H, W]``, resize to
    ``[B, C, size, size]`` and mirror the images where ``flip`` ``[B]`` is True; one grid_sample.
    """
    height, width = images.shape[-2:]
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    mirror = 1.0 - 2.0 * flip.float()
    zeros = torch.zeros_like(x0)
    theta = torch.stack(
        [
            torch.stack([(x1 - x0) / width * mirror, zeros, (x0 + x1) / width - 1.0], dim=1),
            torch.stack([zeros, (y1 - y0) / height, (y0 + y1) / height - 1.0], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [images.shape[0], 1, size, size], align_corners=False)
    out = F.grid_sample(
        images, grid, mode=interpolation, padding_mode="border", align_corners=False
    )
    return out.clamp(0.0, 1.0)


def _color_jitter(
    rgb: Tensor, strengths: tuple[float, float, float, float], apply: Tensor, draw: _Draw
) -> Tensor:
    """torchvision ColorJitter factors per image; images where ``apply`` is False keep neutral
    factors (1, 1, 1, 0) and come back unchanged up to rounding."""
    brightness, contrast, saturation, hue = strengths

    def scale_factor(strength: float) -> Tensor:
        return torch.where(apply, draw.uniform(max(0.0, 1.0 - strength), 1.0 + strength), 1.0)

    rgb = adjust_brightness_accumulative(rgb, scale_factor(brightness))
    rgb = adjust_contrast_with_mean_subtraction(rgb, scale_factor(contrast))
    rgb = adjust_saturation_with_gray_subtraction(rgb, scale_factor(saturation))
    if hue > 0:
        hue_shift = torch.where(apply, draw.uniform(-hue, hue), 0.0)
        rgb = adjust_hue(rgb, hue_shift * 2 * math.pi)
    return rgb


def _blur(rgb: Tensor, sigma_range: tuple[float, float], apply: Tensor, draw: _Draw) -> Tensor:
    """Gaussian blur with sigma ~ U(sigma_range) pixels where ``apply``; kernel cut at 3 sigma."""
    sigma = draw.uniform(*sigma_range)
    # The draw above happens even when no image is blurred, so later draws do not depend on p.
    kernel = min(2 * math.ceil(3 * sigma_range[1]) + 1, (min(rgb.shape[-2:]) - 1) // 2 * 2 + 1)
    if kernel < 3:
        return rgb
    blurred = gaussian_blur2d(rgb, kernel, torch.stack([sigma, sigma], dim=1))
    return torch.where(_per_image(apply), blurred, rgb)
