"""Self-supervised pretraining methods as LightningModules on :class:`SSLMethod`.

>>> method = create_method("mocov3", backbone="resnet18")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ssl4gie.errors import check_choice
from ssl4gie.methods.barlow_twins import BarlowTwins
from ssl4gie.methods.base import MomentumEncoder, NonFiniteLossError, Recipe, SSLMethod
from ssl4gie.methods.byol import BYOL
from ssl4gie.methods.dino import DINO
from ssl4gie.methods.mae import MAE
from ssl4gie.methods.mocov3 import MoCoV3
from ssl4gie.methods.simclr import SimCLR
from ssl4gie.methods.simmim import MaskedImageModeling
from ssl4gie.methods.swav import SwAV

__all__ = [
    "BYOL",
    "DINO",
    "MAE",
    "METHODS",
    "BarlowTwins",
    "MaskedImageModeling",
    "MoCoV3",
    "MomentumEncoder",
    "NonFiniteLossError",
    "Recipe",
    "SSLMethod",
    "SimCLR",
    "SwAV",
    "create_method",
]

METHODS: dict[str, type[SSLMethod]] = {
    "mocov3": MoCoV3,
    "barlow_twins": BarlowTwins,
    "byol": BYOL,
    "simclr": SimCLR,
    "dino": DINO,
    "mae": MAE,
    "simmim": MaskedImageModeling,
    "swav": SwAV,
}
"""Method name -> class: the names :func:`create_method` takes (the class paths of the pretrain
configs are ``ssl4gie.methods.<Class>``)."""


def create_method(name: str, **kwargs: Any) -> SSLMethod:
    """The method ``name`` (a key of :data:`METHODS`) built with ``kwargs``; an unknown name
    raises :class:`~ssl4gie.errors.InputError` with close matches.

    Examples:
        >>> method = create_method("barlow_twins", backbone="resnet18", projector_dims=[64, 64])
        >>> type(method).__name__, method.recipe.optimizer
        ('BarlowTwins', 'lars')
    """
    return METHODS[check_choice("method", name, METHODS)](**kwargs)
