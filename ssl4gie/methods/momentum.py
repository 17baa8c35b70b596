"""MomentumEncoder: the exponential-moving-average copy of online modules (MoCo v3's momentum
encoder, BYOL's target network, DINO's teacher); :class:`~ssl4gie.methods.base.SSLMethod` updates
every one it holds after each optimiser step."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from timm.layers import DropBlock2d, DropPath
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from ssl4gie.errors import InputError

__all__ = ["MomentumEncoder"]


class MomentumEncoder(nn.Module):
    """A frozen copy of online modules, kept as their exponential moving average.

    MoCo v3's momentum encoder and BYOL's target network: after every optimiser step,
    ``theta_m <- tau * theta_m + (1 - tau) * theta`` with ``tau`` from
    :func:`~ssl4gie.methods.schedules.cosine_momentum` starting at ``base_momentum``. Only
    parameters are averaged; the copy's batch-norm buffers follow its own forward passes (in
    training mode, as in the official code). As a submodule, it is saved in checkpoints.

    The copy is deterministic: its stochastic depth (timm ``DropPath``, which every timm model
    uses for ``drop_path_rate``), ``DropBlock2d`` and dropout are switched off, whatever the
    online modules use, as the official DINO teacher is built without ``drop_path_rate``
    (facebookresearch/dino ``main_dino.py``: ``teacher = vits.__dict__[args.arch](patch_size=...)``)
    and the MoCo v3 and BYOL targets have none.

    Args:
        online: the online modules applied in sequence, e.g. ``[backbone, projector]``.
        base_momentum: ``tau`` at the start of training, in [0, 1].
    """

    def __init__(self, online: Sequence[nn.Module], base_momentum: float) -> None:
        super().__init__()
        if not 0.0 <= base_momentum <= 1.0:
            raise InputError(f"base_momentum must be in [0, 1], got {base_momentum}")
        self.base_momentum = base_momentum
        self.encoder = copy.deepcopy(nn.Sequential(*online)).requires_grad_(False)
        _disable_stochastic_layers(self.encoder)
        self._online = tuple(online)  # plain tuple: not registered twice in the state dict

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> the momentum projection ``[B, dim]``, without gradient."""
        return self.encoder(x)

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        """Move the copy's parameters towards the online ones: ``lerp(theta_m, theta, 1 - tau)``."""
        online = [p for module in self._online for p in module.parameters()]
        torch._foreach_lerp_(list(self.encoder.parameters()), online, 1.0 - momentum)


def _disable_stochastic_layers(module: nn.Module) -> None:
    """Set every drop path, drop block and dropout probability in ``module`` to 0, in place."""
    for layer in module.modules():
        if isinstance(layer, DropPath | DropBlock2d):
            layer.drop_prob = 0.0
        elif isinstance(layer, _DropoutNd):
            layer.p = 0.0
