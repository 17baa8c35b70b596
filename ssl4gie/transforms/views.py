"""On-device SSL view recipes: batched, on whatever device the batch is on.

A recipe takes ``[B, 3, H, W]`` images (uint8, or float in [0, 1]) and returns a list of
normalised float32 views. Every random parameter is drawn per image from ``torch.rand`` with the
optional ``generator`` of ``forward`` (the global torch RNG otherwise), and every random step is
applied to the whole batch and selected per image with ``torch.where``: no Python loop over the
batch and no host synchronisation. Fix the views with ``torch.manual_seed(seed)`` before the call,
or pass ``torch.Generator(device).manual_seed(seed)``.

Per view, in this order (the order of the official torchvision pipelines):

- random resized crop of the source (or of its field-of-view box, ``fov=True``), resized to
  ``size`` with ``interpolation``, and a horizontal flip, in one ``grid_sample``;
- colour jitter (brightness, contrast, saturation, hue with torchvision's ranges) with
  probability ``jitter_p``; the four factors are applied in this fixed order (torchvision draws
  a random order per image);
- grayscale, Gaussian blur (sigma in output pixels, as PIL's radius; kernel cut at 3 sigma),
  solarisation at 0.5 (PIL's threshold 128), each with its probability;
- ImageNet normalisation (``mean``, ``std``).

Deviations from the PIL pipelines: crops are sampled in continuous coordinates and resampled
without antialiasing; a crop that finds no fitting box in 10 attempts is clamped to the region
instead of falling back to a centre crop.

With ``fov=True`` (endoscopy), crops are drawn inside the bounding box of the field of view of
:func:`ssl4gie.transforms.fov.estimate_fov`, and every output pixel outside the field of view is
set to 0 after normalisation (the dataset mean), so the black border and burnt-in text there
carry no signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, TypeVar

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
from torch import Tensor, nn

from ssl4gie.errors import InputError, check_choice
from ssl4gie.transforms.fov import estimate_fov, fov_boxes

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MaskedViewCrop",
    "MultiCrop",
    "TwoViews",
    "ViewParams",
    "ViewRecipe",
    "augment_view",
    "to_unit_float",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Interpolation = Literal["bilinear", "bicubic"]
_CROP_ATTEMPTS = 10
_Recipe = TypeVar("_Recipe", bound="ViewRecipe")


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
    """Random resized crop boxes, torchvision's sampling vectorised over the batch.

    Area fraction ~ U(scale) of each region, log aspect ratio ~ U(log ratio); the first of 10
    attempts that fits is kept, else the last one clamped to the region.

    Returns:
        float ``[B, 4]`` ``x0, y0, x1, y1`` inside ``regions``.
    """
    width = (regions[:, 2] - regions[:, 0]).unsqueeze(1)
    height = (regions[:, 3] - regions[:, 1]).unsqueeze(1)
    area = width * height * draw.uniform(*scale, _CROP_ATTEMPTS)
    aspect = torch.exp(draw.uniform(math.log(ratio[0]), math.log(ratio[1]), _CROP_ATTEMPTS))
    crop_w, crop_h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (crop_w <= width) & (crop_h <= height)
    chosen = torch.where(fits.any(dim=1), fits.int().argmax(dim=1), _CROP_ATTEMPTS - 1)
    crop_w = torch.minimum(crop_w.gather(1, chosen[:, None]), width).squeeze(1)
    crop_h = torch.minimum(crop_h.gather(1, chosen[:, None]), height).squeeze(1)
    x0 = regions[:, 0] + (width.squeeze(1) - crop_w) * draw.uniform(0.0, 1.0)
    y0 = regions[:, 1] + (height.squeeze(1) - crop_h) * draw.uniform(0.0, 1.0)
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


class ViewRecipe(nn.Module):
    """Base of the recipes: a list of (view parameters, copies per image) groups.

    ``forward`` returns, group after group, ``copies`` views of the whole batch each (all copies
    of a group are drawn in one batched pass).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(
        self,
        groups: list[tuple[ViewParams, int]],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        fov: bool,
        fov_threshold: float,
    ) -> None:
        super().__init__()
        if min(std) <= 0:
            raise InputError(f"std must be positive, got {std}")
        self.groups = groups
        self.fov = fov
        self.fov_threshold = fov_threshold
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def preset(cls: type[_Recipe], name: str, **overrides: Any) -> _Recipe:
        """The recipe of a paper by name (see ``PRESETS``), with any argument overridden."""
        check_choice(f"{cls.__name__} preset", name, cls.PRESETS)
        return cls(**{**cls.PRESETS[name], **overrides})

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """``[B, 3, H, W]`` uint8 or float in [0, 1] -> list of float ``[B, 3, s, s]`` views."""
        source = to_unit_float(images)
        height, width = source.shape[-2:]
        if self.fov:
            mask = estimate_fov(source, self.fov_threshold)
            regions = fov_boxes(mask)
            source = torch.cat([source, mask.float()], dim=1)
        else:
            full = torch.tensor([0.0, 0.0, width, height], device=source.device)
            regions = full.expand(source.shape[0], 4)
        views: list[Tensor] = []
        for params, copies in self.groups:
            batch = source.repeat(copies, 1, 1, 1)
            augmented = augment_view(batch, params, regions.repeat(copies, 1), generator)
            views.extend(self._normalise(augmented).chunk(copies))
        return views

    def _normalise(self, views: Tensor) -> Tensor:
        """ImageNet-normalise the RGB channels; zero outside the FOV channel if present."""
        rgb = (views[:, :3] - self.mean.to(views.device)) / self.std.to(views.device)
        if views.shape[1] == 3:
            return rgb
        return torch.where(views[:, 3:] > 0.5, rgb, 0.0)


