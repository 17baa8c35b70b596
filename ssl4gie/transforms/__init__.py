"""Batched, on-device augmentation with kornia: SSL views, fine-tuning augmentations, FOV masks.

Views (:mod:`.views`) turn a uint8 or [0, 1] float batch into a list of normalised views;
fine-tuning augmentations (:mod:`.finetune`) move masks, boxes and depth with the image;
:mod:`.fov` estimates endoscopy field-of-view masks and scene masks (the field of view without
burnt-in overlays); :mod:`.shifts` makes controlled acquisition shifts (white balance, blur,
JPEG, resolution, field of view) for robustness tests.
"""

from ssl4gie.transforms.finetune import (
    ClassificationAugment,
    DepthAugment,
    DetectionAugment,
    SegmentationAugment,
    TaskAugment,
)
from ssl4gie.transforms.fov import estimate_fov, fov_boxes, scene_mask
from ssl4gie.transforms.shifts import SHIFTS, ShiftedLoader, apply_shift
from ssl4gie.transforms.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RECIPES,
    ColourRecipe,
    MaskedViewCrop,
    MultiCrop,
    TwoViews,
    ViewParams,
    ViewRecipe,
    recipe_by_name,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RECIPES",
    "SHIFTS",
    "ClassificationAugment",
    "ColourRecipe",
    "DepthAugment",
    "DetectionAugment",
    "MaskedViewCrop",
    "MultiCrop",
    "SegmentationAugment",
    "ShiftedLoader",
    "TaskAugment",
    "TwoViews",
    "ViewParams",
    "ViewRecipe",
    "apply_shift",
    "estimate_fov",
    "fov_boxes",
    "recipe_by_name",
    "scene_mask",
]
