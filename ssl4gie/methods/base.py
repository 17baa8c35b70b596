"""SSLMethod: the LightningModule every self-supervised method builds on.

A method file holds only what differs: its heads, its default view recipe
(:meth:`SSLMethod.default_views`), its official hyperparameters (``RECIPES``) and
:meth:`SSLMethod.ssl_loss`. The base does the rest:

- views: ``on_after_batch_transfer`` turns ``batch["image"]`` (uint8 ``[B, 3, H, W]``) into
  ``batch["views"]`` on the device in training; validation (probe) batches get a plain resize and
  the same normalisation.
- batch norm: under DDP, :meth:`configure_model` makes every batch norm (backbone and heads) use
  the global batch, as the official code's SyncBatchNorm (:mod:`ssl4gie.nn`).
- optimisation: LARS, AdamW or SGD from timm with biases and norm parameters excluded from weight
  decay and LARS adaptation (as the official LARS code); ``lr = base_lr * global_batch / 256``;
  linear warm-up then cosine per optimiser step (:mod:`ssl4gie.methods.schedules`). timm's LARS
  trust ratio is ``0.001 * ||w|| / (||g|| + wd * ||w||)`` (You et al. 2017); the official
  PyTorch code divides by ``||g + wd * w||`` instead, a small difference at these decays.
- momentum encoders (:class:`~ssl4gie.methods.momentum.MomentumEncoder`) are updated once per
  optimiser step, also with ``accumulate_grad_batches``, with the cosine momentum schedule.
- every ``check_every_n_batches`` batches: collapse metrics of the projector output
  (:mod:`ssl4gie.analysis.collapse`, warning on collapse) and the non-finite-loss check.
- validation on a labelled probe set: kNN and linear-probe accuracy of the frozen backbone
  features at epoch end (:mod:`ssl4gie.analysis.probe`).
- checkpoints hold the momentum encoders (submodules) and the torch RNG states, so a resumed run
  continues exactly (optimiser, schedulers and loops are restored by Lightning).
- the GPU fast path (:mod:`ssl4gie.methods.fast_path`): fused or multi-tensor optimiser
  kernels, ``compile``, ``channels_last``; bf16 is the trainer's ``precision="bf16-mixed"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from timm.optim import create_optimizer_v2
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.lr_scheduler import LambdaLR

from ssl4gie.analysis.collapse import COLLAPSE_THRESHOLD, effective_rank, normalised_std
from ssl4gie.analysis.probe import knn_accuracy, linear_probe_accuracy
from ssl4gie.backbones import create_backbone
from ssl4gie.distributed import gather_no_grad
from ssl4gie.errors import InputError
from ssl4gie.methods.fast_path import (
    OptimizerImpl,
    compile_backbones,
    host_scalar,
    optimizer_impl_kwargs,
    to_channels_last,
)
from ssl4gie.methods.momentum import MomentumEncoder
from ssl4gie.methods.schedules import cosine_momentum, warmup_cosine
from ssl4gie.nn import distributed_batchnorm
from ssl4gie.transforms.views import IMAGENET_MEAN, IMAGENET_STD, to_unit_float

__all__ = ["VIT_RECIPE", "MomentumEncoder", "NonFiniteLossError", "Recipe", "SSLMethod"]

ArchitectureKind = Literal["cnn", "vit"]
OptimizerName = Literal["lars", "adamw", "sgd"]
_TIMM_OPTIMIZERS = {"lars": "lars", "adamw": "adamw", "sgd": "momentum"}  # timm "sgd" is Nesterov


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and likely causes."""


@dataclass(frozen=True)
class Recipe:
    """A method's default optimisation for one kind of backbone.

    ``base_lr`` is per 256 images (``lr = base_lr * global_batch / 256``); ``bias_lr_ratio``
    scales the learning rate of biases and norm parameters (Barlow Twins' 0.0048 / 0.2).
    """

    optimizer: OptimizerName
    base_lr: float
    weight_decay: float
    warmup_epochs: float
    min_lr_ratio: float = 0.0
    bias_lr_ratio: float = 1.0


