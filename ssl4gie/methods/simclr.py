"""SimCLR [Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv:2002.05709; google-research/simclr]."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ssl4gie.losses import nt_xent_loss
from ssl4gie.methods.base import VIT_RECIPE, ArchitectureKind, Recipe, SSLMethod
from ssl4gie.methods.heads import mlp
from ssl4gie.transforms.views import TwoViews

__all__ = ["SimCLR"]


class SimCLR(SSLMethod):
    """SimCLR: each view's projection must find the other view of its image among the 2N views.

    "We use a MLP with one hidden layer to obtain z_i = g(h_i) = W2 sigma(W1 h_i)" [Chen et al.
    2020, Sec. 2.1]. Loss: :func:`~ssl4gie.losses.nt_xent_loss`.

    Defaults:

    - projector ``num_features -> 2048 -> 128`` (Linear, BN, ReLU, Linear; ``mlp_dim`` 2048 is
      ResNet-50's width). The official TF code also batch-normalises the last layer.
    - temperature 0.5 (the official CIFAR-10 value, better for small batches); the ImageNet
      runs with batch 4096 use 0.1.
    - LARS, lr 0.3 per 256 images (linear scaling; Appendix B.1), wd 1e-6, biases and BN
      excluded from weight decay and LARS adaptation, 10 warm-up epochs, cosine to 0. ViTs:
      :data:`~ssl4gie.methods.base.VIT_RECIPE`.
    - both views in one batch through the network, as the official code (BN statistics over
      the 2N views); views: :meth:`TwoViews.simclr`.

    Args:
        mlp_dim: hidden width (2048).
        dim: projection width (128).
        temperature: 0.5.
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> method = SimCLR("resnet18", mlp_dim=128, dim=32, views=TwoViews.simclr(size=32))
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> loss, stats = method.ssl_loss(method.views(images))
        >>> loss.shape, stats["embedding"].shape
        (torch.Size([]), torch.Size([4, 32]))
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = {
        "cnn": Recipe("lars", base_lr=0.3, weight_decay=1e-6, warmup_epochs=10),
        "vit": VIT_RECIPE,
    }

    def __init__(
        self,
        backbone: str = "resnet50",
        mlp_dim: int = 2048,
        dim: int = 128,
        temperature: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        self.projector = mlp([self.backbone.num_features, mlp_dim, dim])
        self.temperature = temperature

    def default_views(self) -> nn.Module:
        return TwoViews.simclr()

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Two views ``[B, 3, h, w]`` -> NT-Xent loss over the global batch of 2N views."""
        z1, z2 = self.projector(self.backbone(torch.cat(views))).chunk(2)  # [B, dim] each
        return nt_xent_loss(z1, z2, self.temperature), {"embedding": z1}
