"""DINO [Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers",
arXiv:2104.14294; facebookresearch/dino ``main_dino.py``, ``vision_transformer.py``]."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby, pairwise
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl4gie.errors import InputError
from ssl4gie.losses import dino_center, dino_loss
from ssl4gie.methods.base import ArchitectureKind, MomentumEncoder, Recipe, SSLMethod
from ssl4gie.methods.fast_path import host_scalar
from ssl4gie.methods.schedules import warmup_cosine
from ssl4gie.nn import fp32_linear
from ssl4gie.transforms.views import MultiCrop

__all__ = [
    "DINO",
    "DINOHead",
    "check_patch_divisible",
    "cosine_weight_decay",
    "features_by_resolution",
    "teacher_temperature",
]


def features_by_resolution(backbone: nn.Module, crops: Sequence[Tensor]) -> list[Tensor]:
    """Backbone features of every crop, ``[N, D]`` each, with one forward per run of crops of the
    same size, as the official ``MultiCropWrapper`` (2 global crops in one pass, the locals in
    another); batch norm sees each run as one batch."""
    features: list[Tensor] = []
    for _, run in groupby(crops, key=lambda crop: tuple(crop.shape[-2:])):
        run = list(run)
        features.extend(backbone(torch.cat(run)).chunk(len(run)))
    return features


def check_patch_divisible(backbone: nn.Module, sizes: Sequence[int], method: str) -> None:
    """Raise unless every view size is a multiple of a transformer's patch size (no-op for CNNs)."""
    patch_embed = getattr(backbone, "patch_embed", None)
    if patch_embed is None:
        return
    patch = patch_embed.patch_size[0]
    bad = sorted({size for size in sizes if size % patch})
    if bad:
        raise InputError(
            f"{method}: view size(s) {bad} px are not divisible by the patch size {patch}; "
            f"use view sizes that are multiples of {patch}"
        )


def teacher_temperature(epoch: int, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """Teacher temperature of an epoch: linear from ``warmup_temp`` to ``temp`` over
    ``warmup_epochs`` epochs (``np.linspace``, as the official ``teacher_temp_schedule``), then
    ``temp``.

    >>> [round(teacher_temperature(e, 0.04, 0.07, 4), 3) for e in range(5)]
    [0.04, 0.05, 0.06, 0.07, 0.07]
    """
    if epoch >= warmup_epochs:
        return temp
    return warmup_temp + (temp - warmup_temp) * epoch / max(1, warmup_epochs - 1)


def cosine_weight_decay(progress: float, start: float, end: float) -> float:
    """Weight decay moving from ``start`` to ``end`` along a half cosine over training
    (``progress`` in [0, 1]), the official ``wd_schedule`` (0.04 -> 0.4 for ViTs).

    >>> round(cosine_weight_decay(0.0, 0.04, 0.4), 9), round(cosine_weight_decay(1.0, 0.04, 0.4), 9)
    (0.04, 0.4)
    """
    return end + (start - end) * warmup_cosine(progress, 0.0, 1.0)


class WeightNormLinear(nn.Module):
    """``Linear(bias=False)`` with weight normalisation (Salimans and Kingma 2016):
    ``W = g * V / ||V||`` row by row, ``[N, in] -> [N, out]``; ``g`` starts at 1 and stays fixed
    when ``fixed_norm`` (DINO's ``norm_last_layer``)."""

    def __init__(self, in_dim: int, out_dim: int, fixed_norm: bool = True) -> None:
        super().__init__()
        self.direction = nn.Parameter(nn.Linear(in_dim, out_dim, bias=False).weight.detach())
        self.scale = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not fixed_norm)

    def forward(self, x: Tensor) -> Tensor:
        return fp32_linear(x, self.scale * F.normalize(self.direction, dim=1))  # float32 logits


