"""ssl4gie: self-supervised pretraining and fine-tuning for gastrointestinal endoscopy.

The public API stays small: backbones come from :mod:`ssl4gie.zoo` (``load_backbone``,
``load_transforms``, ``list_backbones``, ``backbone_card``, ``register_backbone``,
``export_backbone``, imported on first use so ``import ssl4gie`` does not import torch),
pretraining methods live in :mod:`ssl4gie.methods`, downstream tasks in :mod:`ssl4gie.tasks`,
losses in :mod:`ssl4gie.losses` and data in :mod:`ssl4gie.data`.
"""

__version__ = "0.1.0.dev0"
"""The installed version (PEP 440), also printed by ``ssl4gie --version``."""

_ZOO_API = (
    "load_backbone",
    "list_backbones",
    "backbone_card",
    "load_transforms",
    "register_backbone",
    "export_backbone",
)

__all__ = ["__version__", *_ZOO_API]


def __getattr__(name: str):
    if name in _ZOO_API:
        import importlib

        return getattr(importlib.import_module("ssl4gie.zoo"), name)
    raise AttributeError(f"module 'ssl4gie' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ZOO_API))
