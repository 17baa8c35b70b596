"""Image classification: fine-tuning, linear probe and kNN evaluation of a backbone.

SSL4GIE protocol (Sanderson & Matuszewski 2024, arXiv:2401.06278): a linear layer on the pooled
features (CNN) or the class token (ViT), class-weighted cross-entropy, AdamW 1e-4. Metrics:
accuracy, macro F1/precision/recall (classes without images and predictions are left out of the
macro mean, torchmetrics' convention), Cohen's kappa (``quadratic_kappa`` for graded labels such
as ulcerative-colitis grades) and one-vs-rest macro AUROC.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from ssl4gie.analysis.probe import knn_scores
from ssl4gie.backbones import is_vit
from ssl4gie.errors import InputError
from ssl4gie.tasks.base import TaskModule, check_class_ids
from ssl4gie.transforms.finetune import ClassificationAugment

__all__ = ["ClassificationTask", "class_weights"]

Mode = Literal["finetune", "linear", "knn"]


def class_weights(counts: Tensor) -> Tensor:
    """Inverse-frequency class weights for the weighted cross-entropy (SSL4GIE).

    ``w_c = N / (C * max(n_c, 1))`` for ``n_c`` training images of class ``c``, ``N = sum n_c``
    and ``C`` classes (scikit-learn's "balanced" weights): every class contributes the same total
    weight, and the weighted mean over the training set is 1. A class without training images
    gets ``N / C`` (it never occurs as a training target; the bound keeps the weight finite).

    >>> class_weights(torch.tensor([2, 6])).tolist()
    [2.0, 0.6666666865348816]
    """
    counts = counts.to(torch.float32)
    return counts.sum() / (len(counts) * counts.clamp(min=1))


class ClassificationTask(TaskModule):
    """Classify images with a backbone and a linear head, or by kNN on frozen features.

    Args:
        backbone, pretrained, backbone_kwargs, lr, weight_decay, layer_decay, patience, augment:
            see :class:`~ssl4gie.tasks.base.TaskModule`.
        num_classes: classes of the dataset (SSL4GIE: 6 landmarks, 12 findings); checked
            against ``datamodule.num_classes`` and every label.
        mode: ``"finetune"`` trains backbone and head; ``"linear"`` freezes the backbone (with a
            non-affine ``BatchNorm1d`` before the head for ViTs, as MAE's linear probe);
            ``"knn"`` has nothing to train: validation and test classify by weighted kNN over
            the features of the datamodule's training set (``trainer.test`` alone suffices).
        class_weighted: weight the cross-entropy by :func:`class_weights` of the datamodule's
            ``class_counts()`` (SSL4GIE); the weights are kept in the checkpoint.
        quadratic_kappa: quadratic weights for Cohen's kappa (graded labels).
        knn_k, knn_temperature: neighbours and temperature of the kNN vote (20, 0.07).

    Examples:
        >>> task = ClassificationTask("resnet18", num_classes=6, mode="linear")
        >>> task(torch.randn(2, 3, 64, 64)).shape  # normalised images -> logits
        torch.Size([2, 6])
        >>> ClassificationTask("resnet50-barlow-hk", num_classes=6)  # doctest: +SKIP
    """

    monitor = "val_f1"
    monitor_mode = "max"
    default_augment = ClassificationAugment

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 6,
        mode: Mode = "finetune",
        class_weighted: bool = True,
        quadratic_kappa: bool = False,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        **kwargs: Any,
    ) -> None:
        if num_classes < 2:
            raise InputError(f"num_classes must be >= 2, got {num_classes}")
        if mode not in ("finetune", "linear", "knn"):
            raise InputError(f"unknown mode {mode!r}; choose finetune, linear or knn")
        if knn_k < 1 or knn_temperature <= 0:
            raise InputError(
                f"need knn_k >= 1 and knn_temperature > 0, got {knn_k}, {knn_temperature}"
            )
        frozen = mode != "finetune"
        if kwargs.pop("freeze_backbone", frozen) != frozen:  # saved in checkpoints' hparams
            raise InputError("set mode='linear' (frozen) or 'finetune', not freeze_backbone")
        self.num_classes, self.mode = num_classes, mode
        self.bank: tuple[Tensor, Tensor] | None = None
        super().__init__(backbone, freeze_backbone=frozen, **kwargs)
        self.register_buffer("class_weight", torch.ones(num_classes))

    def configure_models(self) -> None:
        features = self.backbone.num_features
        linear = nn.Linear(features, self.num_classes)
        if self.mode == "linear" and is_vit(self.backbone):
            self.head = nn.Sequential(nn.BatchNorm1d(features, affine=False, eps=1e-6), linear)
        else:
            self.head = linear

    def configure_metrics(self) -> MetricCollection:
        c = self.num_classes
        weights = "quadratic" if self.hparams.quadratic_kappa else None
        return MetricCollection(
            {
                "accuracy": MulticlassAccuracy(c, average="micro"),
                "f1": MulticlassF1Score(c, average="macro"),
                "precision": MulticlassPrecision(c, average="macro"),
                "recall": MulticlassRecall(c, average="macro"),
                "kappa": MulticlassCohenKappa(c, weights=weights),
                "auroc": MulticlassAUROC(c, average="macro"),
            }
        )

    def setup(self, stage: str) -> None:
        """Check ``num_classes`` against the datamodule; take its class weights when fitting."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is None or not hasattr(datamodule, "num_classes"):
            return
        if datamodule.num_classes != self.num_classes:
            raise InputError(
                f"num_classes is {self.num_classes} but the datamodule has "
                f"{datamodule.num_classes} classes ({', '.join(datamodule.classes)}); "
                f"set model num_classes: {datamodule.num_classes}"
            )
        if stage == "fit" and self.hparams.class_weighted:
            self.class_weight.copy_(class_weights(datamodule.class_counts()))

    def check_batch(self, batch: dict[str, Any]) -> None:
        check_class_ids(batch["label"], self.num_classes, "label")

    def forward(self, images: Tensor) -> Tensor:
        """Normalised images ``[B, 3, H, W]`` -> logits ``[B, num_classes]`` (linear head)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            features = self.backbone(images)
        return self.head(features)

    def loss_and_output(self, batch: dict[str, Any]) -> tuple[Tensor | None, Tensor]:
        """Class-weighted cross-entropy and class probabilities ``[B, num_classes]``; kNN mode:
        no loss, the kNN vote shares."""
        if self.mode == "knn":
            if self.bank is None:
                raise InputError("kNN mode scores validation and test batches only")
            return None, knn_scores(
                *self.bank,
                self.backbone(batch["image"]),
                self.num_classes,
                self.hparams.knn_k,
                self.hparams.knn_temperature,
            )
        logits = self(batch["image"])
        loss = F.cross_entropy(logits, batch["label"], weight=self.class_weight)
        return loss, logits.softmax(dim=1)

    def update_metrics(self, metrics: MetricCollection, output: Tensor, batch: dict) -> None:
        metrics.update(output, batch["label"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        return None if self.mode == "knn" else super().training_step(batch, batch_idx)

    def configure_optimizers(self) -> dict[str, Any] | None:
        return None if self.mode == "knn" else super().configure_optimizers()

    # -- kNN feature bank --------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        if self.mode == "knn":
            self.bank = self.feature_bank()

    def on_test_epoch_start(self) -> None:
        if self.mode == "knn":
            self.bank = self.feature_bank()

    @torch.no_grad()
    def feature_bank(self) -> tuple[Tensor, Tensor]:
        """Backbone features ``[N, D]`` and labels ``[N]`` of the datamodule's whole training set,
        normalised without augmentation. Each process reads the whole set (a plain loader, no
        distributed sampler), so every process holds the full bank."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise InputError("kNN mode needs a datamodule (trainer.test(model, datamodule=...))")
        self.augment.eval()
        features, labels = [], []
        for batch in datamodule.train_dataloader():
            batch = self.augment({key: batch[key].to(self.device) for key in ("image", "label")})
            features.append(self.backbone(batch["image"]))
            labels.append(batch["label"])
        return torch.cat(features), torch.cat(labels)
