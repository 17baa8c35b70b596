"""Backbones: any timm model as a feature extractor.

``create_backbone("resnet50")`` gives a timm model without its classifier, so that
``model(images)`` returns pooled features ``[B, model.num_features]``. Vision transformers are
built with ``dynamic_img_size=True`` so one model takes 224 px global and 96 px local crops.
Zoo names (``resnet50-barlow-hk``) resolve through :mod:`ssl4gie.zoo` once it knows them.
"""

from __future__ import annotations

import functools
from typing import Any

import timm
from torch import nn

from ssl4gie.errors import InputError, did_you_mean


@functools.cache
def _timm_names() -> frozenset[str]:
    return frozenset(timm.list_models())


def is_vit(model: nn.Module) -> bool:
    """True for transformers with a patch embedding and tokens (ViT, DeiT, BEiT, ...)."""
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


def check_timm_name(name: str) -> str:
    """Return ``name`` if timm can build it, else raise InputError listing close matches."""
    architecture = name.split(".", 1)[0]
    if architecture not in _timm_names():
        raise InputError(
            f"unknown backbone {name!r}{did_you_mean(architecture, _timm_names())}; "
            "give a timm model name (timm.list_models()) or a zoo name"
        )
    return name


def create_backbone(name: str, pretrained: bool = False, **timm_kwargs: Any) -> nn.Module:
    """A timm model without classifier: ``model(x)`` maps ``[B, 3, H, W]`` to ``[B, D]``.

    Args:
        name: a timm model name, e.g. ``"resnet50"``, ``"vit_base_patch16_224"``,
            ``"swin_tiny_patch4_window7_224"``.
        pretrained: load timm's own pretrained weights (needs them cached or a network).
        timm_kwargs: passed to ``timm.create_model`` (e.g. ``img_size=64`` for tiny tests).

    Returns:
        the timm model with ``num_classes=0``; ``model.num_features`` is ``D``.
    """
    check_timm_name(name)
    kwargs: dict[str, Any] = {"num_classes": 0, **timm_kwargs}
    if name.startswith(("vit_", "deit", "beit", "eva")):
        kwargs.setdefault("dynamic_img_size", True)
    return timm.create_model(name, pretrained=pretrained, **kwargs)
