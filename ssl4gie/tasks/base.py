"""TaskModule: the LightningModule every downstream task builds on (torchgeo ``BaseTask`` style).

A task file holds only what differs: :meth:`TaskModule.configure_models` (decoder or head),
:meth:`~TaskModule.configure_metrics`, :meth:`~TaskModule.loss_and_output` and, for dense tasks,
:meth:`~TaskModule.picture_rows`. The base does the rest:

- backbone: ``create_backbone(name, pretrained)`` (a timm or zoo name); ``freeze_backbone`` keeps
  it frozen and in eval mode (batch-norm statistics included).
- input: ``on_after_batch_transfer`` checks the targets (:meth:`~TaskModule.check_batch`) and
  runs ``augment`` (:mod:`ssl4gie.transforms.finetune`) on the device: random augmentation in
  training, only normalisation otherwise, with the backbone's ``pretrained_cfg`` mean and std.
- one step for train, val and test (:meth:`~TaskModule.shared_step`); one ``MetricCollection``
  cloned with ``train_``, ``val_`` and ``test_`` prefixes, computed and logged per epoch.
- optimisation (SSL4GIE protocol): AdamW, ``lr = 1e-4``, reduce-on-plateau x0.5 with patience
  10 on the task's validation metric ``monitor``; optionally layer-wise learning-rate decay
  (``layer_decay``, the MAE fine-tuning recipe [He et al. 2022, arXiv:2111.06377, App. A.2])
  with timm's layer ids: block ``i`` (0-based) of ``L`` gets ``lr * layer_decay ** (L - 1 - i)``,
  the embeddings ``lr * layer_decay ** L``, the head ``lr``. (MAE counts one step more: its last
  block gets ``layer_decay * lr``.) Norms and biases get no weight decay in that mode.
- convergence: at the end of fit, the epoch and step at which the monitored validation metric
  first reached 90/95/99 % of its best value are logged, kept in ``self.convergence`` and
  written to ``convergence.json``.
- outputs: validation saves a PNG grid of inputs, ground truth and predictions per epoch
  (``predictions/val_epoch<NNN>.png``); test writes ``test_metrics.json``, both in
  :meth:`~TaskModule.output_dir` (the checkpoint's folder when testing a checkpoint, else the
  logger's folder); a fast dev run writes none of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from timm.optim import param_groups_layer_decay
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MetricCollection

from ssl4gie._io import atomic_file
from ssl4gie.backbones import create_backbone
from ssl4gie.errors import InputError
from ssl4gie.transforms.finetune import TaskAugment
from ssl4gie.transforms.ops import IMAGENET_MEAN, IMAGENET_STD
from ssl4gie.viz import denormalise, save_grid

__all__ = ["CONVERGENCE_FRACTIONS", "TaskModule", "check_class_ids", "convergence_points"]

Stage = Literal["train", "val", "test"]
MonitorMode = Literal["min", "max"]
STAGES: tuple[Stage, ...] = ("train", "val", "test")
CONVERGENCE_FRACTIONS = (0.90, 0.95, 0.99)
PICTURE_IMAGES = 4


def convergence_points(
    values: Sequence[float], mode: MonitorMode, fractions: Sequence[float] = CONVERGENCE_FRACTIONS
) -> dict[float, int]:
    """Index of the first value that reaches ``fraction`` of the best one, per fraction.

    ``mode="max"`` (Dice, F1, mAP): first ``v >= fraction * max(values)``; ``mode="min"`` (RMSE):
    first ``v <= min(values) / fraction``. Meant for non-negative metrics.

    >>> convergence_points([0.2, 0.5, 0.9, 1.0], "max")
    {0.9: 2, 0.95: 3, 0.99: 3}
    """
    if not values:
        return {}
    best = max(values) if mode == "max" else min(values)
    points = {}
    for fraction in fractions:
        if mode == "max":
            points[fraction] = next(i for i, v in enumerate(values) if v >= fraction * best)
        else:
            points[fraction] = next(i for i, v in enumerate(values) if v <= best / fraction)
    return points


def check_class_ids(values: Tensor, num_classes: int, what: str) -> None:
    """Raise :class:`InputError` unless every entry of ``values`` is in ``0..num_classes-1``.

    One host synchronisation (tasks call it on the first batch of each stage's epoch); a wrong
    target would otherwise give silently wrong metrics.
    """
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_classes:
        raise InputError(
            f"{what} values must be class ids in 0..{num_classes - 1}, found {low}..{high}; "
            "set num_classes to the dataset's number of classes (background included for masks)"
        )


def backbone_mean_std(backbone: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation the backbone was trained with (timm ``pretrained_cfg``, else ImageNet)."""
    config = getattr(backbone, "pretrained_cfg", None) or {}
    return tuple(config.get("mean", IMAGENET_MEAN)), tuple(config.get("std", IMAGENET_STD))


class TaskModule(L.LightningModule):
    """Base of the downstream tasks.

    Args:
        backbone: a timm model name (``"resnet50"``, ``"vit_base_patch16_224"``) or a zoo name.
        pretrained: load pretrained weights; None: yes for a zoo name, Hub id, export folder or
            checkpoint, no for a plain timm name (timm's own weights need a cache or network).
        backbone_kwargs: passed to ``create_backbone`` (e.g. ``{"img_size": 64}``).
        freeze_backbone: train only the head/decoder; the backbone stays in eval mode.
        lr: AdamW learning rate (SSL4GIE: 1e-4).
        weight_decay: AdamW weight decay (0.01, torch's default, as in the SSL4GIE code).
        layer_decay: layer-wise lr decay for ViT fine-tuning (MAE: 0.75 for ViT-B); None: off.
        patience: epochs without improvement of ``monitor`` before the lr is halved.
        augment: a batch-dict augmentation (:mod:`ssl4gie.transforms.finetune`); None: the
            task's SSL4GIE default with the backbone's mean and std.
    """

    monitor: ClassVar[str] = "val_loss"
    monitor_mode: ClassVar[MonitorMode] = "min"
    default_augment: ClassVar[type[TaskAugment]] = TaskAugment
    logged_metrics: ClassVar[tuple[str, ...] | None] = None  # None: every scalar of the collection
    picture_titles: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        backbone: str = "resnet50",
        pretrained: bool | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        layer_decay: float | None = None,
        patience: int = 10,
        augment: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["augment"])
        if lr <= 0 or weight_decay < 0 or patience < 0:
            raise InputError(
                f"need lr > 0, weight_decay >= 0, patience >= 0; got {lr}, "
                f"{weight_decay}, {patience}"
            )
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise InputError(f"layer_decay must be in (0, 1] (MAE: 0.75), got {layer_decay}")
        self.frozen = freeze_backbone  # an attribute: subclasses may derive it (e.g. from mode)
        self.backbone = create_backbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
        self.mean, self.std = backbone_mean_std(self.backbone)
        self.augment = (
            augment if augment is not None else self.default_augment(mean=self.mean, std=self.std)
        )
        self.configure_models()
        # load_backbone hands out eval-mode models and Lightning keeps each module's mode at fit
        # start: fine-tuning trains batch norm, a frozen backbone stays in eval mode
        self.backbone.train(not freeze_backbone)
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        metrics = self.configure_metrics()
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", metrics.clone(prefix=f"{stage}_"))
        self.history: list[tuple[int, int, float]] = []  # (epoch, step, monitored value)
        self._checked_stage_epoch: tuple | None = None  # (stage, epoch) whose targets were checked
        self.convergence: dict[str, dict[str, int]] = {}

    # -- what a task defines -----------------------------------------------------------------
    def configure_models(self) -> None:
        """Build the head or decoder around ``self.backbone``."""
        raise NotImplementedError

    def configure_metrics(self) -> MetricCollection:
        """The task's metrics, without prefix."""
        raise NotImplementedError

    def loss_and_output(self, batch: dict[str, Any]) -> tuple[Tensor | None, Any]:
        """Normalised batch -> (loss or None, what :meth:`update_metrics` needs or None)."""
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, output: Any, batch: dict) -> None:
        """Feed one batch's output to ``metrics``."""
        raise NotImplementedError

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Raise :class:`InputError` for targets the task cannot score (default: no check)."""

    def picture_rows(self, batch: dict[str, Any], output: Any) -> list[list[Tensor]]:
        """Rows of the validation picture (one per image); empty: no picture."""
        return []

    # -- model -------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> TaskModule:
        """Set train/eval mode; a frozen backbone stays in eval mode (batch-norm stats kept)."""
        super().train(mode)
        if getattr(self, "frozen", False):  # train() also runs inside nn.Module.__init__
            self.backbone.eval()
        return self

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """Check targets (first batch of each stage's epoch: one host sync per epoch, not per
        step), then augment (training) or only normalise (otherwise) on the device."""
        stage_epoch = (self.trainer.state.stage, self.current_epoch) if self._trainer else None
        if stage_epoch is None or stage_epoch != self._checked_stage_epoch:
            self.check_batch(batch)
            self._checked_stage_epoch = stage_epoch
        return self.augment(batch)

    def display_images(self, batch: dict[str, Any]) -> Tensor:
        """The first images of a normalised batch as float ``[n, 3, H, W]`` in [0, 1]."""
        return denormalise(batch["image"][:PICTURE_IMAGES], self.mean, self.std)

    # -- steps -------------------------------------------------------------------------------
    def shared_step(self, batch: dict[str, Any], stage: Stage) -> tuple[Tensor | None, Any]:
        """Loss and output of one batch; logs ``<stage>_loss`` and updates the stage's metrics."""
        loss, output = self.loss_and_output(batch)
        if loss is not None:
            self.log(
                f"{stage}_loss",
                loss,
                batch_size=len(batch["image"]),
                on_step=stage == "train",
                on_epoch=True,
                prog_bar=stage != "test",
            )
        if output is not None:
            self.update_metrics(getattr(self, f"{stage}_metrics"), output, batch)
        return loss, output

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        return self.shared_step(batch, "train")[0]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, output = self.shared_step(batch, "val")
        if batch_idx == 0 and not self.trainer.sanity_checking:
            self.save_picture(batch, output)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def _log_epoch_metrics(self, stage: Stage) -> None:
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        if not any(metric.update_count for metric in metrics.values()):
            return
        values = metrics.compute()
        wanted = self.logged_metrics
        self.log_dict(
            {
                name: value
                for name, value in values.items()
                if value.numel() == 1
                and (wanted is None or name.removeprefix(f"{stage}_") in wanted)
            }
        )
        with torch.inference_mode(False):  # fresh states usable by fit after a validate/test
            metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        value = self.trainer.callback_metrics.get(self.monitor)
        if value is not None and not self.trainer.sanity_checking:
            self.history.append((self.current_epoch, self.global_step, float(value)))

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # -- outputs -----------------------------------------------------------------------------
    def output_dir(self) -> Path:
        """The checkpoint's folder when testing a checkpoint, else the logger's (or root) folder."""
        if self.trainer.ckpt_path:
            return Path(self.trainer.ckpt_path).parent
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    def writes_files(self) -> bool:
        """Whether this process writes pictures and JSON: rank zero, not in a fast dev run
        (which, as in Lightning, leaves no file behind)."""
        return self.trainer.is_global_zero and not self.trainer.fast_dev_run

    def save_picture(self, batch: dict[str, Any], output: Any) -> Path | None:
        """Save :meth:`picture_rows` as ``predictions/val_epoch<NNN>.png`` in the output dir."""
        rows = self.picture_rows(batch, output) if self.writes_files() else []
        if not rows:
            return None
        path = self.output_dir() / "predictions" / f"val_epoch{self.current_epoch:03d}.png"
        return save_grid(rows, path, titles=self.picture_titles)

    def _write_json(self, name: str, data: dict) -> None:
        if self.writes_files():
            path = self.output_dir() / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as handle:
                json.dump(data, handle, indent=2)

    def on_test_end(self) -> None:
        """Write the test metrics to ``test_metrics.json``."""
        metrics = {
            name: float(value)
            for name, value in self.trainer.callback_metrics.items()
            if name.startswith("test_")
        }
        self._write_json("test_metrics.json", metrics)

    def on_fit_end(self) -> None:
        """Log and store when validation first reached 90/95/99 % of its best value."""
        if not self.history:
            return
        points = convergence_points([value for _, _, value in self.history], self.monitor_mode)
        self.convergence = {
            f"{round(fraction * 100)}": {"epoch": self.history[i][0], "step": self.history[i][1]}
            for fraction, i in points.items()
        }
        flat = {
            f"convergence/{kind}_{percent}": float(where[kind])
            for percent, where in self.convergence.items()
            for kind in ("epoch", "step")
        }
        for logger in self.loggers:
            logger.log_metrics(flat, step=self.global_step)
        self._write_json("convergence.json", {"monitor": self.monitor, **self.convergence})

    # -- optimisation ------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters; with ``layer_decay``, per-layer groups of the backbone (timm's
        ``param_groups_layer_decay``: no weight decay on norms and biases, ``lr * lr_scale``)."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        layer_decay, lr = self.hparams.layer_decay, self.hparams.lr
        if layer_decay is None:
            return [{"params": trainable}]
        if not hasattr(self.backbone, "group_matcher"):
            raise InputError("layer_decay needs a timm backbone with layers (ViT); set it to null")
        no_decay = getattr(self.backbone, "no_weight_decay", set)()
        groups = param_groups_layer_decay(
            self.backbone, self.hparams.weight_decay, no_decay, layer_decay=layer_decay
        )
        in_backbone = {id(p) for p in self.backbone.parameters()}
        for group in groups:
            group["lr"] = lr * group.pop("lr_scale")
            group["params"] = [p for p in group["params"] if p.requires_grad]
        head = [p for p in trainable if id(p) not in in_backbone]
        return [group for group in groups if group["params"]] + [{"params": head}]

    def configure_callbacks(self) -> list[L.Callback]:
        """Keep the checkpoint with the best ``monitor`` (as SSL4GIE keeps the best validation
        epoch) and ``last.ckpt`` for resume; it replaces the Trainer's plain checkpointing.
        None in a fast dev run (Lightning 2.6's ``save_last`` would still write one) or when the
        Trainer's checkpointing is off (``enable_checkpointing=False``)."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        if self.trainer.fast_dev_run or self.trainer.checkpoint_callback is None:
            return []
        return [
            ModelCheckpoint(
                monitor=self.monitor,
                mode=self.monitor_mode,
                save_last=True,
                filename="best-{epoch}-{" + self.monitor + ":.4f}",
            )
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameter_groups(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        scheduler = ReduceLROnPlateau(
            optimizer, mode=self.monitor_mode, factor=0.5, patience=self.hparams.patience
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }
