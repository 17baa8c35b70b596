"""Dynamic Visual Meta-Embedding (DVME): classify with the fused embeddings of several backbones.

Truong et al. 2021, "How Transferable Are Self-supervised Features in Medical Image
Classification Tasks?" (ML4H, arXiv:2108.10048): every backbone's embedding is projected to 512
dimensions; a ViT-style self-attention module attends across these per-backbone tokens (not
across image patches); its outputs are concatenated, projected to 512 and classified. With ``K``
backbones:

    e_k = backbone_k(x)                        [B, D_k]   pooled embedding of branch k
    t_k = P_k e_k                              [B, E]     E = 512, one Linear per branch
    a = MultiheadAttention(t, t, t)            [B, K, E]  attention across the K tokens
    z = F concat(a_1, ..., a_K)                [B, E]     Linear(K E, E)
    logits = C z                               [B, num_classes]

What this follows and where it deviates:

- the attention is one ``nn.MultiheadAttention`` layer (``num_heads`` heads, no residual, norm
  or MLP: the paper describes only the attention); nothing is non-linear outside it, as the
  paper names no activation. With one backbone the attention weight is exactly 1, so the model
  is an affine map of that backbone's embedding, i.e. a linear classifier.
- the embeddings are the backbones' pooled timm features (average pool for CNNs, class token
  for ViTs); the paper concatenates DINO's class tokens of the last four blocks instead.
- the fused tokens are concatenated as in the paper, not averaged.
- input: the batch is normalised with the first backbone's ``pretrained_cfg`` mean and std (the
  task's augmentation runs once); a branch trained with other statistics re-normalises its
  input to its own (an affine map per channel, :class:`Branches`).

Training, loss and metrics are those of :class:`~ssl4gie.tasks.classification.ClassificationTask`
(class-weighted cross-entropy, accuracy, macro F1, kappa, AUROC): this task replaces only the
model. The branches are frozen by default and then stay in eval mode; ``freeze_backbones=False``
trains them end to end with the head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ssl4gie.backbones import create_backbone
from ssl4gie.errors import InputError
from ssl4gie.tasks.base import backbone_mean_std
from ssl4gie.tasks.classification import ClassificationTask

__all__ = ["Branches", "MetaEmbeddingClassifier", "MetaEmbeddingHead"]


class Branches(nn.Module):
    """``K`` backbones run on the same images; returns their pooled embeddings.

    Args:
        backbones: timm feature extractors (``num_classes=0``).
        mean, std: the normalisation of the incoming images; branch ``k`` maps them to its own
            ``pretrained_cfg`` statistics: ``x_k = (x std + mean - mean_k) / std_k``.

    ``forward``: normalised ``[B, 3, H, W]`` -> list of ``[B, D_k]``, one per backbone.
    """

    def __init__(
        self,
        backbones: list[nn.Module],
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(backbones)
        self.num_features = [backbone.num_features for backbone in backbones]
        stats = [backbone_mean_std(backbone) for backbone in backbones]
        mean_in, std_in = torch.tensor(mean), torch.tensor(std)
        scale = torch.stack([std_in / torch.tensor(s) for _, s in stats])  # [K, 3]
        shift = torch.stack([(mean_in - torch.tensor(m)) / torch.tensor(s) for m, s in stats])
        self.register_buffer("scale", scale.view(-1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(-1, 1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> list[Tensor]:
        return [
            backbone(images * scale + shift)
            for backbone, scale, shift in zip(self.branches, self.scale, self.shift, strict=True)
        ]


class MetaEmbeddingHead(nn.Module):
    """Project each embedding to ``embed_dim``, attend across them, fuse and classify.

    Args:
        in_features: ``D_k`` of each branch.
        num_classes: classes of the classifier.
        embed_dim: size of the projected tokens and of the fused embedding (DVME: 512).
        num_heads: attention heads (must divide ``embed_dim``).

    ``forward``: list of ``[B, D_k]`` -> logits ``[B, num_classes]`` (see the module docstring).
    """

    def __init__(
        self, in_features: list[int], num_classes: int, embed_dim: int = 512, num_heads: int = 8
    ) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(d, embed_dim) for d in in_features)
        self.attention = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.fuse = nn.Linear(len(in_features) * embed_dim, embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, embeddings: list[Tensor]) -> Tensor:
        tokens = torch.stack(
            [project(e) for project, e in zip(self.projections, embeddings, strict=True)], dim=1
        )  # [B, K, E]
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.classifier(self.fuse(attended.flatten(1)))


class MetaEmbeddingClassifier(ClassificationTask):
    """DVME classification with several backbones (Truong et al. 2021); see the module docstring.

    Used like :class:`~ssl4gie.tasks.classification.ClassificationTask`, with a
    ``ClassificationDataModule`` and a Lightning ``Trainer``. ``self.backbone`` is a
    :class:`Branches` (checkpoint keys ``backbone.branches.<k>.*``); the projections, attention,
    fusion and classifier are ``self.head`` (a :class:`MetaEmbeddingHead`).

    Args:
        backbones: timm or zoo names, one per branch (e.g. a SimCLR, a SwAV and a DINO backbone).
        num_classes: classes of the dataset (checked against the datamodule and every label).
        freeze_backbones: train only the head (default, the branches stay in eval mode); False
            fine-tunes every branch too.
        embed_dim, num_heads: token size (DVME: 512) and attention heads.
        pretrained: as in :class:`~ssl4gie.tasks.base.TaskModule`, for every branch.
        backbone_kwargs: one dict of ``create_backbone`` arguments per branch (e.g.
            ``[{}, {"img_size": 64}]`` for a ResNet and a ViT); None: none.
        class_weighted, quadratic_kappa: see
            :class:`~ssl4gie.tasks.classification.ClassificationTask`.
        lr, weight_decay, patience, augment: see :class:`~ssl4gie.tasks.base.TaskModule`.

    Example:
        >>> model = MetaEmbeddingClassifier(["resnet18", "resnet34"], num_classes=6)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 6])
    """

    def __init__(
        self,
        backbones: list[str],
        num_classes: int = 6,
        freeze_backbones: bool = True,
        embed_dim: int = 512,
        num_heads: int = 8,
        pretrained: bool | None = None,
        backbone_kwargs: list[dict[str, Any]] | None = None,
        class_weighted: bool = True,
        quadratic_kappa: bool = False,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        patience: int = 10,
        augment: nn.Module | None = None,
    ) -> None:
        if backbone_kwargs is None:
            backbone_kwargs = [{} for _ in backbones]
        _check_branches(backbones, backbone_kwargs, embed_dim, num_heads)
        self.branch_names, self.branch_kwargs = list(backbones), backbone_kwargs
        super().__init__(
            backbones[0],
            num_classes=num_classes,
            mode="linear" if freeze_backbones else "finetune",
            class_weighted=class_weighted,
            quadratic_kappa=quadratic_kappa,
            pretrained=pretrained,
            backbone_kwargs=backbone_kwargs[0],
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            augment=augment,
        )

    def configure_models(self) -> None:
        """Wrap the first backbone (built by the base) and the others in :class:`Branches`."""
        pretrained = self.hparams.pretrained
        others = [
            create_backbone(name, pretrained=pretrained, **kwargs)
            for name, kwargs in zip(self.branch_names[1:], self.branch_kwargs[1:], strict=True)
        ]
        self.backbone = Branches([self.backbone, *others], self.mean, self.std)
        self.head = MetaEmbeddingHead(
            self.backbone.num_features,
            self.num_classes,
            self.hparams.embed_dim,
            self.hparams.num_heads,
        )


def _check_branches(
    backbones: list[str], backbone_kwargs: list[dict[str, Any]], embed_dim: int, num_heads: int
) -> None:
    """Raise :class:`InputError` for an empty backbone list, a ``backbone_kwargs`` list of
    another length, or heads that do not divide ``embed_dim``."""
    if not backbones:
        raise InputError("backbones is empty; give at least one backbone name")
    if len(backbone_kwargs) != len(backbones):
        raise InputError(
            f"backbone_kwargs has {len(backbone_kwargs)} entries for {len(backbones)} backbones; "
            "give one dict per backbone ({} for none)"
        )
    if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
        raise InputError(
            f"num_heads ({num_heads}) must divide embed_dim ({embed_dim}); DVME uses 512 and 8"
        )