_BYOL = {"interpolation": "bicubic"}


class TwoViews(ViewRecipe):
    """Two asymmetric views for MoCo v3, BYOL, Barlow Twins and SimCLR.

    Defaults are BYOL's (Grill et al. 2020, arXiv:2006.07733, Table 6): crop scale (0.08, 1),
    flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2, blur sigma
    (0.1, 2.0) with p (1.0, 0.1), solarise p (0.0, 0.2), bicubic resizing. Presets:

    - ``byol``, ``barlow_twins``: the defaults (facebookresearch/barlowtwins ``main.py``
      ``Transform``: same values, bicubic).
    - ``mocov3``: facebookresearch/moco-v3 ``main_moco.py`` ``augmentation1/2``: the same
      values, bilinear, ``--crop-min`` default 0.08 (the ResNet-50 runs in its CONFIG.md use
      ``crop_scale=(0.2, 1.0)``).
    - ``simclr``: Chen et al. 2020 (arXiv:2002.05709, appendix A): jitter strength 1.0 ->
      (0.8, 0.8, 0.8, 0.2) with p 0.8, grayscale 0.2, blur p 0.5 on both views, no solarise.

    Example:
        >>> views = TwoViews.mocov3(size=32)(torch.rand(4, 3, 48, 48))
        >>> [tuple(v.shape) for v in views]
        [(4, 3, 32, 32), (4, 3, 32, 32)]
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "byol": _BYOL,
        "barlow_twins": _BYOL,
        "mocov3": {"interpolation": "bilinear"},
        "simclr": {
            "jitter": (0.8, 0.8, 0.8, 0.2),
            "blur_p": (0.5, 0.5),
            "solarize_p": (0.0, 0.0),
            "interpolation": "bicubic",
        },
    }

    def __init__(
        self,
        size: int = 224,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: tuple[float, float] = (1.0, 0.1),
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize_p: tuple[float, float] = (0.0, 0.2),
        interpolation: Interpolation = "bicubic",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        fov: bool = False,
        fov_threshold: float = 0.1,
    ) -> None:
        shared = ViewParams(
            size, crop_scale, crop_ratio, flip_p, jitter, jitter_p, grayscale_p,
            blur_sigma=blur_sigma, interpolation=interpolation,
        )  # fmt: skip
        groups = [
            (replace(shared, blur_p=blur, solarize_p=solarize), 1)
            for blur, solarize in zip(blur_p, solarize_p, strict=True)
        ]
        super().__init__(groups, mean, std, fov, fov_threshold)

    @classmethod
    def byol(cls, **overrides: Any) -> TwoViews:
        """BYOL (arXiv:2006.07733, Table 6)."""
        return cls.preset("byol", **overrides)

    @classmethod
    def barlow_twins(cls, **overrides: Any) -> TwoViews:
        """Barlow Twins (arXiv:2103.03230; facebookresearch/barlowtwins ``Transform``)."""
        return cls.preset("barlow_twins", **overrides)

    @classmethod
    def mocov3(cls, **overrides: Any) -> TwoViews:
        """MoCo v3 (arXiv:2104.02057; facebookresearch/moco-v3 ``main_moco.py``)."""
        return cls.preset("mocov3", **overrides)

    @classmethod
    def simclr(cls, **overrides: Any) -> TwoViews:
        """SimCLR (arXiv:2002.05709, appendix A)."""
        return cls.preset("simclr", **overrides)


class MultiCrop(ViewRecipe):
    """Two global crops then ``num_local`` local crops, for DINO and SwAV.

    Returns ``[global1, global2, local1, ..., localN]``. Defaults are DINO's (Caron et al. 2021,
    arXiv:2104.14294; facebookresearch/dino ``DataAugmentationDINO``): global crops 224 px at
    scale (0.4, 1), 8 local crops 96 px at scale (0.05, 0.4), flip 0.5, jitter
    (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, blur p 1.0 / 0.1 on the globals and 0.5 on the
    locals, solarise p 0.2 on the second global only, bicubic.

    Preset ``swav`` (Caron et al. 2020, arXiv:2006.09882; facebookresearch/swav
    ``multicropdataset.py`` and its README's 2x224 + 6x96 run): scales (0.14, 1) and
    (0.05, 0.14), 6 local crops, jitter (0.8, 0.8, 0.8, 0.2) p 0.8, grayscale 0.2, blur p 0.5
    on every crop, no solarise, bilinear.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "dino": {},
        "swav": {
            "global_scale": (0.14, 1.0),
            "local_scale": (0.05, 0.14),
            "num_local": 6,
            "jitter": (0.8, 0.8, 0.8, 0.2),
            "global_blur_p": (0.5, 0.5),
            "global_solarize_p": (0.0, 0.0),
            "interpolation": "bilinear",
        },
    }

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 96,
        num_local: int = 8,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        global_blur_p: tuple[float, float] = (1.0, 0.1),
        global_solarize_p: tuple[float, float] = (0.0, 0.2),
        local_blur_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        interpolation: Interpolation = "bicubic",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        fov: bool = False,
        fov_threshold: float = 0.1,
    ) -> None:
        if local_size > global_size:
            raise InputError(
                f"local_size {local_size} is larger than global_size {global_size}; "
                "local crops must not be larger than global crops"
            )
        if num_local < 0:
            raise InputError(f"num_local must be >= 0, got {num_local}")
        shared = ViewParams(
            global_size, global_scale, crop_ratio, flip_p, jitter, jitter_p, grayscale_p,
            blur_sigma=blur_sigma, interpolation=interpolation,
        )  # fmt: skip
        groups = [
            (replace(shared, blur_p=blur, solarize_p=solarize), 1)
            for blur, solarize in zip(global_blur_p, global_solarize_p, strict=True)
        ]
        local = replace(shared, size=local_size, crop_scale=local_scale, blur_p=local_blur_p)
        groups += [(local, num_local)] if num_local else []
        super().__init__(groups, mean, std, fov, fov_threshold)

    @classmethod
    def dino(cls, **overrides: Any) -> MultiCrop:
        """DINO (arXiv:2104.14294)."""
        return cls.preset("dino", **overrides)

    @classmethod
    def swav(cls, **overrides: Any) -> MultiCrop:
        """SwAV (arXiv:2006.09882)."""
        return cls.preset("swav", **overrides)


