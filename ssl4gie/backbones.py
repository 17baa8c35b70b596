"""Backbones: any backbone name -> a feature extractor; the one place that resolves a name.

``create_backbone("resnet50")`` gives a timm model without its classifier, so that
``model(images)`` returns pooled features ``[B, model.num_features]``. Vision transformers are
built with ``dynamic_img_size=True`` so one model takes 224 px global and 96 px local crops.
Zoo names (``resnet50-barlow-hk``), ``hf-hub:org/repo`` ids, export folders and checkpoint
files are loaded, with their weights, by :func:`ssl4gie.zoo.load.load_backbone`. Imports go one
way: this module imports the zoo; the zoo builds timm models with ``ssl4gie._timm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ssl4gie._timm import check_timm_name, create_timm_backbone, timm_names
from ssl4gie.zoo.load import load_backbone
from ssl4gie.zoo.registry import is_zoo_name


def is_vit(model: nn.Module) -> bool:
    """True for transformers with a patch embedding and tokens (ViT, DeiT, BEiT, ...)."""
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


def is_weights_source(name: str) -> bool:
    """True for a zoo name, an ``hf-hub:`` id, an existing file (a checkpoint, even one named
    like ``resnet50.ckpt``) or an existing folder not named like a timm model."""
    if name.startswith("hf-hub:") or is_zoo_name(name) or Path(name).is_file():
        return True
    return name.split(".", 1)[0] not in timm_names() and Path(name).is_dir()


def check_backbone_name(name: str) -> str:
    """Return ``name`` if :func:`create_backbone` can resolve it (a weights source or a timm
    name), else raise InputError listing close zoo and timm names; builds nothing."""
    return name if is_weights_source(name) else check_timm_name(name)


def create_backbone(name: str, pretrained: bool | None = None, **timm_kwargs: Any) -> nn.Module:
    """A timm model without classifier: ``model(x)`` maps ``[B, 3, H, W]`` to ``[B, D]``.

    Args:
        name: a timm model name, e.g. ``"resnet50"``, ``"vit_base_patch16_224"``,
            ``"swin_tiny_patch4_window7_224"``; or a weights source for
            :func:`ssl4gie.zoo.load.load_backbone` (zoo name such as ``"resnet50-barlow-hk"``,
            ``"hf-hub:org/repo"``, export folder, checkpoint file).
        pretrained: load pretrained weights. Default: False for a timm name (timm's own weights
            need them cached or a network), True for a weights source.
        timm_kwargs: passed to ``timm.create_model`` (e.g. ``img_size=64`` for tiny tests).

    Returns:
        the timm model with ``num_classes=0``; ``model.num_features`` is ``D``.
    """
    if is_weights_source(name):
        return load_backbone(name, pretrained=pretrained is not False, **timm_kwargs)
    return create_timm_backbone(name, pretrained=bool(pretrained), **timm_kwargs)
