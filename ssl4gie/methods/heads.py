"""Projection and prediction heads: one MLP builder for every method.

Each method's file names the paper's sizes; the layer pattern is the official one:

- MoCo v3 (facebookresearch/moco-v3 ``builder.py`` ``_build_mlp``): ``Linear(bias=False)``,
  BN, ReLU per hidden layer; the last ``Linear(bias=False)`` is followed by
  ``BN(affine=False)`` in the projectors (and the ViT predictor), not in the ResNet predictor.
- Barlow Twins (facebookresearch/barlowtwins ``main.py``): ``Linear(bias=False)``, BN, ReLU;
  last ``Linear(bias=False)``; the loss standardises the output.
- BYOL (Grill et al. 2020, Sec. 3.3): ``Linear``, BN, ReLU, ``Linear``.
- SimCLR (Chen et al. 2020, Sec. 2.1): ``Linear``, BN, ReLU, ``Linear``.

The heads hold plain ``BatchNorm1d``; :func:`ssl4gie.nn.distributed_batchnorm` turns them
(with the backbone's) into global-batch norms under DDP, as the official code's SyncBatchNorm.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from ssl4gie.errors import InputError

__all__ = ["mlp"]


def mlp(dims: Sequence[int], bias: bool = True, last_bn: bool = False) -> nn.Sequential:
    """An MLP ``dims[0] -> dims[1] -> ... -> dims[-1]``, ``[N, dims[0]] -> [N, dims[-1]]``.

    Every layer but the last is ``Linear(bias) -> BatchNorm1d -> ReLU``; the last is
    ``Linear(bias)``, followed by ``BatchNorm1d(affine=False)`` if ``last_bn``.

    Example:
        >>> head = mlp([2048, 4096, 256], bias=False, last_bn=True)
        >>> [type(layer).__name__ for layer in head]
        ['Linear', 'BatchNorm1d', 'ReLU', 'Linear', 'BatchNorm1d']
        >>> head[-1].affine
        False
    """
    if len(dims) < 2 or min(dims) < 1:
        raise InputError(f"an MLP needs at least 2 positive sizes (input, output), got {dims}")
    layers: list[nn.Module] = []
    for index, (dim_in, dim_out) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(dim_in, dim_out, bias=bias))
        if index < len(dims) - 2:
            layers += [nn.BatchNorm1d(dim_out), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(dim_out, affine=False))
    return nn.Sequential(*layers)