class MaskedViewCrop(ViewRecipe):
    """One random resized crop + flip, for masked image modelling (MAE, SimMIM).

    Defaults are MAE's (He et al. 2022, arXiv:2111.06377; facebookresearch/mae
    ``main_pretrain.py``): scale (0.2, 1), ratio (3/4, 4/3), flip 0.5, bicubic. Preset
    ``simmim`` (Xie et al. 2022, arXiv:2111.09886; microsoft/SimMIM ``data_simmim.py``): scale
    (0.67, 1), ratio (3/4, 4/3), bilinear. Returns a one-element list.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "mae": {},
        "simmim": {"crop_scale": (0.67, 1.0), "interpolation": "bilinear"},
    }

    def __init__(
        self,
        size: int = 224,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        interpolation: Interpolation = "bicubic",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        fov: bool = False,
        fov_threshold: float = 0.1,
    ) -> None:
        params = ViewParams(size, crop_scale, crop_ratio, flip_p, interpolation=interpolation)
        super().__init__([(params, 1)], mean, std, fov, fov_threshold)

    @classmethod
    def mae(cls, **overrides: Any) -> MaskedViewCrop:
        """MAE (arXiv:2111.06377)."""
        return cls.preset("mae", **overrides)

    @classmethod
    def simmim(cls, **overrides: Any) -> MaskedViewCrop:
        """SimMIM (arXiv:2111.09886)."""
        return cls.preset("simmim", **overrides)
