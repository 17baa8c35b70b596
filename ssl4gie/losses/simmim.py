"""SimMIM masked-pixel L1 loss [Xie et al. 2022, "SimMIM: A Simple Framework for Masked Image
Modeling", arXiv:2111.09886; microsoft/SimMIM ``models/simmim.py``]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl4gie.errors import InputError

__all__ = ["simmim_loss"]

_EPS = 1e-5  # added to the masked-pixel count, as the official ``SimMIM.forward``


def simmim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 distance on the masked pixels, per masked pixel and channel.

    "an l1 loss is employed on the masked pixels: L = 1/Omega(x_M) ||y_M - x_M||_1, where
    [...] Omega(.) is the number of elements" [Xie et al. 2022, Eq. 1]. As the official code:
    ``sum(|pred - target| * mask) / (sum(mask) + 1e-5) / C`` with the mask counted once per
    pixel. The value is this process's; with the same mask count on every process (a fixed
    ratio), its mean over processes is the joint-batch loss. To skip pixels that are not scene
    (burnt-in overlays, the border), multiply ``mask`` by the view's scene mask.

    Args:
        pred: Reconstructed images ``[N, C, H, W]``.
        target: Input images ``[N, C, H, W]`` (normalised, as the encoder saw them).
        mask: ``[N, H, W]``, 1 for masked pixels (the patch mask upsampled to pixels).

    Returns:
        The scalar loss.

    Examples:
        >>> x, mask = torch.randn(2, 3, 8, 8), torch.ones(2, 8, 8)
        >>> float(simmim_loss(x, x, mask))
        0.0
    """
    if (
        pred.shape != target.shape
        or pred.ndim != 4
        or mask.shape != (*pred.shape[:1], *pred.shape[2:])
    ):
        raise InputError(
            f"simmim_loss: need pred and target [N, C, H, W] and mask [N, H, W], got "
            f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(mask.shape)}"
        )
    mask = mask.unsqueeze(1).to(pred.dtype)  # [N, 1, H, W]
    l1 = F.l1_loss(pred, target, reduction="none")
    return (l1 * mask).sum() / (mask.sum() + _EPS) / pred.shape[1]
