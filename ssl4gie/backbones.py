"""Backbones: any timm model as a feature extractor.

``create_backbone("resnet50")`` gives a timm model without its classifier, so that
``model(images)`` returns pooled features ``[B, model.num_features]``. Vision transformers are
built with ``dynamic_img_size=True`` so one model takes 224 px global and 96 px local crops.
Zoo names (``resnet50-barlow-hk``), ``hf-hub:org/repo`` ids, export folders and checkpoint
files are loaded, with their weights, by :func:`ssl4gie.zoo.load.load_backbone`.
"""

from __future__ import annotations

import functools
from pathlib import Path
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
    """Return ``name`` if timm can build it, else raise InputError listing close matches among
    zoo names (``ssl4gie zoo list``) and timm names."""
    from ssl4gie.zoo.registry import list_backbones

    architecture = name.split(".", 1)[0]
    if architecture not in _timm_names():
        zoo_match = did_you_mean(name, list_backbones())
        raise InputError(
            f"unknown backbone {name!r}{zoo_match or did_you_mean(architecture, _timm_names())};"
            " give a zoo name ('ssl4gie zoo list'), a timm model name (timm.list_models()), an"
            " hf-hub: id, an export folder or a checkpoint"
        )
    return name


def vit_defaults(name: str) -> dict[str, Any]:
    """``{"dynamic_img_size": True}`` for transformers named like timm's ViTs, else ``{}``."""
    return {"dynamic_img_size": True} if name.startswith(("vit_", "deit", "beit", "eva")) else {}


def is_weights_source(name: str) -> bool:
    """True for a zoo name, an ``hf-hub:`` id, or an existing folder or file not named like a
    timm model."""
    from ssl4gie.zoo.registry import is_zoo_name

    if name.startswith("hf-hub:") or is_zoo_name(name):
        return True
    return name.split(".", 1)[0] not in _timm_names() and Path(name).exists()


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
        from ssl4gie.zoo.load import load_backbone

        return load_backbone(name, pretrained=pretrained is not False, **timm_kwargs)
    check_timm_name(name)
    kwargs: dict[str, Any] = {"num_classes": 0, **vit_defaults(name), **timm_kwargs}
    return timm.create_model(name, pretrained=bool(pretrained), **kwargs)
