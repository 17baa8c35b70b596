"""BYOL [Grill et al. 2020, "Bootstrap Your Own Latent", arXiv:2006.07733;
google-deepmind/deepmind-research ``byol``]."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from ssl4gie.losses import byol_loss
from ssl4gie.methods.base import VIT_RECIPE, ArchitectureKind, MomentumEncoder, Recipe, SSLMethod
from ssl4gie.methods.heads import mlp
from ssl4gie.transforms.views import TwoViews

__all__ = ["BYOL"]


class BYOL(SSLMethod):
    """BYOL: an online network predicts the target network's projection of the other view.

    "the online network [...] outputs a prediction q_theta(z_theta) [...] the target network
    [...] its parameters xi are an exponential moving average of the online parameters theta"
    [Grill et al. 2020, Sec. 3.1]. Loss: ``byol_loss(p1, t2) + byol_loss(p2, t1)`` with
    ``p = predictor(projector(backbone))`` and ``t`` from the target (momentum) copy of
    backbone + projector, without gradient.

    Official defaults [Sec. 3.3 and Appendix C]:

    - projector ``num_features -> 4096 -> 256`` (Linear, BN, ReLU, Linear); predictor
      ``256 -> 4096 -> 256``, the same MLP.
    - target momentum tau_base 0.996 rising to 1 on a cosine.
    - LARS, lr 0.2 per 256 images, wd 1.5e-6, biases and BN excluded from weight decay and LARS
      adaptation, 10 warm-up epochs, cosine to 0. ViTs: :data:`~ssl4gie.methods.base.VIT_RECIPE`.
    - these defaults are the 1000-epoch preset; the official presets by epochs
      (google-deepmind/deepmind-research ``byol/configs/byol.py``: ``_LR_PRESETS``,
      ``_WD_PRESETS``, ``_EMA_PRESETS``) are lr / wd / tau_base 0.45 / 1e-6 / 0.99 at 100,
      0.3 / 1e-6 / 0.99 at 300 and 0.2 / 1.5e-6 / 0.996 at 1000 epochs: pass the set that
      matches the trainer's ``max_epochs``, never a mix.
    - views: :meth:`TwoViews.byol` (Table 6).

    Args:
        mlp_dim: hidden width of projector and predictor (4096).
        dim: projection width (256).
        base_momentum: 0.996.
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> import torch
        >>> method = BYOL("resnet18", mlp_dim=128, dim=32, views=TwoViews.byol(size=32))
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> loss, stats = method.ssl_loss(method.views(images))
        >>> loss.shape, stats["embedding"].shape
        (torch.Size([]), torch.Size([4, 32]))
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = {
        "cnn": Recipe("lars", base_lr=0.2, weight_decay=1.5e-6, warmup_epochs=10),
        "vit": VIT_RECIPE,
    }

    def __init__(
        self,
        backbone: str = "resnet50",
        mlp_dim: int = 4096,
        dim: int = 256,
        base_momentum: float = 0.996,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        self.projector = mlp([self.backbone.num_features, mlp_dim, dim])
        self.predictor = mlp([dim, mlp_dim, dim])
        self.momentum_encoder = MomentumEncoder([self.backbone, self.projector], base_momentum)

    def default_views(self) -> nn.Module:
        return TwoViews.byol()

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Two views ``[B, 3, h, w]`` -> symmetric BYOL loss, each view its own batch."""
        x1, x2 = views
        z1 = self.projector(self.backbone(x1))  # [B, dim]
        p1 = self.predictor(z1)
        p2 = self.predictor(self.projector(self.backbone(x2)))
        t1, t2 = self.momentum_encoder(x1), self.momentum_encoder(x2)
        return byol_loss(p1, t2) + byol_loss(p2, t1), {"embedding": z1}
