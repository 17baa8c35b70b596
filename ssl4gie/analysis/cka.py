"""Linear centred kernel alignment (CKA) and layer-wise feature reuse between two backbones.

Linear CKA [Kornblith et al. 2019, arXiv:1905.00414, Sec. 3] compares two representations of the
same ``N`` examples, ``X`` ``[N, D1]`` and ``Y`` ``[N, D2]``, after centring each column:

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

It lies in [0, 1], is 1 for identical representations and is invariant to orthogonal transforms
and isotropic scaling of either (not to arbitrary invertible linear maps).

Feature reuse [Neyshabur et al. 2020, arXiv:2008.11687; Jiang et al. 2024,
arXiv:2405.08657]: the CKA between the same block of two networks (e.g. before and after
fine-tuning, or wild- and self-pretrained), block by block; high CKA in a block means its
features were reused. :func:`layerwise_cka` computes it over a set of images for any timm
backbone with ``forward_intermediates``.

Deviation, for memory: each block's feature map ``[N, C, h, w]`` (for a ViT its patch tokens as
a map, class and register tokens dropped) is averaged over its spatial positions to ``[N, C]``
before the CKA, so the features of a whole test set fit in memory. Pooled CKA compares the
channels' image-level responses; CKA on the flattened maps (``[N, C h w]``) would also compare
where in the image they respond.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ssl4gie.errors import InputError

__all__ = ["block_features", "layerwise_cka", "linear_cka"]


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two representations of the same ``N`` examples, in float64.

    Uses the features' covariances (``[D, D]``) or, when cheaper (``N`` small against ``D``), the
    examples' Gram matrices ``K = X X^T``, ``L = Y Y^T`` (``[N, N]``):
    ``||Y^T X||_F^2 = <K, L>_F`` and ``||X^T X||_F = ||K||_F`` for centred ``X``, ``Y``.

    Args:
        x: ``[N, D1]`` features; y: ``[N, D2]`` features of the same examples, in the same order.

    Returns:
        CKA in [0, 1]; NaN if either representation is constant over the examples (undefined).

    Example:
        >>> x = torch.randn(100, 8)
        >>> round(linear_cka(x, 3.7 * x), 6)
        1.0
    """
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(
            f"CKA needs features [N, D1] and [N, D2] of the same N examples, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    n, d1, d2 = len(x), x.shape[1], y.shape[1]
    if n < 2:
        raise InputError(f"CKA needs features of at least 2 examples, got {n}")
    x, y = _centre(x), _centre(y)
    if n * (d1 + d2) < d1 * d2 + d1 * d1 + d2 * d2:  # Gram matrices are cheaper
        gram_x, gram_y = x @ x.T, y @ y.T
        cross, norm_x, norm_y = (gram_x * gram_y).sum(), gram_x.norm(), gram_y.norm()
    else:
        cross, norm_x, norm_y = (y.T @ x).square().sum(), (x.T @ x).norm(), (y.T @ y).norm()
    return float(cross / (norm_x * norm_y))


def _centre(features: Tensor) -> Tensor:
    """``[N, D]`` -> float64 ``[N, D]`` with zero-mean columns."""
    features = features.to(torch.float64)
    return features - features.mean(dim=0, keepdim=True)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode; restore every submodule's own mode on exit."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for child, training in modes:
            child.training = training


@torch.no_grad()
def block_features(backbone: nn.Module, images: Tensor) -> list[Tensor]:
    """One pooled feature per block of a timm backbone, in eval mode and without gradients.

    The blocks are those of timm's ``forward_intermediates`` (and ``feature_info``): for a ResNet
    the stem and the four stages (5), for a ViT every transformer block (12 for ViT-Ti/S/B). A
    timm ``features_only`` net (the encoder of a segmentation task) gives its feature maps.

    Args:
        backbone: a timm model with ``forward_intermediates`` (most timm architectures) or a
            timm ``features_only`` net.
        images: normalised ``[B, 3, H, W]`` on the backbone's device.

    Returns:
        ``[B, C_i]`` per block ``i``: the block's output averaged over its spatial positions
        (patch tokens for a ViT; see the module docstring). The backbone's modes are restored.

    Example:
        >>> from ssl4gie.backbones import create_backbone
        >>> model = create_backbone("resnet18")
        >>> [f.shape[1] for f in block_features(model, torch.randn(2, 3, 64, 64))]
        [64, 64, 128, 256, 512]
    """
    if hasattr(backbone, "forward_intermediates"):
        forward = functools.partial(backbone.forward_intermediates, intermediates_only=True)
    elif hasattr(backbone, "feature_info"):  # timm features_only nets (segmentation encoders)
        forward = backbone
    else:
        raise InputError(
            f"{type(backbone).__name__} has no forward_intermediates; use a timm backbone that "
            "has it (timm >= 1.0: ResNet, ViT, Swin, ConvNeXt, ...)"
        )
    with _eval_mode(backbone):
        maps = forward(images)
    return [feature.reshape(*feature.shape[:2], -1).mean(dim=2) for feature in maps]


def layerwise_cka(
    backbone_a: nn.Module, backbone_b: nn.Module, batches: Iterable[Tensor]
) -> list[float]:
    """Linear CKA between the same blocks of two backbones over a set of images.

    Args:
        backbone_a, backbone_b: timm backbones with the same number of blocks (the same
            architecture, e.g. a pretrained one and its fine-tuned copy).
        batches: normalised image batches ``[B, 3, H, W]`` (e.g. the images of a test loader
            after the task's normalisation); both backbones see the same images. Each is moved
            to the backbone's device.

    Returns:
        one CKA per block (see :func:`block_features`), in block order.

    Example:
        >>> from ssl4gie.backbones import create_backbone
        >>> before, after = create_backbone("resnet18"), create_backbone("resnet18")
        >>> len(layerwise_cka(before, after, [torch.randn(8, 3, 64, 64)]))
        5
    """
    features: tuple[list[list[Tensor]], list[list[Tensor]]] = ([], [])
    for images in batches:
        for backbone, blocks in zip((backbone_a, backbone_b), features, strict=True):
            device = next(backbone.parameters()).device
            blocks.append([f.cpu() for f in block_features(backbone, images.to(device))])
    if not features[0]:
        raise InputError("layerwise_cka got no image batches; pass at least one batch")
    per_block_a, per_block_b = (list(zip(*blocks, strict=True)) for blocks in features)
    if len(per_block_a) != len(per_block_b):
        raise InputError(
            f"the backbones have {len(per_block_a)} and {len(per_block_b)} blocks; compare two "
            "backbones of the same architecture"
        )
    return [
        linear_cka(torch.cat(a), torch.cat(b))
        for a, b in zip(per_block_a, per_block_b, strict=True)
    ]
