"""Monocular depth estimation on C3VD (SSL4GIE protocol).

ViTs get DPT's depth head over blocks 3/6/9/12 (ViT-B); CNNs the same residual fusion decoder
over their stride 4..32 pyramid (:mod:`~ssl4gie.tasks.decoders.residual`). Loss: the
scale-and-shift-invariant MSE plus ``alpha = 0.1`` times the multi-scale gradient-matching loss
(MiDaS, Ranftl et al. 2020; :func:`~ssl4gie.losses.depth.ssi_depth_loss`) over valid pixels
(``depth > 0``: the readers mark invalid depth 0, e.g. C3VD's 0 and 65535). Metrics after
per-image least-squares scale/shift alignment over the same valid pixels
(:class:`~ssl4gie.tasks.metrics.AlignedDepthMetrics`): RMSE, absolute and median relative error,
MAE (in the target's unit, mm for C3VD) and delta < 1.25.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchmetrics import MetricCollection

from ssl4gie.errors import InputError
from ssl4gie.losses.depth import align_scale_shift, ssi_depth_loss
from ssl4gie.tasks.base import TaskModule
from ssl4gie.tasks.decoders import DenseModel, depth_head, pyramid_encoder
from ssl4gie.tasks.metrics import AlignedDepthMetrics
from ssl4gie.transforms.finetune import DepthAugment

__all__ = ["DepthTask"]


def _unit_range(depth: Tensor) -> Tensor:
    """``[H, W]`` -> scaled to [0, 1] by its own min and max, for display."""
    low, high = depth.min(), depth.max()
    return (depth - low) / (high - low).clamp(min=1e-6)


class DepthTask(TaskModule):
    """Predict depth ``[B, 1, H, W]`` from images (up to an unknown scale and shift).

    Args:
        backbone, pretrained, backbone_kwargs, freeze_backbone, lr, weight_decay, layer_decay,
            patience, augment: see :class:`~ssl4gie.tasks.base.TaskModule`.
        alpha: weight of the gradient-matching term (SSL4GIE: 0.1; MiDaS: 0.5).
        dpt_blocks: 0-based ViT blocks DPT taps (None: evenly spaced, 2/5/8/11 for 12 blocks).

    Examples:
        >>> import torch
        >>> task = DepthTask("resnet18")
        >>> task(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    monitor = "val_rmse"
    monitor_mode = "min"
    default_augment = DepthAugment
    picture_titles = ("image", "ground truth", "prediction (aligned)")

    def __init__(
        self,
        backbone: str = "resnet50",
        alpha: float = 0.1,
        dpt_blocks: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if alpha < 0:
            raise InputError(f"alpha must be >= 0, got {alpha}")
        super().__init__(backbone, **kwargs)

    def configure_models(self) -> None:
        encoder = pyramid_encoder(self.backbone, self.hparams.dpt_blocks)
        self.model = DenseModel(encoder, depth_head(256))

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"depth": AlignedDepthMetrics()})

    def forward(self, images: Tensor) -> Tensor:
        """Normalised images ``[B, 3, H, W]`` -> depth ``[B, 1, H, W]`` (unknown scale/shift)."""
        return self.model(images)

    def loss_and_output(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        prediction = self(batch["image"])[:, 0]
        target = batch["depth"][:, 0]
        loss = ssi_depth_loss(prediction, target, target > 0, alpha=self.hparams.alpha)
        return loss, prediction.detach()

    def update_metrics(self, metrics: MetricCollection, output: Tensor, batch: dict) -> None:
        metrics.update(output, batch["depth"][:, 0])

    def picture_rows(self, batch: dict[str, Any], output: Tensor) -> list[list[Tensor]]:
        target = batch["depth"][:, 0]
        aligned = align_scale_shift(output.float(), target.float(), target > 0)
        return [
            [image, _unit_range(depth), _unit_range(predicted)]
            for image, depth, predicted in zip(
                self.display_images(batch), target, aligned, strict=False
            )
        ]
