"""On-device SSL view recipes: batched, on whatever device the batch is on.

A recipe takes ``[B, 3, H, W]`` images (uint8, or float in [0, 1]) and returns a list of
normalised float32 views. Every random parameter is drawn per image from ``torch.rand`` with the
optional ``generator`` of ``forward`` (the global torch RNG otherwise), and every random step is
applied to the whole batch and selected per image with ``torch.where``: no Python loop over the
batch and no host synchronisation. Fix the views with ``torch.manual_seed(seed)`` before the call,
or pass ``torch.Generator(device).manual_seed(seed)``.

Per view, in this order (the order of the official torchvision pipelines):

- random resized crop of each image's region (the whole image, the valid part of an
  aspect-true canvas, or its field-of-view box with ``fov=True``), with torchvision's
  ``RandomResizedCrop`` sampling relative to that region, resized to ``size`` with
  ``interpolation``, and a horizontal flip, in one ``grid_sample``;
- colour jitter (brightness, contrast, saturation, hue with torchvision's ranges) with
  probability ``jitter_p``; the four factors are applied in this fixed order (torchvision draws
  a random order per image);
- grayscale, Gaussian blur (sigma in output pixels, as PIL's radius; kernel cut at 3 sigma),
  solarisation at 0.5 (PIL's threshold 128), each with its probability;
- ImageNet normalisation (``mean``, ``std``).

Deviations from the PIL pipelines: crops are sampled in continuous coordinates (torchvision
rounds them to whole pixels) and resampled without antialiasing.

Pretraining batches hold aspect-true frames on a fixed canvas with their valid ``region``
(:class:`~ssl4gie.data.datamodules.PretrainDataModule`): area and aspect ratio of a crop are then
relative to the original frame, as torchvision's crops of the full-resolution image.

With ``fov=True`` (endoscopy), crops are drawn inside the bounding box of the scene mask of
:func:`ssl4gie.transforms.fov.scene_mask` (the field of view minus burnt-in UI boxes and text),
and every output pixel outside the scene is set to 0 after normalisation (the dataset mean), so
the black border and the overlays carry no signal. Recipes with ``SCENE_MASKS``
(:class:`MaskedViewCrop`) then also return each view's scene mask, for losses that skip what is
not scene.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from ssl4gie.errors import InputError, check_choice
from ssl4gie.transforms.fov import fov_boxes, scene_mask
from ssl4gie.transforms.ops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Interpolation,
    ViewParams,
    augment_view,
    to_unit_float,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RECIPES",
    "ColourRecipe",
    "MaskedViewCrop",
    "MultiCrop",
    "TwoViews",
    "ViewParams",
    "ViewRecipe",
    "augment_view",
    "recipe_by_name",
    "to_unit_float",
]

_Recipe = TypeVar("_Recipe", bound="ViewRecipe")


class ViewRecipe(nn.Module):
    """Base of the recipes: a list of (view parameters, copies per image) groups.

    ``forward`` returns, group after group, ``copies`` views of the whole batch each (all copies
    of a group are drawn in one batched pass); with ``fov`` and ``SCENE_MASKS``, then the scene
    mask of every view in the same order.

    Each parameter is declared once, where it first applies: here those of every recipe; in
    :class:`ColourRecipe` the colour ones of the joint-embedding recipes; in a recipe its sizes,
    scales and per-view probabilities. A recipe passes ``**kwargs`` on to its base, whose
    parameters LightningCLI (jsonargparse) then reads, with their types, as the recipe's own.

    Args:
        crop_ratio: aspect ratio range of the random resized crop (torchvision's default).
        flip_p: horizontal flip probability (every official pipeline: 0.5).
        interpolation: crop resampling, ``"bicubic"`` (BYOL, Barlow Twins, DINO, MAE) or
            ``"bilinear"`` (MoCo v3, SwAV, SimMIM).
        mean, std: normalisation (ImageNet's, as every pipeline above).
        fov: crop inside each frame's field of view and blank the rest (see the module).
        fov_threshold: brightness below which a pixel is outside the field of view.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    SCENE_MASKS: ClassVar[bool] = False
    """With ``fov=True``, also return each view's scene mask (bool ``[B, 1, s, s]``)."""

    def __init__(
        self,
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        interpolation: Interpolation = "bicubic",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        fov: bool = False,
        fov_threshold: float = 0.1,
    ) -> None:
        super().__init__()
        if min(std) <= 0:
            raise InputError(f"std must be positive, got {std}")
        self.shared = ViewParams(crop_ratio=crop_ratio, flip_p=flip_p, interpolation=interpolation)
        """The parameters every view of the recipe shares (size and scale are set per view)."""
        self.groups: list[tuple[ViewParams, int]] = []
        self.fov = fov
        self.fov_threshold = fov_threshold
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def preset(cls: type[_Recipe], name: str, **overrides: Any) -> _Recipe:
        """The recipe of a paper by name (see ``PRESETS``), with any argument overridden."""
        check_choice(f"{cls.__name__} preset", name, cls.PRESETS)
        return cls(**{**cls.PRESETS[name], **overrides})

    def forward(
        self,
        images: Tensor,
        regions: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Tensor]:
        """Views of a batch.

        Args:
            images: ``[B, 3, H, W]`` uint8 or float in [0, 1]: frames, or canvases holding
                aspect-true frames (:func:`ssl4gie.data.decode.fit_to_canvas`).
            regions: float ``[B, 4]`` ``x0, y0, x1, y1``: the valid part of each canvas, in
                pixels (the batch's ``"region"``); None: the whole of every image.
            generator: RNG of every random draw (the global torch RNG if None).

        Returns:
            float ``[B, 3, s, s]`` views, group after group (see the class); with ``fov`` and
            ``SCENE_MASKS``, followed by one bool ``[B, 1, s, s]`` scene mask per view.
        """
        source = to_unit_float(images)
        if regions is None:
            height, width = source.shape[-2:]
            full = torch.tensor([0.0, 0.0, width, height], device=source.device)
            regions = full.expand(source.shape[0], 4)
        regions = regions.to(device=source.device, dtype=torch.float32)
        if self.fov:
            scene = scene_mask(source, self.fov_threshold)
            regions = _intersect(regions, fov_boxes(scene))
            source = torch.cat([source, scene.float()], dim=1)
        views: list[Tensor] = []
        scenes: list[Tensor] = []
        for params, copies in self.groups:
            batch = source.repeat(copies, 1, 1, 1)
            augmented = augment_view(batch, params, regions.repeat(copies, 1), generator)
            views.extend(self._normalise(augmented).chunk(copies))
            scenes.extend((augmented[:, 3:] > 0.5).chunk(copies))
        return views + scenes if self.fov and self.SCENE_MASKS else views

    def view_names(self) -> list[str]:
        """One label per view ``forward`` returns, e.g. ``["1: 224 px", "2: 224 px"]``."""
        sizes = [params.size for params, copies in self.groups for _ in range(copies)]
        names = [f"{i}: {size} px" for i, size in enumerate(sizes, start=1)]
        scenes = [f"{i}: scene" for i in range(1, len(sizes) + 1)]
        return names + scenes if self.fov and self.SCENE_MASKS else names

    def _normalise(self, views: Tensor) -> Tensor:
        """ImageNet-normalise the RGB channels; zero outside the scene channel if present."""
        rgb = (views[:, :3] - self.mean.to(views.device)) / self.std.to(views.device)
        if views.shape[1] == 3:
            return rgb
        return torch.where(views[:, 3:] > 0.5, rgb, 0.0)


def _intersect(regions: Tensor, boxes: Tensor) -> Tensor:
    """The overlap of two ``[B, 4]`` box sets; ``regions`` where they do not overlap."""
    low = torch.maximum(regions[:, :2], boxes[:, :2])
    high = torch.minimum(regions[:, 2:], boxes[:, 2:])
    overlap = torch.cat([low, high], dim=1)
    empty = (high <= low).any(dim=1, keepdim=True)
    return torch.where(empty, regions, overlap)


def _one_each(
    shared: ViewParams, blur_p: tuple[float, ...], solarize_p: tuple[float, ...]
) -> list[tuple[ViewParams, int]]:
    """One view per (blur, solarise) probability pair, otherwise ``shared``'s parameters."""
    return [
        (replace(shared, blur_p=blur, solarize_p=solarize), 1)
        for blur, solarize in zip(blur_p, solarize_p, strict=True)
    ]


class ColourRecipe(ViewRecipe):
    """Base of the joint-embedding recipes (:class:`TwoViews`, :class:`MultiCrop`): adds the
    colour parameters, whose defaults are BYOL's and DINO's (the same values: Grill et al. 2020,
    arXiv:2006.07733, Table 6; facebookresearch/dino ``DataAugmentationDINO``).

    Args:
        jitter: colour jitter strengths (brightness, contrast, saturation, hue).
        jitter_p: colour jitter probability.
        grayscale_p: grayscale probability.
        blur_sigma: Gaussian blur sigma range, in output pixels.
        kwargs: the parameters of :class:`ViewRecipe`.
    """

    def __init__(
        self,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shared = replace(
            self.shared, jitter=jitter, jitter_p=jitter_p, grayscale_p=grayscale_p,
            blur_sigma=blur_sigma,
        )  # fmt: skip


_BYOL = {"interpolation": "bicubic"}


class TwoViews(ColourRecipe):
    """Two asymmetric views for MoCo v3, BYOL, Barlow Twins and SimCLR.

    Defaults are BYOL's (Grill et al. 2020, arXiv:2006.07733, Table 6): crop scale (0.08, 1),
    flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2, blur sigma
    (0.1, 2.0) with p (1.0, 0.1), solarise p (0.0, 0.2), bicubic resizing (the colour defaults
    are :class:`ColourRecipe`'s, the others :class:`ViewRecipe`'s). Presets:

    - ``byol``, ``barlow_twins``: the defaults (facebookresearch/barlowtwins ``main.py``
      ``Transform``: same values, bicubic).
    - ``mocov3``: facebookresearch/moco-v3 ``main_moco.py`` ``augmentation1/2``: the same
      values, bilinear, ``--crop-min`` default 0.08 (the ResNet-50 runs in its CONFIG.md use
      ``crop_scale=(0.2, 1.0)``).
    - ``simclr``: Chen et al. 2020 (arXiv:2002.05709, appendix A): jitter strength 1.0 ->
      (0.8, 0.8, 0.8, 0.2) with p 0.8, grayscale 0.2, blur p 0.5 on both views, no solarise.

    Args:
        size: output side of both views in pixels.
        crop_scale: area range of the random resized crop, relative to the image.
        blur_p: Gaussian blur probability of the first and second view.
        solarize_p: solarisation probability of the first and second view.
        kwargs: the parameters of :class:`ColourRecipe` and :class:`ViewRecipe`.

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
        blur_p: tuple[float, float] = (1.0, 0.1),
        solarize_p: tuple[float, float] = (0.0, 0.2),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        view = replace(self.shared, size=size, crop_scale=crop_scale)
        self.groups = _one_each(view, blur_p, solarize_p)

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


class MultiCrop(ColourRecipe):
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

    Args:
        global_size, local_size: output side of the global and of the local crops in pixels.
        num_local: the number of local crops (0: the two global crops only).
        global_scale, local_scale: area ranges of the global and local crops.
        global_blur_p, global_solarize_p: blur and solarise probabilities of the two globals.
        local_blur_p: blur probability of every local crop (locals are never solarised).
        kwargs: the parameters of :class:`ColourRecipe` and :class:`ViewRecipe`.

    Examples:
        >>> recipe = MultiCrop.dino(global_size=64, local_size=32, num_local=2)
        >>> crops = recipe(torch.rand(4, 3, 96, 96))
        >>> [tuple(crop.shape) for crop in crops]
        [(4, 3, 64, 64), (4, 3, 64, 64), (4, 3, 32, 32), (4, 3, 32, 32)]
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
        global_blur_p: tuple[float, float] = (1.0, 0.1),
        global_solarize_p: tuple[float, float] = (0.0, 0.2),
        local_blur_p: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if local_size > global_size:
            raise InputError(
                f"local_size {local_size} is larger than global_size {global_size}; "
                "local crops must not be larger than global crops"
            )
        if num_local < 0:
            raise InputError(f"num_local must be >= 0, got {num_local}")
        super().__init__(**kwargs)
        view = replace(self.shared, size=global_size, crop_scale=global_scale)
        local = replace(self.shared, size=local_size, crop_scale=local_scale, blur_p=local_blur_p)
        self.groups = _one_each(view, global_blur_p, global_solarize_p)
        self.groups += [(local, num_local)] if num_local else []

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
    (0.67, 1), ratio (3/4, 4/3), bilinear. Returns a one-element list; with ``fov=True``, the
    view and its scene mask, whose outside the MAE and SimMIM losses skip.

    Args:
        size: output side of the view in pixels.
        crop_scale: area range of the random resized crop, relative to the image.
        kwargs: the parameters of :class:`ViewRecipe`.

    Examples:
        >>> [tuple(view.shape) for view in MaskedViewCrop.mae(size=32)(torch.rand(4, 3, 48, 48))]
        [(4, 3, 32, 32)]
        >>> view, scene = MaskedViewCrop.mae(size=32, fov=True)(torch.rand(4, 3, 48, 48))
        >>> tuple(scene.shape), scene.dtype
        ((4, 1, 32, 32), torch.bool)
    """

    SCENE_MASKS: ClassVar[bool] = True
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "mae": {},
        "simmim": {"crop_scale": (0.67, 1.0), "interpolation": "bilinear"},
    }

    def __init__(
        self, size: int = 224, crop_scale: tuple[float, float] = (0.2, 1.0), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.groups = [(replace(self.shared, size=size, crop_scale=crop_scale), 1)]

    @classmethod
    def mae(cls, **overrides: Any) -> MaskedViewCrop:
        """MAE (arXiv:2111.06377)."""
        return cls.preset("mae", **overrides)

    @classmethod
    def simmim(cls, **overrides: Any) -> MaskedViewCrop:
        """SimMIM (arXiv:2111.09886)."""
        return cls.preset("simmim", **overrides)


RECIPES: dict[str, type[ViewRecipe]] = {
    **dict.fromkeys(TwoViews.PRESETS, TwoViews),
    **dict.fromkeys(MultiCrop.PRESETS, MultiCrop),
    **dict.fromkeys(MaskedViewCrop.PRESETS, MaskedViewCrop),
}
"""Recipe name -> the class holding its preset (``"dino"`` -> :class:`MultiCrop`); see
:func:`recipe_by_name`."""


def recipe_by_name(name: str, **overrides: Any) -> ViewRecipe:
    """The view recipe of a method by name (a key of ``RECIPES``), arguments overridden.

    >>> type(recipe_by_name("dino", num_local=2)).__name__
    'MultiCrop'
    """
    check_choice("view recipe", name, RECIPES)
    return RECIPES[name].preset(name, **overrides)
