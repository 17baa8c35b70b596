"""Barlow Twins [Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", arXiv:2103.03230; facebookresearch/barlowtwins]."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from ssl4gie.errors import InputError
from ssl4gie.losses import barlow_twins_loss
from ssl4gie.methods.base import VIT_RECIPE, ArchitectureKind, Recipe, SSLMethod
from ssl4gie.methods.heads import mlp
from ssl4gie.transforms.views import TwoViews

__all__ = ["BarlowTwins"]


class BarlowTwins(SSLMethod):
    """Barlow Twins: the cross-correlation of the two views' projections is pushed to identity.

    "The objective function [...] tries to equate the diagonal elements of the
    cross-correlation matrix to 1, [and] the off-diagonal elements [...] to 0"
    [Zbontar et al. 2021, Sec. 2]. Loss: :func:`~ssl4gie.losses.barlow_twins_loss`.

    Official defaults (barlowtwins ``main.py``):

    - projector ``num_features -> 8192 -> 8192 -> 8192`` (``--projector 8192-8192-8192``):
      ``Linear(bias=False)``, BN, ReLU; last ``Linear(bias=False)``.
    - ``lambd`` 0.0051.
    - LARS, lr 0.2 per 256 images for weights and 0.0048 for biases and BN parameters
      (``--learning-rate-weights/-biases``, here ``bias_lr_ratio = 0.0048 / 0.2``), biases and BN
      excluded from weight decay and LARS adaptation, 10 warm-up epochs, cosine to 0.001 of the
      peak. Weight decay 1.5e-6 as the paper's "Implementation Details" (arXiv:2103.03230);
      ``main.py``'s ``--weight-decay`` default is 1e-6. ViTs:
      :data:`~ssl4gie.methods.base.VIT_RECIPE`.
    - views: :meth:`TwoViews.barlow_twins`.

    Gradient scale under DDP (barlowtwins issue #8). ``main.py`` sums the cross-correlation with
    a raw ``torch.distributed.all_reduce(c)`` (no autograd), so after DDP averages the gradients
    over W processes the update follows ``1/W`` of the joint-batch gradient (1/16 in the README's
    16-GPU run, 1/32 in the paper's 32-GPU one). LARS normalises the weights' step, so for them
    only weight decay changes (W times stronger relative to the gradient); biases and BN
    parameters (not adapted) move W times more slowly. By default the sum here is autograd-aware:
    W processes train exactly as one process on the joint batch. ``official_grad_scale=True``
    restores the released behaviour.

    Args:
        projector_dims: output widths of the projector layers ([8192, 8192, 8192]).
        lambd: weight of the off-diagonal term (0.0051).
        official_grad_scale: sum the cross-correlation over processes without autograd, as
            ``main.py`` (the DDP update is then 1/W of the joint-batch one); default False.
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> import torch
        >>> method = BarlowTwins("resnet18", projector_dims=[64, 64],
        ...                      views=TwoViews.barlow_twins(size=32))
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> loss, stats = method.ssl_loss(method.views(images))
        >>> loss.shape, stats["embedding"].shape
        (torch.Size([]), torch.Size([4, 64]))
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = {
        "cnn": Recipe(
            "lars",
            base_lr=0.2,
            weight_decay=1.5e-6,
            warmup_epochs=10,
            min_lr_ratio=0.001,
            bias_lr_ratio=0.0048 / 0.2,
        ),
        "vit": VIT_RECIPE,
    }

    def __init__(
        self,
        backbone: str = "resnet50",
        projector_dims: list[int] | None = None,
        lambd: float = 0.0051,
        official_grad_scale: bool = False,
        **kwargs: Any,
    ) -> None:
        if not lambd >= 0:
            raise InputError(f"BarlowTwins: lambd must be >= 0 (the paper: 0.0051), got {lambd}")
        super().__init__(backbone, **kwargs)
        dims = [8192, 8192, 8192] if projector_dims is None else list(projector_dims)
        self.projector = mlp([self.backbone.num_features, *dims], bias=False)
        self.lambd, self.official_grad_scale = lambd, official_grad_scale

    def default_views(self) -> nn.Module:
        return TwoViews.barlow_twins()

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Two views ``[B, 3, h, w]`` -> Barlow Twins loss, each view its own batch."""
        x1, x2 = views
        z1 = self.projector(self.backbone(x1))  # [B, D]
        z2 = self.projector(self.backbone(x2))
        loss = barlow_twins_loss(z1, z2, self.lambd, self.official_grad_scale)
        return loss, {"embedding": z1}
