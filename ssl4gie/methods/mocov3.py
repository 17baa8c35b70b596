"""MoCo v3 [Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers", arXiv:2104.02057; facebookresearch/moco-v3]."""

from __future__ import annotations

from typing import Any, ClassVar

from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ssl4gie.backbones import is_vit
from ssl4gie.errors import InputError
from ssl4gie.losses import info_nce_loss
from ssl4gie.methods.base import ArchitectureKind, MomentumEncoder, Recipe, SSLMethod
from ssl4gie.methods.heads import mlp
from ssl4gie.methods.vit_init import init_vit, loads_weights
from ssl4gie.transforms.views import TwoViews

__all__ = ["MoCoV3"]


class MoCoV3(SSLMethod):
    """MoCo v3: a query encoder with a predictor against a momentum key encoder.

    "we take two crops for each image under random data augmentation. They are encoded by two
    encoders, f_q and f_k, with output vectors q and k [...] we use the keys that naturally
    co-exist in the same batch" [Chen et al. 2021, Sec. 3]. The loss is
    ``info_nce_loss(q1, k2) + info_nce_loss(q2, k1)`` with ``q = predictor(projector(backbone))``
    and ``k`` from the momentum copy of backbone + projector, updated after every optimiser step.

    Official defaults (moco-v3 ``builder.py``, ``main_moco.py``, ``CONFIG.md``):

    - heads (``_build_mlp``): projector ``num_features -> 4096 -> 256`` for ResNets
      (``MoCo_ResNet``), ``-> 4096 -> 4096 -> 256`` for ViTs (``MoCo_ViT``), each ending in
      ``BN(affine=False)``; predictor ``256 -> 4096 -> 256``, without the last BN for ResNets,
      with it for ViTs; every Linear without bias.
    - temperature 1.0 for ResNets (``--moco-t`` default), 0.2 for ViTs.
    - momentum 0.99 rising to 1 on a cosine (``--moco-m-cos``).
    - ResNet-50: LARS, lr 0.6 per 256 (``--lr``), wd 1e-6, 10 warm-up epochs (100-epoch runs).
      ViT: AdamW, lr 1.5e-4 per 256, wd 0.1, 40 warm-up epochs. Deviation: the official AdamW
      decays every parameter; here biases and norm parameters get no weight decay.
    - views: :meth:`TwoViews.mocov3` (the ResNet runs use ``crop_scale=(0.2, 1.0)``).
    - ViT backbones (timm ``VisionTransformer``) built without pretrained weights get the
      official ``vits.py`` model: fixed 2D sin-cos position embedding and its initialisation
      (:func:`~ssl4gie.methods.vit_init.init_vit`), applied before the momentum copy is made.
      Loaded weights are kept (their position table frozen).

    Args:
        mlp_dim: hidden width of projector and predictor (4096).
        dim: output width (256).
        temperature: None: 1.0 for CNNs, 0.2 for ViTs.
        base_momentum: 0.99.
        freeze_patch_embed: ViTs only; the official ``--stop-grad-conv1`` (a random, frozen
            patch projection), which "alleviates the instability" [Sec. 4.2].
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> import torch
        >>> method = MoCoV3("resnet18", mlp_dim=128, dim=32, views=TwoViews.mocov3(size=32))
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> views = method.views(images)  # 2 x [4, 3, 32, 32]
        >>> loss, stats = method.ssl_loss(views)
        >>> loss.shape, stats["embedding"].shape
        (torch.Size([]), torch.Size([4, 32]))
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = {
        "cnn": Recipe("lars", base_lr=0.6, weight_decay=1e-6, warmup_epochs=10),
        "vit": Recipe("adamw", base_lr=1.5e-4, weight_decay=0.1, warmup_epochs=40),
    }

    def __init__(
        self,
        backbone: str = "resnet50",
        mlp_dim: int = 4096,
        dim: int = 256,
        temperature: float | None = None,
        base_momentum: float = 0.99,
        freeze_patch_embed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        vit = self.kind == "vit"
        self.temperature = temperature if temperature is not None else (0.2 if vit else 1.0)
        hidden = [mlp_dim, mlp_dim] if vit else [mlp_dim]
        self.projector = mlp([self.backbone.num_features, *hidden, dim], bias=False, last_bn=True)
        self.predictor = mlp([dim, mlp_dim, dim], bias=False, last_bn=vit)
        if isinstance(self.backbone, VisionTransformer):
            pretrained = loads_weights(backbone, kwargs.get("backbone_kwargs"))
            init_vit(self.backbone, "mocov3", pretrained)
        if freeze_patch_embed:
            _freeze_patch_embed(self.backbone, backbone)
        self.momentum_encoder = MomentumEncoder([self.backbone, self.projector], base_momentum)

    def default_views(self) -> nn.Module:
        return TwoViews.mocov3()

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Two views ``[B, 3, h, w]`` -> symmetric InfoNCE loss; each view is its own batch (BN
        statistics per view), as in the official ``forward``."""
        x1, x2 = views
        z1 = self.projector(self.backbone(x1))  # [B, dim]
        q1 = self.predictor(z1)
        q2 = self.predictor(self.projector(self.backbone(x2)))
        k1, k2 = self.momentum_encoder(x1), self.momentum_encoder(x2)
        loss = info_nce_loss(q1, k2, self.temperature) + info_nce_loss(q2, k1, self.temperature)
        return loss, {"embedding": z1}


def _freeze_patch_embed(backbone: nn.Module, name: str) -> None:
    if not is_vit(backbone):
        raise InputError(
            f"freeze_patch_embed needs a ViT backbone with a patch embedding, got {name!r}; "
            "drop freeze_patch_embed or pick a ViT"
        )
    backbone.patch_embed.requires_grad_(False)
