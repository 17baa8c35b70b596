"""Semantic segmentation: polyps (Kvasir-SEG, CVC-ClinicDB) and multi-class masks (ACDC).

CNN and hierarchical backbones go through a segmentation-models-pytorch decoder (DeepLabV3+ as in
SSL4GIE, U-Net as in the convergence study, or FPN) whose timm encoder (``"tu-<architecture>"``,
built without weights) receives our backbone's weights; ``self.backbone`` then is that encoder
(``model.encoder.model``), so freezing and layer decay act on the weights in use. ViTs go through
DPT (:mod:`~ssl4gie.tasks.decoders.dpt`, blocks 3/6/9/12 of ViT-B).

Classes count the background: ``num_classes=2`` (polyp) predicts one channel (sigmoid,
foreground where the logit is > 0); ``num_classes=K > 2`` predicts K channels (softmax, argmax).
Loss: soft Dice (SSL4GIE), or soft Dice + cross-entropy (``loss="dice_bce"``).

Metrics (:class:`~ssl4gie.tasks.metrics.OverlapMetrics`): Dice, IoU, precision and recall per
image and foreground class, averaged over images. Where validation and test batches carry
``full_mask`` (the readers' ``full_masks: true``), each image is scored at its original mask size,
as SSL4GIE does (ESandML/SSL4GIE ``Binary_segmentation/eval_segmentation.py`` resizes the logits
to the target's size): its logits are upsampled bilinearly to that size before thresholding.
Otherwise, and always in training, the metrics use the batch's mask at the DataModule's ``size``.
"""

from __future__ import annotations

from typing import Any, Literal

import segmentation_models_pytorch as smp
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MetricCollection

from ssl4gie.backbones import is_vit
from ssl4gie.errors import InputError
from ssl4gie.losses.dice import dice_bce_loss, dice_loss
from ssl4gie.tasks.base import TaskModule, check_class_ids
from ssl4gie.tasks.decoders import (
    DenseModel,
    copy_weights_by_name,
    pyramid_encoder,
    pyramid_indices,
    segmentation_head,
)
from ssl4gie.tasks.metrics import OverlapMetrics
from ssl4gie.transforms.finetune import SegmentationAugment

__all__ = ["SegmentationTask", "smp_model"]

Decoder = Literal["deeplabv3plus", "unet", "fpn"]
SMP_ARCHITECTURES = {"deeplabv3plus": "DeepLabV3Plus", "unet": "Unet", "fpn": "FPN"}
LOSSES = {"dice": dice_loss, "dice_bce": dice_bce_loss}


def smp_model(backbone: nn.Module, decoder: Decoder, channels: int) -> nn.Module:
    """A segmentation-models-pytorch model whose timm encoder holds ``backbone``'s weights.

    ``[B, 3, H, W]`` -> logits ``[B, channels, H, W]``. Raises :class:`InputError` for a backbone
    without a stride 4..32 pyramid.
    """
    pyramid_indices(backbone)
    architecture = backbone.pretrained_cfg["architecture"]
    model = smp.create_model(
        SMP_ARCHITECTURES[decoder],
        encoder_name=f"tu-{architecture}",
        encoder_weights=None,
        classes=channels,
    )
    copy_weights_by_name(model.encoder.model, backbone)
    return model


class SegmentationTask(TaskModule):
    """Segment images into ``num_classes`` classes (background included).

    Args:
        backbone, pretrained, backbone_kwargs, freeze_backbone, lr, weight_decay, layer_decay,
            patience, augment: see :class:`~ssl4gie.tasks.base.TaskModule`.
        num_classes: classes including the background (2 for polyps, 4 for ACDC); masks with
            other values raise :class:`InputError`.
        decoder: the smp decoder for CNN backbones (ViTs always use DPT).
        loss: ``"dice"`` (SSL4GIE) or ``"dice_bce"``.
        dpt_blocks: 0-based ViT blocks DPT taps (None: evenly spaced, 2/5/8/11 for 12 blocks).

    Examples:
        >>> import torch
        >>> task = SegmentationTask("resnet18", num_classes=2, decoder="fpn")
        >>> task(torch.randn(2, 3, 64, 64)).shape  # one channel: foreground where > 0
        torch.Size([2, 1, 64, 64])
    """

    monitor = "val_dice"
    monitor_mode = "max"
    default_augment = SegmentationAugment
    picture_titles = ("image", "ground truth", "prediction")

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 2,
        decoder: Decoder = "deeplabv3plus",
        loss: Literal["dice", "dice_bce"] = "dice",
        dpt_blocks: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if num_classes < 2:
            raise InputError(
                f"num_classes counts the background and must be >= 2, got {num_classes}"
            )
        if decoder not in SMP_ARCHITECTURES or loss not in LOSSES:
            raise InputError(
                f"decoder must be one of {list(SMP_ARCHITECTURES)} and loss one of "
                f"{list(LOSSES)}, got {decoder!r} and {loss!r}"
            )
        self.num_classes = num_classes
        super().__init__(backbone, **kwargs)

    @property
    def channels(self) -> int:
        """Output channels: 1 (sigmoid) for two classes, else one per class (softmax)."""
        return 1 if self.num_classes == 2 else self.num_classes

    def configure_models(self) -> None:
        if is_vit(self.backbone):
            encoder = pyramid_encoder(self.backbone, self.hparams.dpt_blocks)
            self.model = DenseModel(encoder, segmentation_head(256, self.channels))
        else:
            self.model = smp_model(self.backbone, self.hparams.decoder, self.channels)
            self.backbone = self.model.encoder.model

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"overlap": OverlapMetrics(self.num_classes)})

    def check_batch(self, batch: dict[str, Any]) -> None:
        check_class_ids(batch["mask"], self.num_classes, "mask")

    def forward(self, images: Tensor) -> Tensor:
        """Normalised images ``[B, 3, H, W]`` -> logits ``[B, channels, H, W]``."""
        return self.model(images)

    def predict_classes(self, logits: Tensor) -> Tensor:
        """Logits ``[B, channels, H, W]`` -> class ids ``[B, H, W]``."""
        return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)

    def loss_and_output(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        logits = self(batch["image"])
        loss = LOSSES[self.hparams.loss](logits, batch["mask"])
        return loss, logits.detach()

    def update_metrics(self, metrics: MetricCollection, output: Tensor, batch: dict) -> None:
        """Score logits ``[B, channels, h, w]`` against ``full_mask`` (each ``[H_i, W_i]``, the
        logits upsampled; validation and test) where the batch has it, else ``mask [B, h, w]``."""
        if "full_mask" not in batch or self.training:
            metrics.update(self.predict_classes(output), batch["mask"].long())
            return
        for logits, mask in zip(output, batch["full_mask"], strict=True):
            resized = F.interpolate(logits[None], size=mask.shape, mode="bilinear")
            metrics.update(self.predict_classes(resized), mask[None].long())

    def picture_rows(self, batch: dict[str, Any], output: Tensor) -> list[list[Tensor]]:
        output = self.predict_classes(output)
        images = self.display_images(batch)
        scale = 1.0 / (self.num_classes - 1)
        return [
            [image, mask.float() * scale, predicted.float() * scale]
            for image, mask, predicted in zip(images, batch["mask"], output, strict=False)
        ]
