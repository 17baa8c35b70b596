"""Soft Dice loss for segmentation [Milletari et al. 2016, V-Net, arXiv:1606.04797].

Per image ``b`` and channel ``k``, with probabilities ``p`` and a one-hot (or binary) target ``g``
over the pixels ``i``:

``dice[b, k] = (2 * sum_i p_i g_i + smooth) / (sum_i p_i + sum_i g_i + smooth)``

and the loss is ``1 - mean_{b, k} dice[b, k]``. Deviation from V-Net: the denominator sums
``p`` and ``g``, not their squares (the common "soft Dice" of segmentation code, e.g. the
SoftDiceLoss of the SSL4GIE authors' polyp-segmentation code); ``smooth = 1`` makes an image
with an empty target and an empty prediction score 1 instead of 0 / 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl4gie.errors import InputError

__all__ = ["dice_bce_loss", "dice_loss", "soft_dice_loss"]


def _check(probs: Tensor, target: Tensor) -> None:
    if probs.shape != target.shape or probs.ndim != 4:
        raise InputError(
            f"soft_dice_loss: probs and target must both be [B, K, H, W], got "
            f"{tuple(probs.shape)} and {tuple(target.shape)}; one-hot encode the mask first"
        )


def soft_dice_loss(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """``1 - mean`` soft Dice over images and channels (module docstring).

    Args:
        probs: ``[B, K, H, W]`` probabilities (sigmoid for one channel, softmax for K classes).
        target: ``[B, K, H, W]`` in {0, 1} (binary mask or one-hot classes), any dtype.
        smooth: added to numerator and denominator (1 as in common polyp-segmentation code).

    Returns:
        a scalar in ``[0, 1]``.

    Examples:
        >>> mask = torch.zeros(2, 1, 8, 8)
        >>> mask[:, :, 2:6, 2:6] = 1
        >>> float(soft_dice_loss(mask, mask, smooth=0.0))
        0.0
    """
    _check(probs, target)
    target = target.to(probs.dtype)
    intersection = (probs * target).sum(dim=(2, 3))
    total = probs.sum(dim=(2, 3)) + target.sum(dim=(2, 3))
    return 1 - ((2 * intersection + smooth) / (total + smooth)).mean()


def _probs_and_target(logits: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, 1 or K, H, W]`` logits and ``[B, H, W]`` class ids -> probabilities and a target of
    the same shape (sigmoid and ``mask > 0`` for one channel; softmax and one-hot for K)."""
    if logits.ndim != 4 or mask.shape != (logits.shape[0], *logits.shape[2:]):
        raise InputError(
            f"dice loss: logits must be [B, K, H, W] and mask [B, H, W], got "
            f"{tuple(logits.shape)} and {tuple(mask.shape)}"
        )
    if logits.shape[1] == 1:
        return torch.sigmoid(logits), (mask > 0).unsqueeze(1)
    target = F.one_hot(mask.long(), logits.shape[1]).permute(0, 3, 1, 2)
    return logits.softmax(dim=1), target


def dice_loss(logits: Tensor, mask: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice from logits: ``[B, 1, H, W]`` (sigmoid, foreground ``mask > 0``) or
    ``[B, K, H, W]`` with ``K >= 2`` (softmax over classes ``0..K-1``, all K channels averaged);
    ``mask`` holds the class id per pixel ``[B, H, W]``.

    Examples:
        >>> logits, mask = torch.randn(2, 1, 32, 32), torch.randint(0, 2, (2, 32, 32))
        >>> dice_loss(logits, mask).shape
        torch.Size([])
    """
    probs, target = _probs_and_target(logits, mask)
    return soft_dice_loss(probs, target, smooth)


def dice_bce_loss(logits: Tensor, mask: Tensor, smooth: float = 1.0) -> Tensor:
    """:func:`dice_loss` plus cross-entropy (binary for one channel, multi-class for K), the
    common combination for polyp segmentation. Shapes as :func:`dice_loss`.

    Examples:
        >>> logits, mask = torch.randn(2, 4, 32, 32), torch.randint(0, 4, (2, 32, 32))  # 4 classes
        >>> dice_bce_loss(logits, mask).shape
        torch.Size([])
    """
    probs, target = _probs_and_target(logits, mask)
    if logits.shape[1] == 1:
        cross_entropy = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    else:
        cross_entropy = F.cross_entropy(logits, mask.long())
    return soft_dice_loss(probs, target, smooth) + cross_entropy
