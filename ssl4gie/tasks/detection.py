"""Polyp detection with torchvision's Faster R-CNN (SSL4GIE protocol).

CNNs: an FPN (torchvision ``FeaturePyramidNetwork`` with the max-pooled ``"pool"`` level) over the
backbone's stride 4..32 pyramid, as Faster R-CNN R50-FPN. ViTs: ViTDet's simple feature pyramid
(:mod:`~ssl4gie.tasks.decoders.vitdet`, optional windowed attention).

Input handling: images arrive normalised by the augment, so the detector's own normalisation is
off (``image_mean=(0, 0, 0)``, ``image_std=(1, 1, 1)``), and so is its resizing: the DataModule's
``size`` is the detector's input size (SSL4GIE: native size for CNNs, 1024 px for ViTs), and
boxes stay in its pixels (xyxy). Every box is a polyp (label 1; 0 is the background).

Images without polyps (``boxes`` of shape ``[0, 4]``, also when the augmentation pushed every box
out) are kept: torchvision trains on them as negatives (RPN and box-head background only), and
the mAP counts their predictions as false positives.

Metrics: torchmetrics ``MeanAveragePrecision`` (COCO evaluation through pycocotools):
mAP@[.5:.95] ``map``, ``map_50``, ``map_75`` and ``mar_100``; validation and test only (the
detector returns losses, not boxes, in training).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.utils import draw_bounding_boxes

from ssl4gie.backbones import is_vit
from ssl4gie.errors import InputError
from ssl4gie.tasks.base import TaskModule
from ssl4gie.tasks.decoders import CNNPyramid
from ssl4gie.tasks.decoders.vitdet import SimpleFeaturePyramid
from ssl4gie.transforms.finetune import DetectionAugment

__all__ = ["DetectionTask", "FPNBackbone"]

PICTURE_SCORE = 0.5


class FPNBackbone(nn.Module):
    """CNN ``[B, 3, H, W]`` -> ``OrderedDict`` ``"0"``..``"3"`` (strides 4..32) and ``"pool"``
    (64) of ``[B, out_channels, h, w]``: torchvision's FPN over the backbone's pyramid."""

    def __init__(self, backbone: nn.Module, out_channels: int = 256) -> None:
        super().__init__()
        self.body = CNNPyramid(backbone)
        self.fpn = FeaturePyramidNetwork(
            self.body.out_channels, out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, images: Tensor) -> OrderedDict[str, Tensor]:
        levels = self.body(images)
        return self.fpn(OrderedDict((str(i), level) for i, level in enumerate(levels)))


class _KeepSize(GeneralizedRCNNTransform):
    """Faster R-CNN's input transform without its resize (the DataModule sets the size)."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        return image, target


class DetectionTask(TaskModule):
    """Detect polyps with Faster R-CNN on a backbone's feature pyramid.

    Args:
        backbone, pretrained, backbone_kwargs, freeze_backbone, lr, weight_decay, layer_decay,
            patience, augment: see :class:`~ssl4gie.tasks.base.TaskModule`.
        num_classes: object classes plus background (2: polyp).
        window_size: ViTs only: windowed attention with this many patches per window side in
            all but four blocks (ViTDet uses 14); None: global attention everywhere.
        rois_per_image: proposals sampled per image to train the box head (torchvision: 512;
            the box head's cost grows with it, fewer make small CPU runs fast).

    Examples:
        >>> task = DetectionTask("resnet18").eval()
        >>> detections = task.model([torch.randn(3, 128, 128)])  # torchvision's Faster R-CNN output
        >>> sorted(detections[0])
        ['boxes', 'labels', 'scores']
    """

    monitor = "val_map"
    monitor_mode = "max"
    default_augment = DetectionAugment
    logged_metrics = ("map", "map_50", "map_75", "mar_100")
    picture_titles = ("ground truth", f"prediction (score > {PICTURE_SCORE})")

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 2,
        window_size: int | None = None,
        rois_per_image: int = 512,
        **kwargs: Any,
    ) -> None:
        if num_classes < 2:
            raise InputError(
                f"num_classes counts the background and must be >= 2, got {num_classes}"
            )
        if window_size is not None and window_size < 1:
            raise InputError(f"window_size must be >= 1 or null, got {window_size}")
        self.num_classes = num_classes
        super().__init__(backbone, **kwargs)

    def configure_models(self) -> None:
        if is_vit(self.backbone):
            features = SimpleFeaturePyramid(self.backbone, window_size=self.hparams.window_size)
        else:
            features = FPNBackbone(self.backbone)
        self.model = FasterRCNN(
            features,
            num_classes=self.num_classes,
            box_batch_size_per_image=self.hparams.rois_per_image,
        )
        self.model.transform = _KeepSize(1, 1, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection(
            {"map": MeanAveragePrecision(box_format="xyxy", iou_type="bbox")}, compute_groups=False
        )

    def check_batch(self, batch: dict[str, Any]) -> None:
        for boxes in batch["boxes"]:
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise InputError(f"boxes must be [K, 4] xyxy per image, got {tuple(boxes.shape)}")

    def targets(self, batch: dict[str, Any]) -> list[dict[str, Tensor]]:
        """torchvision targets: ``boxes`` float ``[K, 4]`` and ``labels`` 1 (polyp) per box."""
        return [
            {
                "boxes": boxes.float(),
                "labels": torch.ones(len(boxes), dtype=torch.int64, device=boxes.device),
            }
            for boxes in batch["boxes"]
        ]

    def forward(self, images: Tensor) -> list[dict[str, Tensor]]:
        """Normalised images ``[B, 3, H, W]`` -> per image ``boxes [N, 4]``, ``scores [N]``,
        ``labels [N]`` (eval mode)."""
        return self.model(list(images))

    def loss_and_output(self, batch: dict[str, Any]) -> tuple[Tensor | None, Any]:
        """Training: the sum of the RPN and box-head losses; otherwise the detections."""
        if self.training:
            losses = self.model(list(batch["image"]), self.targets(batch))
            return sum(losses.values()), None
        return None, self(batch["image"])

    def update_metrics(self, metrics: MetricCollection, output: Any, batch: dict) -> None:
        metrics.update(output, self.targets(batch))

    def picture_rows(self, batch: dict[str, Any], output: Any) -> list[list[Tensor]]:
        images = (self.display_images(batch) * 255).to(torch.uint8).cpu()
        rows = []
        for image, truth, found in zip(images, batch["boxes"], output, strict=False):
            predicted = found["boxes"][found["scores"] > PICTURE_SCORE]
            rows.append(
                [
                    draw_bounding_boxes(image, truth.cpu(), colors="lime", width=2),
                    draw_bounding_boxes(image, predicted.cpu(), colors="yellow", width=2),
                ]
            )
        return rows
