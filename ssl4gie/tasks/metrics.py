"""Metrics of the dense tasks as torchmetrics ``Metric`` subclasses (synchronised under DDP).

Both average a per-image score over the images of an epoch, as SSL4GIE reports them (the
classification and detection metrics come from torchmetrics directly).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from ssl4gie.errors import InputError
from ssl4gie.losses.depth import align_scale_shift

__all__ = ["AlignedDepthMetrics", "OverlapMetrics", "overlap_scores"]

OVERLAP_NAMES = ("dice", "iou", "precision", "recall")
DEPTH_NAMES = ("rmse", "abs_rel", "median_rel", "mae", "delta1")


def _ratio(numerator: Tensor, denominator: Tensor, both_empty: Tensor) -> Tensor:
    """``numerator / denominator``; where the denominator is 0: 1 if prediction and ground truth
    are both empty (perfect agreement), else 0."""
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    empty_score = both_empty.to(numerator.dtype)
    return torch.where(denominator > 0, numerator / safe, empty_score)


def overlap_scores(predicted: Tensor, target: Tensor, num_classes: int) -> dict[str, Tensor]:
    """Dice, IoU, precision and recall per image and foreground class.

    Args:
        predicted, target: int ``[B, H, W]`` class ids in ``0..num_classes-1`` (0 background).
        num_classes: classes including the background (2 for polyps, 4 for ACDC).

    Returns:
        ``{"dice", "iou", "precision", "recall"}`` each float ``[B, num_classes - 1]``, with
        ``TP, FP, FN`` counted per image: ``dice = 2TP / (2TP + FP + FN)``, ``iou = TP / (TP + FP
        + FN)``, ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``. A zero denominator
        scores 1 when the image has neither predicted nor true pixels of the class, else 0 (an
        empty prediction of a present class has precision 0; a prediction on an absent class has
        recall 0).
    """
    if predicted.shape != target.shape or target.ndim != 3:
        raise InputError(
            f"overlap metrics: predicted and target must both be [B, H, W], got "
            f"{tuple(predicted.shape)} and {tuple(target.shape)}"
        )
    classes = torch.arange(1, num_classes, device=target.device).view(1, -1, 1, 1)
    pred = predicted.unsqueeze(1) == classes  # [B, C-1, H, W]
    true = target.unsqueeze(1) == classes
    tp = (pred & true).sum(dim=(2, 3)).float()
    fp = (pred & ~true).sum(dim=(2, 3)).float()
    fn = (~pred & true).sum(dim=(2, 3)).float()
    empty = (tp + fp + fn) == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, empty),
        "iou": _ratio(tp, tp + fp + fn, empty),
        "precision": _ratio(tp, tp + fp, empty),
        "recall": _ratio(tp, tp + fn, empty),
    }


class _MeanOfScores(Metric):
    """Sums named per-item scores and their count; :meth:`compute` returns the means."""

    names: tuple[str, ...] = ()
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in self.names:
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _accumulate(self, scores: dict[str, Tensor]) -> None:
        for name in self.names:
            setattr(self, name, getattr(self, name) + scores[name].double().sum())
        self.count = self.count + scores[self.names[0]].numel()

    def compute(self) -> dict[str, Tensor]:
        count = self.count.clamp(min=1)
        return {name: (getattr(self, name) / count).float() for name in self.names}


class OverlapMetrics(_MeanOfScores):
    """Mean per-image Dice, IoU, precision and recall over images and foreground classes.

    ``update(predicted, target)`` takes int ``[B, H, W]`` class-id maps; see
    :func:`overlap_scores` for the formulas and the empty-mask convention.
    """

    names = OVERLAP_NAMES

    def __init__(self, num_classes: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_classes < 2:
            raise InputError(
                f"num_classes counts the background and must be >= 2, got {num_classes}"
            )
        self.num_classes = num_classes

    def update(self, predicted: Tensor, target: Tensor) -> None:
        self._accumulate(overlap_scores(predicted, target, self.num_classes))


def aligned_depth_scores(prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Depth errors per image after least-squares scale/shift alignment over valid pixels.

    Args:
        prediction: ``[B, H, W]`` predicted depth (any scale and offset).
        target: ``[B, H, W]`` depth in mm, 0 where invalid.

    Returns:
        ``{"rmse", "abs_rel", "median_rel", "mae", "delta1"}`` each ``[B']`` over the ``B'``
        images with valid pixels. With ``d_hat = s d + t`` (:func:`~ssl4gie.losses.depth.
        scale_shift`), over valid pixels: RMSE ``sqrt(mean (d_hat - d*)^2)``, MAE
        ``mean |d_hat - d*|``, absolute relative error ``mean |d_hat - d*| / d*``, median
        relative error ``median |d_hat - d*| / d*``, and ``delta1`` the share of pixels with
        ``max(d_hat / d*, d* / d_hat) < 1.25`` (``d_hat`` clamped to >= 1e-6 for the ratio).
    """
    mask = target > 0
    aligned = align_scale_shift(prediction.float(), target.float(), mask)
    keep = mask.flatten(1).any(dim=1)
    rows = []
    for d_hat, d_true, valid in zip(aligned[keep], target[keep], mask[keep], strict=True):
        d_hat, d_true = d_hat[valid], d_true[valid].float()
        error = d_hat - d_true
        relative = error.abs() / d_true
        ratio = torch.maximum(d_hat.clamp(min=1e-6) / d_true, d_true / d_hat.clamp(min=1e-6))
        rows.append(
            torch.stack(
                [
                    error.pow(2).mean().sqrt(),
                    relative.mean(),
                    relative.quantile(0.5),
                    error.abs().mean(),
                    (ratio < 1.25).float().mean(),
                ]
            )
        )
    table = torch.stack(rows) if rows else prediction.new_zeros(0, len(DEPTH_NAMES))
    return dict(zip(DEPTH_NAMES, table.unbind(dim=1), strict=True))


class AlignedDepthMetrics(_MeanOfScores):
    """Mean per-image RMSE, abs. rel., median rel., MAE and delta < 1.25 after per-image
    scale/shift alignment (SSL4GIE depth protocol; :func:`aligned_depth_scores`).

    ``update(prediction, target)`` takes ``[B, H, W]`` (or ``[B, 1, H, W]``) maps; images
    without a valid pixel are skipped.
    """

    names = DEPTH_NAMES

    def update(self, prediction: Tensor, target: Tensor) -> None:
        if prediction.ndim == 4:
            prediction, target = prediction.squeeze(1), target.squeeze(1)
        self._accumulate(aligned_depth_scores(prediction, target))
