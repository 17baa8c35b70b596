"""timm models by timm name: the factory under :mod:`ssl4gie.backbones` and :mod:`ssl4gie.zoo`.

Both build their models here, so neither imports the other to make a model: ``backbones``
resolves every kind of backbone name (and imports the zoo for weights sources), the zoo builds
timm architectures through this module only.
"""

from __future__ import annotations

import functools
from typing import Any

import timm
from torch import nn

from ssl4gie.errors import InputError, did_you_mean
from ssl4gie.zoo.registry import list_backbones


@functools.cache
def timm_names() -> frozenset[str]:
    """Every architecture ``timm.list_models()`` knows (without pretrained tags)."""
    return frozenset(timm.list_models())


def check_timm_name(name: str) -> str:
    """Return ``name`` if timm can build it, else raise InputError listing close matches among
    zoo names (``ssl4gie zoo list``) and timm names."""
    architecture = name.split(".", 1)[0]
    if architecture not in timm_names():
        zoo_match = did_you_mean(name, list_backbones())
        raise InputError(
            f"unknown backbone {name!r}{zoo_match or did_you_mean(architecture, timm_names())};"
            " give a zoo name ('ssl4gie zoo list'), a timm model name (timm.list_models()), an"
            " hf-hub: id, an export folder or a checkpoint"
        )
    return name


def vit_defaults(name: str) -> dict[str, Any]:
    """``{"dynamic_img_size": True}`` for transformers named like timm's ViTs, else ``{}``: one
    model then takes 224 px global and 96 px local crops."""
    return {"dynamic_img_size": True} if name.startswith(("vit_", "deit", "beit", "eva")) else {}


def create_timm_backbone(name: str, pretrained: bool = False, **timm_kwargs: Any) -> nn.Module:
    """``timm.create_model(name, num_classes=0, ...)`` with :func:`vit_defaults`, after
    :func:`check_timm_name`: ``model(x)`` maps ``[B, 3, H, W]`` to ``[B, model.num_features]``."""
    check_timm_name(name)
    kwargs: dict[str, Any] = {"num_classes": 0, **vit_defaults(name), **timm_kwargs}
    return timm.create_model(name, pretrained=pretrained, **kwargs)
