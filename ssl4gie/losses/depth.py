"""Scale-and-shift-invariant depth losses [Ranftl et al. 2020, MiDaS, arXiv:1907.01341, Sec. 5].

MiDaS aligns each prediction to its target by least squares before comparing them, so a network
is free in the unknown scale and shift of monocular depth. With the valid-pixel mask ``m``
(``depth > 0``), prediction ``d`` and target ``d*`` of one image (``M = sum m`` pixels):

- alignment (MiDaS eq. 4): ``(s, t) = argmin sum_i m_i (s d_i + t - d*_i)^2``, solved in closed
  form from the 2x2 normal equations; ``d_hat = s d + t``.
- :func:`ssi_mse_loss` (eq. 5 with the squared error): ``sum_i m_i (d_hat_i - d*_i)^2 / (2M)``.
- :func:`gradient_matching_loss` (eq. 11): with ``R = d_hat - d*`` and ``K = 4`` scales (every
  ``2^k``-th pixel), ``sum_k sum_i |grad_x R^k_i| + |grad_y R^k_i| / M`` over pixel pairs that
  are both valid.
- :func:`ssi_depth_loss`: ``ssi_mse + alpha * gradient_matching``; SSL4GIE uses ``alpha = 0.1``
  (MiDaS 0.5).

Like the MiDaS reference code, sums run over the whole batch before dividing by the batch's valid
pixels ("batch-based" reduction), and a batch without valid pixels gives 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssl4gie.errors import InputError

__all__ = [
    "align_scale_shift",
    "gradient_matching_loss",
    "scale_shift",
    "ssi_depth_loss",
    "ssi_mse_loss",
]


def _check(prediction: Tensor, target: Tensor, mask: Tensor) -> None:
    if prediction.shape != target.shape or mask.shape != target.shape or target.ndim != 3:
        raise InputError(
            f"depth loss: prediction, target and mask must all be [B, H, W], got "
            f"{tuple(prediction.shape)}, {tuple(target.shape)} and {tuple(mask.shape)}; "
            "squeeze the channel dimension first"
        )


def scale_shift(prediction: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares scale and shift per image (MiDaS eq. 4).

    Args:
        prediction, target: ``[B, H, W]``.
        mask: ``[B, H, W]`` bool, the pixels to fit (``target > 0``).

    Returns:
        ``scale, shift`` each ``[B]``; ``(1, 0)`` where the fit is undetermined (fewer than two
        distinct predicted values among the valid pixels).
    """
    _check(prediction, target, mask)
    m = mask.to(prediction.dtype)
    a00 = (m * prediction * prediction).sum(dim=(1, 2))
    a01 = (m * prediction).sum(dim=(1, 2))
    a11 = m.sum(dim=(1, 2))
    b0 = (m * prediction * target).sum(dim=(1, 2))
    b1 = (m * target).sum(dim=(1, 2))
    det = a00 * a11 - a01 * a01
    solvable = det > 1e-12 * a11.clamp(min=1) ** 2
    safe_det = torch.where(solvable, det, torch.ones_like(det))
    scale = torch.where(solvable, (a11 * b0 - a01 * b1) / safe_det, torch.ones_like(det))
    shift = torch.where(solvable, (a00 * b1 - a01 * b0) / safe_det, torch.zeros_like(det))
    return scale, shift


def align_scale_shift(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``[B, H, W]`` prediction -> ``s * prediction + t`` with the per-image least-squares fit."""
    scale, shift = scale_shift(prediction, target, mask)
    return scale.view(-1, 1, 1) * prediction + shift.view(-1, 1, 1)


def _batch_mean(total: Tensor, count: Tensor) -> Tensor:
    """``total / count``, 0 where nothing was counted (MiDaS ``reduction_batch_based``)."""
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def _mse(aligned: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    residual = (aligned - target) * mask
    return _batch_mean(residual.pow(2).sum(), 2 * mask.sum())


def _gradients(aligned: Tensor, target: Tensor, mask: Tensor, scales: int) -> Tensor:
    total = aligned.new_zeros(())
    m = mask.to(aligned.dtype)
    for k in range(scales):
        step = 2**k
        residual = ((aligned - target) * m)[:, ::step, ::step]
        valid = m[:, ::step, ::step]
        grad_x = (
            (residual[:, :, 1:] - residual[:, :, :-1]).abs() * valid[:, :, 1:] * valid[:, :, :-1]
        )
        grad_y = (residual[:, 1:] - residual[:, :-1]).abs() * valid[:, 1:] * valid[:, :-1]
        total = total + _batch_mean(grad_x.sum() + grad_y.sum(), valid.sum())
    return total


def ssi_mse_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Scale-and-shift-invariant MSE; ``[B, H, W]`` each (``mask`` bool) -> scalar.

    Examples:
        >>> target = torch.rand(2, 32, 32) + 0.5
        >>> ssi_mse_loss(torch.rand(2, 32, 32), target, target > 0).shape
        torch.Size([])
    """
    aligned = align_scale_shift(prediction, target, mask)
    return _mse(aligned, target, mask.to(prediction.dtype))


def gradient_matching_loss(
    prediction: Tensor, target: Tensor, mask: Tensor, scales: int = 4
) -> Tensor:
    """Multi-scale gradient matching of the aligned prediction; ``[B, H, W]`` each -> scalar.

    Examples:
        >>> target = torch.rand(2, 32, 32) + 0.5
        >>> gradient_matching_loss(torch.rand(2, 32, 32), target, target > 0).shape
        torch.Size([])
    """
    aligned = align_scale_shift(prediction, target, mask)
    return _gradients(aligned, target, mask, scales)


def ssi_depth_loss(
    prediction: Tensor, target: Tensor, mask: Tensor, alpha: float = 0.1, scales: int = 4
) -> Tensor:
    """``ssi_mse + alpha * gradient_matching`` with one alignment (SSL4GIE: ``alpha = 0.1``).

    Args:
        prediction: ``[B, H, W]`` predicted depth (any scale and offset).
        target: ``[B, H, W]`` ground-truth depth.
        mask: ``[B, H, W]`` bool, valid pixels (``target > 0``).
        alpha: weight of the gradient-matching term (>= 0).
        scales: number of scales of the gradient term (MiDaS: 4).

    Examples:
        >>> target = torch.rand(2, 32, 32) + 0.5
        >>> round(float(ssi_depth_loss(3 * target + 1, target, target > 0)), 5)  # scale, shift
        0.0
    """
    if alpha < 0 or scales < 1:
        raise InputError(f"ssi_depth_loss: need alpha >= 0 and scales >= 1, got {alpha}, {scales}")
    aligned = align_scale_shift(prediction, target, mask)
    loss = _mse(aligned, target, mask.to(prediction.dtype))
    if alpha > 0:
        loss = loss + alpha * _gradients(aligned, target, mask, scales)
    return loss
