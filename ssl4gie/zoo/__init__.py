"""The model zoo: pretrained backbones by name, from the Hub, folders and released checkpoints.

>>> import ssl4gie
>>> ssl4gie.list_backbones("resnet50-*-hk")[:2]
['resnet50-barlow-hk', 'resnet50-byol-hk']

Attributes are imported on first use, so listing names does not import torch or timm.
Modules: ``cards`` (WeightsCard, the name grammar), ``registry`` (names -> cards, user zoo
indexes), ``hub`` (download, cache, verify, publish), ``convert`` (released formats -> timm),
``export`` (checkpoint -> Hub folder), ``load`` (load_backbone, load_transforms), ``readme``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "WeightsCard": "ssl4gie.zoo.cards",
    "parse_name": "ssl4gie.zoo.cards",
    "backbone_card": "ssl4gie.zoo.registry",
    "list_backbones": "ssl4gie.zoo.registry",
    "load_index": "ssl4gie.zoo.registry",
    "register_backbone": "ssl4gie.zoo.registry",
    "convert_file": "ssl4gie.zoo.convert",
    "export_backbone": "ssl4gie.zoo.export",
    "publish": "ssl4gie.zoo.hub",
    "load_backbone": "ssl4gie.zoo.load",
    "load_transforms": "ssl4gie.zoo.load",
    "readme_table": "ssl4gie.zoo.readme",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ssl4gie.zoo' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