VIT_RECIPE = Recipe("adamw", base_lr=1.5e-4, weight_decay=0.1, warmup_epochs=40)
"""MoCo v3's ViT optimisation (facebookresearch/moco-v3 CONFIG.md), the default for backbones
without batch norm where a method has no official ViT recipe."""


def architecture_kind(backbone: nn.Module) -> ArchitectureKind:
    """``"cnn"`` for backbones with batch norm (ResNet, EfficientNet), else ``"vit"`` (ViT, Swin,
    ConvNeXt): the kind picks a method's recipe and, for MoCo v3, the heads."""
    return "cnn" if any(isinstance(m, _BatchNorm) for m in backbone.modules()) else "vit"


class SSLMethod(L.LightningModule):
    """Base of the self-supervised methods; subclasses set ``RECIPES`` and define the heads,
    :meth:`default_views` and :meth:`ssl_loss`.

    Args:
        backbone: a timm model name (``"resnet50"``, ``"vit_small_patch16_224"``, ...).
        backbone_kwargs: passed to ``timm.create_model``, e.g. ``{"img_size": 64}``.
        views: the on-device view recipe (:mod:`ssl4gie.transforms.views`); None: the method's.
        optimizer: None: the method's recipe for the backbone (LARS for CNNs, AdamW for ViTs).
        base_lr: learning rate per 256 images; ``lr = base_lr * global_batch / 256`` with
            ``global_batch = batch_size * processes * accumulate_grad_batches``. None: recipe.
        weight_decay, warmup_epochs, min_lr_ratio: None: the recipe's; the learning rate warms
            up linearly from 0 over ``warmup_epochs``, then follows a cosine to
            ``min_lr_ratio * lr`` at the trainer's ``max_epochs`` (or ``max_steps``).
        monitor_collapse: log ``collapse/normalised_std`` (ideal 1) and
            ``collapse/effective_rank`` of the projector output, and warn on collapse.
        check_every_n_batches: how often the collapse metrics and the non-finite-loss check run
            (each costs one host synchronisation). The probe runs on the trainer's
            ``check_val_every_n_epoch``.
        channels_last: weights and views in channels-last (NHWC) memory format, for the
            tensor-core convolutions of CNNs on GPUs (no gain for ViTs).
        optimizer_impl: ``"auto"`` (fused AdamW where torch has the kernel, CUDA and CPU;
            multi-tensor SGD and LARS on CUDA), ``"fused"``, ``"foreach"`` or ``"loop"``.
        compile: ``torch.compile`` the backbone and its momentum copies in place (ViT block by
            block); the first steps are slow while it compiles.

    A NaN or infinite loss stops training with :class:`NonFiniteLossError` naming the first bad
    step; checkpoints that ``ModelCheckpoint`` saved before stay on disk (a step-interval
    checkpoint saved between the bad step and the check can hold NaN weights).
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]]
    min_batch_per_process: ClassVar[int] = 2

    def __init__(
        self,
        backbone: str = "resnet50",
        backbone_kwargs: dict[str, Any] | None = None,
        views: nn.Module | None = None,
        optimizer: OptimizerName | None = None,
        base_lr: float | None = None,
        weight_decay: float | None = None,
        warmup_epochs: float | None = None,
        min_lr_ratio: float | None = None,
        monitor_collapse: bool = True,
        check_every_n_batches: int = 50,
        channels_last: bool = False,
        optimizer_impl: OptimizerImpl = "auto",
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["views"])
        if check_every_n_batches < 1:
            raise InputError(f"check_every_n_batches must be >= 1, got {check_every_n_batches}")
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.kind = architecture_kind(self.backbone)
        overrides = {"optimizer": optimizer, "base_lr": base_lr, "weight_decay": weight_decay}
        overrides |= {"warmup_epochs": warmup_epochs, "min_lr_ratio": min_lr_ratio}
        given = {name: value for name, value in overrides.items() if value is not None}
        self.recipe = _checked(replace(self.RECIPES[self.kind], **given))
        optimizer_impl_kwargs(optimizer_impl, self.recipe.optimizer, torch.device("cpu"))  # check
        self.channels_last, self.optimizer_impl = channels_last, optimizer_impl
        self.use_compile, self._compiled = compile, False
        self.views = views if views is not None else self.default_views()
        self.monitor_collapse = monitor_collapse
        self.check_every_n_batches = check_every_n_batches
        self._last_optimizer_step = 0
        self._total_steps = 1
        self._first_nonfinite_step: Tensor | None = None  # device scalar, -1 while all finite
        self._small_frames: Tensor | None = None  # device count of frames below the view size
        self._probe_batches: list[tuple[Tensor, Tensor]] = []

    def default_views(self) -> nn.Module:
        """The method's view recipe (a :mod:`ssl4gie.transforms.views` preset)."""
        raise NotImplementedError

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Views (normalised ``[B, 3, h, w]`` each) -> (scalar loss, stats).

        ``stats["embedding"]`` is the projector output of the first view ``[B, D]`` (for the
        collapse monitor); other entries are scalars logged under ``train/``.
        """
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        """Normalised images ``[B, 3, H, W]`` -> backbone features ``[B, num_features]``."""
        return self.backbone(images)

    def configure_model(self) -> None:
        """Before DDP wraps the model: batch norms over the global batch (backbone and heads);
        then the ``channels_last`` and ``compile`` options."""
        distributed_batchnorm(self, self.trainer.strategy.root_device, self.trainer.world_size)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.use_compile and not self._compiled:
            compile_backbones(self, self.backbone)
            self._compiled = True

    def configure_optimizers(self) -> dict[str, Any]:
        per_process = self._per_process_batch_size()
        trainer = self.trainer
        lr = self.recipe.base_lr * per_process * trainer.world_size
        lr *= trainer.accumulate_grad_batches / 256
        optimizer = create_optimizer_v2(
            self._param_groups(lr),
            opt=_TIMM_OPTIMIZERS[self.recipe.optimizer],
            lr=lr,
            weight_decay=self.recipe.weight_decay,
            momentum=0.9,
            **optimizer_impl_kwargs(self.optimizer_impl, self.recipe.optimizer, self.device),
        )
        steps_per_epoch, total_steps = self._steps_per_epoch_and_total()
        warmup, min_ratio = self.recipe.warmup_epochs, self._min_lr_ratio(lr)

        def lr_factor(step: int) -> float:
            epoch = step / steps_per_epoch
            return warmup_cosine(epoch, warmup, total_steps / steps_per_epoch, min_ratio)

        scheduler = LambdaLR(optimizer, lr_factor)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def _param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Weights (weight decay, LARS adaptation) and 1-D biases/norm parameters (neither, with
        ``bias_lr_ratio``), as the official LARS code groups them; frozen parameters left out.
        LARS adapts the weights even with ``weight_decay`` 0 (timm's ``always_adapt``; timm
        otherwise skips the trust ratio of a group without weight decay)."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        biases = {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0}
        biases["lr"] = lr * self.recipe.bias_lr_ratio
        weights: dict[str, Any] = {"params": [p for p in trainable if p.ndim > 1]}
        if self.recipe.optimizer == "lars":
            weights["always_adapt"] = True
        return [weights, biases]

    def _min_lr_ratio(self, lr: float) -> float:
        """Final learning rate of the cosine as a fraction of the peak ``lr``: the recipe's
        ``min_lr_ratio`` (DINO overrides it for an absolute ``min_lr``)."""
        return self.recipe.min_lr_ratio

    def _per_process_batch_size(self) -> int:
        if self.trainer.train_dataloader is None:
            self.trainer.fit_loop.setup_data()  # as estimated_stepping_batches does
        size = getattr(self.trainer.train_dataloader, "batch_size", None)
        if size is None:
            raise InputError(
                "cannot read the per-process batch size from the training DataLoader; "
                "give it batch_size"
            )
        if size < self.min_batch_per_process:
            raise InputError(
                f"{type(self).__name__} needs at least {self.min_batch_per_process} images per "
                f"process for its loss and batch norm, got batch_size {size}; increase batch_size"
            )
        return size

    def _steps_per_epoch_and_total(self) -> tuple[int, int]:
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise InputError("set the trainer's max_epochs or max_steps: the schedules need it")
        batches = self.trainer.num_training_batches
        per_epoch = total if not math.isfinite(batches) else batches
        return max(1, math.ceil(per_epoch / self.trainer.accumulate_grad_batches)), int(total)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """Training: add ``batch["views"]``; validation: normalise ``batch["image"]``."""
        if self.trainer.training:
            views = self.views(batch["image"], batch.get("region"))
            self._count_small_frames(batch.get("region"))
            return {**batch, "views": to_channels_last(views) if self.channels_last else views}
        return {**batch, "image": self._probe_images(batch["image"])}

    def on_train_start(self) -> None:
        self._last_optimizer_step = self.trainer.global_step
        self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        if self.trainer.world_size > 1:
            # seed_everything gives every process the same RNG, so the image at a batch position
            # would get the same crop and colour draws on every GPU; offset each process's RNG
            # (one shared draw + rank: still deterministic, and resumed runs do the same)
            shared = int(torch.randint(0, 2**31 - 1, (1,)))
            torch.manual_seed(shared + self.global_rank)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        views = batch["views"]
        if views[0].shape[0] < self.min_batch_per_process:
            raise InputError(
                f"a training batch of {views[0].shape[0]} image(s) is too small for "
                f"{type(self).__name__}; use drop_last=True in the DataLoader"
            )
        loss, stats = self.ssl_loss(views)
        embedding = stats.pop("embedding", None)
        self._record_nonfinite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, sync_dist=True, prog_bar=True)
        self.log_dict({f"train/{name}": value for name, value in stats.items()}, on_step=True)
        self.log("lr", host_scalar(self.lr_schedulers().get_last_lr()[0]), on_step=True)
        if batch_idx % self.check_every_n_batches == 0:
            self._raise_if_nonfinite()
            if self.monitor_collapse and embedding is not None:
                self._monitor_collapse(embedding)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After each *optimiser* step (not each batch): update the momentum encoders."""
        step = self.trainer.global_step
        if step == self._last_optimizer_step:
            return
        self._last_optimizer_step = step
        for encoder in self.children():
            if isinstance(encoder, MomentumEncoder):
                momentum = cosine_momentum(step / self._total_steps, encoder.base_momentum)
                encoder.update(momentum)
                self.log("momentum", host_scalar(momentum), on_step=True)

    def on_fit_start(self) -> None:
        """Refuse an aspect-true input canvas smaller than the views (one line, exit 2)."""
        max_size = getattr(self.trainer.datamodule, "max_size", None)
        if max_size is not None and max_size < self._largest_view():
            raise InputError(
                f"data.max_size {max_size} is smaller than the {self._largest_view()}-px views "
                f"of {type(self).__name__}; set data.max_size to at least {self._largest_view()}"
            )

    def on_train_epoch_end(self) -> None:
        self._raise_if_nonfinite()  # before ModelCheckpoint saves the epoch
        self._report_small_frames()

    def _largest_view(self) -> int:
        """The largest view side of the recipe (0 for a recipe without groups)."""
        return max((params.size for params, _ in getattr(self.views, "groups", [])), default=0)

    def _count_small_frames(self, regions: Tensor | None) -> None:
        """Add the batch's frames whose shorter side is below the largest view (so their crops
        are upsampled) to a device counter: no host sync per step."""
        if regions is None:
            return
        sides = torch.minimum(regions[:, 2] - regions[:, 0], regions[:, 3] - regions[:, 1])
        small = (sides < self._largest_view()).sum()
        self._small_frames = small if self._small_frames is None else self._small_frames + small

    def _report_small_frames(self) -> None:
        """Once per epoch: how many frames (all processes) were smaller than the views."""
        if self._small_frames is None:
            return
        count = int(self.trainer.strategy.reduce(self._small_frames.float(), reduce_op="sum"))
        self._small_frames = None
        if count:
            rank_zero_warn(
                f"{count} frame(s) this epoch were smaller than the {self._largest_view()}-px "
                "views: their crops were upsampled (once, by the view's resize)"
            )

    def _record_nonfinite(self, loss: Tensor) -> None:
        """Keep the first step with a non-finite loss in a device scalar (no host sync)."""
        if self._first_nonfinite_step is None:
            self._first_nonfinite_step = torch.full((), -1, device=loss.device)
        bad = ~torch.isfinite(loss.detach()) & (self._first_nonfinite_step < 0)
        self._first_nonfinite_step = torch.where(
            bad, self.trainer.global_step, self._first_nonfinite_step
        )

    def _raise_if_nonfinite(self) -> None:
        step = -1 if self._first_nonfinite_step is None else int(self._first_nonfinite_step)
        if not self.trainer.strategy.reduce_boolean_decision(step >= 0, all=False):
            return
        where = f"at step {step}" if step >= 0 else "on another process"
        raise NonFiniteLossError(
            f"{type(self).__name__}: the loss became NaN or infinite {where}; likely causes: a "
            f"learning rate too high (base_lr {self.recipe.base_lr} per 256 images: lower it or "
            "lengthen warmup_epochs), fp16 precision (use precision='bf16-mixed' or '32'), or "
            "corrupt input images; checkpoints saved before that step are intact"
        )

    def _monitor_collapse(self, embedding: Tensor) -> None:
        std, rank = normalised_std(embedding), effective_rank(embedding)
        self.log_dict({"collapse/normalised_std": std, "collapse/effective_rank": rank})
        if std < COLLAPSE_THRESHOLD:
            rank_zero_warn(
                f"{type(self).__name__}: the embeddings look collapsed at step "
                f"{self.trainer.global_step} (normalised std {float(std):.3f}, ideal 1; "
                f"effective rank {float(rank):.1f} of {embedding.shape[1]}); check the learning "
                "rate, the batch size and the augmentations"
            )

    def _probe_images(self, images: Tensor) -> Tensor:
        """uint8 ``[B, 3, H, W]`` -> resized to the view size and normalised like the views."""
        x = to_unit_float(images)
        groups = getattr(self.views, "groups", None)
        if groups:
            size = groups[0][0].size
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        mean = getattr(self.views, "mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        std = getattr(self.views, "std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        return (x - mean.to(x.device)) / std.to(x.device)

    def on_validation_epoch_start(self) -> None:
        self._probe_batches = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if "label" not in batch:
            raise InputError(
                "the validation (probe) dataset has no labels; give a labelled probe source, "
                "e.g. Source('hyperkvasir-labeled', root, {'task': 'landmarks'})"
            )
        self._probe_batches.append((self.backbone(batch["image"]).float(), batch["label"]))

    def on_validation_epoch_end(self) -> None:
        batches, self._probe_batches = self._probe_batches, []
        if self.trainer.sanity_checking or not batches:
            return
        features = gather_no_grad(torch.cat([f for f, _ in batches]))
        labels = gather_no_grad(torch.cat([y for _, y in batches]))
        self.log("probe/knn_accuracy", knn_accuracy(features, labels))
        self.log("probe/linear_accuracy", linear_probe_accuracy(features, labels))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the torch RNG states, so views and shuffling continue as without a stop."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "cuda": cuda}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the RNG states when a trainer resumes (``fit(ckpt_path=...)``), before it
        creates the data iterators; a plain ``load_from_checkpoint`` leaves the RNG alone.

        Every process gets rank 0's states, which is exact for runs seeded with
        ``seed_everything`` (Lightning gives all ranks the same seed)."""
        states = checkpoint.get("rng_states")
        if self._trainer is None or states is None:
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


def _checked(recipe: Recipe) -> Recipe:
    if recipe.base_lr <= 0 or recipe.weight_decay < 0 or recipe.warmup_epochs < 0:
        raise InputError(
            f"need base_lr > 0, weight_decay >= 0, warmup_epochs >= 0, got {recipe.base_lr}, "
            f"{recipe.weight_decay}, {recipe.warmup_epochs}"
        )
    if not 0.0 <= recipe.min_lr_ratio <= 1.0:
        raise InputError(f"min_lr_ratio must be in [0, 1], got {recipe.min_lr_ratio}")
    return recipe