class DINOHead(nn.Module):
    """DINO's projection head: an MLP to a bottleneck, l2-normalised, then a weight-normalised
    linear layer to ``out_dim`` logits.

    "The projection head consists of a 3-layer multi-layer perceptron (MLP) with hidden
    dimension 2048 followed by l2 normalization and a weight normalized fully connected layer
    with K dimensions" [Caron et al. 2021, Sec. 3.1]. As the official ``DINOHead``: Linear and
    GELU without batch norm (``use_bn_in_head`` False), Linear weights truncated-normal std 0.02,
    biases 0. ``[N, in_dim] -> [N, out_dim]``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if min(in_dim, out_dim, hidden_dim, bottleneck_dim, num_layers) < 1:
            raise InputError("DINOHead: every size and num_layers must be >= 1")
        dims = [in_dim, *[hidden_dim] * (num_layers - 1), bottleneck_dim]
        layers: list[nn.Module] = []
        for dim_in, dim_out in pairwise(dims):
            layers += [nn.Linear(dim_in, dim_out), nn.GELU()]
        self.mlp = nn.Sequential(*layers[:-1])
        for linear in self.mlp[::2]:
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, fixed_norm=norm_last_layer)

    def project(self, x: Tensor) -> Tensor:
        """``[N, in_dim]`` -> the l2-normalised bottleneck ``[N, bottleneck_dim]``."""
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(self.project(x))


class DINO(SSLMethod):
    """DINO: a student matches a momentum teacher's centred, sharpened output across crops.

    The student (backbone + :class:`DINOHead`) sees every crop of :meth:`MultiCrop.dino`, the
    teacher (:class:`MomentumEncoder` of both) the two global crops; the loss is
    :func:`~ssl4gie.losses.dino_loss` and the centre, a checkpointed buffer, follows
    :func:`~ssl4gie.losses.dino_center` (batch mean all-reduced over processes) after each batch.

    Official defaults (``main_dino.py`` arguments; README's ResNet-50 command):

    - head: out_dim 65536, hidden 2048, bottleneck 256, ``norm_last_layer`` True (``main_dino.py``
      help: "we typically set this parameter to False with vit_small and True with vit_base"; the
      README calls False "only safe with" ViT-S); ``freeze_last_layer`` 1 epoch (its gradients
      dropped; 3 in the released ViT-B/16 run).
    - teacher momentum 0.996 -> 1 (cosine per step); student temperature 0.1, teacher 0.04
      (``warmup_teacher_temp`` 0.04 over ``warmup_teacher_temp_epochs`` 0; the README's ViT runs
      use 0.04 -> 0.07 over 30 epochs); centre momentum 0.9.
    - ViT: AdamW, lr 5e-4 per 256, cosine to the absolute ``min_lr`` 1e-6, weight decay
      0.04 -> 0.4 on a cosine per step, 10 warm-up epochs, per-parameter gradient clipping at 3.0
      (``clip_grad``), drop path 0.1 on the student (``--drop_path_rate``; pass
      ``backbone_kwargs={"drop_path_rate": 0.1}``, as the shipped ViT-B/16 config does; the
      teacher never drops paths, see :class:`MomentumEncoder`). ResNet-50: SGD (momentum 0.9) lr
      0.03 per 256, weight decay 1e-4 constant, crop scales (0.14, 1) / (0.05, 0.14) (pass them
      to the views).

    Gradient clipping is :meth:`configure_gradient_clipping` (the official per-parameter
    ``clip_gradients``); a trainer's ``gradient_clip_val`` is applied after it.

    Args:
        out_dim, hidden_dim, bottleneck_dim, norm_last_layer: of :class:`DINOHead`.
        base_momentum: teacher EMA momentum at the start (0.996).
        teacher_temp, warmup_teacher_temp, warmup_teacher_temp_epochs: :func:`teacher_temperature`.
        student_temp: 0.1. center_momentum: 0.9.
        freeze_last_layer: epochs during which the head's last layer is not updated (1).
        weight_decay_end: final weight decay; None: 0.4 for ViTs, constant for CNNs.
        clip_grad: per-parameter gradient-norm bound (3.0); 0 disables.
        min_lr: absolute learning rate at the end of the cosine (``--min_lr``: 1e-6; 2e-6 in the
            released ViT-B/16 run), whatever the batch size; None: the base's ``min_lr_ratio``
            of the peak lr (give one of the two).
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> crops = MultiCrop.dino(global_size=32, local_size=16, num_local=2)
        >>> method = DINO("vit_tiny_patch16_224", out_dim=256, hidden_dim=64, bottleneck_dim=32,
        ...               views=crops, backbone_kwargs={"img_size": 32, "patch_size": 8})
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> views = method.views(images)  # 2 x [4, 3, 32, 32], 2 x [4, 3, 16, 16]
        >>> loss, stats = method.ssl_loss(views)
        >>> loss.shape, stats["embedding"].shape
        (torch.Size([]), torch.Size([4, 32]))
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = {
        "cnn": Recipe("sgd", base_lr=0.03, weight_decay=1e-4, warmup_epochs=10),
        "vit": Recipe("adamw", base_lr=5e-4, weight_decay=0.04, warmup_epochs=10),
    }
    WEIGHT_DECAY_END: ClassVar[dict[ArchitectureKind, float | None]] = {"cnn": None, "vit": 0.4}

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        norm_last_layer: bool = True,
        base_momentum: float = 0.996,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        freeze_last_layer: int = 1,
        weight_decay_end: float | None = None,
        clip_grad: float = 3.0,
        min_lr: float | None = 1e-6,
        **kwargs: Any,
    ) -> None:
        if min_lr is not None and min_lr < 0:
            raise InputError(f"DINO: min_lr must be >= 0, got {min_lr}")
        if min_lr is not None and kwargs.get("min_lr_ratio") is not None:
            raise InputError(
                f"DINO: both min_lr ({min_lr}) and min_lr_ratio are set; give one: min_lr "
                "(absolute, the official --min_lr) or min_lr: null to use min_lr_ratio"
            )
        super().__init__(backbone, **kwargs)
        check_patch_divisible(self.backbone, [p.size for p, _ in self.views.groups], "DINO")
        self.head = DINOHead(
            self.backbone.num_features, out_dim, hidden_dim, bottleneck_dim,
            norm_last_layer=norm_last_layer,
        )  # fmt: skip
        self.momentum_encoder = MomentumEncoder([self.backbone, self.head], base_momentum)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.temperatures = (warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.freeze_last_layer, self.clip_grad, self.min_lr = freeze_last_layer, clip_grad, min_lr
        end = self.WEIGHT_DECAY_END[self.kind] if weight_decay_end is None else weight_decay_end
        self.weight_decay_end = self.recipe.weight_decay if end is None else end

    def default_views(self) -> nn.Module:
        return MultiCrop.dino()

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """``[global1, global2, local1, ...]`` (``[N, 3, h, w]`` each) -> DINO loss; updates the
        centre with the teacher's global-crop logits."""
        if len(views) < 3:
            raise InputError(f"DINO needs 2 global crops and >= 1 local crop, got {len(views)}")
        features = torch.cat(features_by_resolution(self.backbone, views))  # [V*N, D]
        bottleneck = self.head.project(features)
        student = self.head.last_layer(bottleneck).chunk(len(views))  # V x [N, K]
        teacher = self.momentum_encoder(torch.cat(views[:2])).chunk(2)  # 2 x [N, K]
        temperature = teacher_temperature(self.current_epoch, *self.temperatures)
        loss = dino_loss(student, teacher, self.center, self.student_temp, temperature)
        self.center.copy_(dino_center(teacher, self.center, self.center_momentum))
        stats = {"teacher_temperature": torch.tensor(temperature)}
        return loss, {**stats, "embedding": bottleneck[: views[0].shape[0]]}

    def _min_lr_ratio(self, lr: float) -> float:
        """``min_lr / lr`` (capped at 1) for an absolute ``min_lr``, as the official
        ``cosine_scheduler(base_value, final_value=min_lr)``; else the recipe's ratio."""
        return self.recipe.min_lr_ratio if self.min_lr is None else min(1.0, self.min_lr / lr)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Set the weight decay of the decayed parameter group for this optimiser step."""
        progress = self.trainer.global_step / self._total_steps
        decay = cosine_weight_decay(progress, self.recipe.weight_decay, self.weight_decay_end)
        self.optimizers().optimizer.param_groups[0]["weight_decay"] = decay
        self.log("weight_decay", host_scalar(decay), on_step=True)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """During the first ``freeze_last_layer`` epochs, drop the last layer's gradients (the
        official ``cancel_gradients_last_layer``): the optimiser then skips it entirely."""
        if self.current_epoch < self.freeze_last_layer:
            for param in self.head.last_layer.parameters():
                param.grad = None

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """The official ``clip_gradients``: each parameter's gradient scaled to norm <=
        ``clip_grad`` separately (``clip / (norm + 1e-6)``), then the trainer's clipping if set."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if self.clip_grad > 0 and grads:
            norms = torch._foreach_norm(grads)
            factors = [(self.clip_grad / (norm + 1e-6)).clamp(max=1.0) for norm in norms]
            torch._foreach_mul_(grads, factors)
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
