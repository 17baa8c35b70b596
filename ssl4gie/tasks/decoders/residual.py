"""The residual fusion decoder shared by DPT and the ResNet depth decoder, and dense heads.

The decoder is DPT's "fusion" stage [Ranftl et al. 2021, Vision Transformers for Dense
Prediction, arXiv:2103.13413, Sec. 3 and Fig. 1], itself RefineNet's [Lin et al. 2017]: each
pyramid level is projected to ``features`` channels by a 3x3 convolution; from the coarsest level
up, a fusion block adds the level (through a residual convolution unit) to the upsampled path,
refines it with a second unit and upsamples it by 2. Four levels at strides 4..32 give a map at
stride 2. With a CNN pyramid (:class:`~ssl4gie.tasks.decoders.pyramid.CNNPyramid`) this is the
residual decoder of the ResNet depth model; with DPT's reassembled ViT tokens it is DPT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DenseModel", "FusionDecoder", "depth_head", "segmentation_head"]


class ResidualConvUnit(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with 3x3 convolutions, ``[B, C, h, w]`` kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class FusionBlock(nn.Module):
    """DPT's feature fusion: ``up2(conv1x1(rcu2(path + rcu1(skip))))``; no skip at the coarsest
    level. ``[B, C, h, w]`` -> ``[B, C, 2h, 2w]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(channels)
        self.refine_unit = ResidualConvUnit(channels)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, path: Tensor, skip: Tensor | None = None) -> Tensor:
        if skip is not None:
            path = path + self.skip_unit(skip)
        path = self.refine_unit(path)
        path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
        return self.project(path)


class FusionDecoder(nn.Module):
    """Pyramid ``[B, C_i, H / s_i, W / s_i]`` (finest first, strides doubling) ->
    ``[B, features, H / (s_0 / 2), ...]`` (stride 2 for strides 4..32).

    Args:
        in_channels: ``C_i`` of each level, finest first.
        features: channels of the decoder (DPT: 256).
    """

    def __init__(self, in_channels: Sequence[int], features: int = 256) -> None:
        super().__init__()
        self.project = nn.ModuleList(
            nn.Conv2d(channels, features, 3, padding=1, bias=False) for channels in in_channels
        )
        self.fuse = nn.ModuleList(FusionBlock(features) for _ in in_channels)
        self.out_channels = features

    def forward(self, pyramid: Sequence[Tensor]) -> Tensor:
        levels = [project(level) for project, level in zip(self.project, pyramid, strict=True)]
        path = self.fuse[-1](levels[-1])
        for fuse, level in zip(reversed(self.fuse[:-1]), reversed(levels[:-1]), strict=True):
            path = fuse(_match(path, level), level)
        return path


def _match(path: Tensor, level: Tensor) -> Tensor:
    """Resize ``path`` to ``level``'s size where odd input sizes made them differ by a pixel."""
    if path.shape[-2:] == level.shape[-2:]:
        return path
    return F.interpolate(path, size=level.shape[-2:], mode="bilinear", align_corners=True)


def segmentation_head(features: int, classes: int) -> nn.Module:
    """DPT's segmentation head: conv3x3-BN-ReLU, dropout 0.1, conv1x1 to ``classes``."""
    return nn.Sequential(
        nn.Conv2d(features, features, 3, padding=1, bias=False),
        nn.BatchNorm2d(features),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Conv2d(features, classes, 1),
    )


def depth_head(features: int) -> nn.Module:
    """DPT's depth head: conv3x3 to ``features / 2``, upsample x2, conv3x3 to 32, ReLU, conv1x1 to
    1. Deviation: no final ReLU (MiDaS predicts non-negative inverse depth); with the
    scale-and-shift-invariant loss the output's sign and offset are free."""
    return nn.Sequential(
        nn.Conv2d(features, features // 2, 3, padding=1),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(features // 2, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 1, 1),
    )


class DenseModel(nn.Module):
    """``encoder`` (images -> pyramid), :class:`FusionDecoder`, ``head``; the output is resized
    to the input: ``[B, 3, H, W]`` -> ``[B, K, H, W]``."""

    def __init__(self, encoder: nn.Module, head: nn.Module, features: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = FusionDecoder(encoder.out_channels, features)
        self.head = head

    def forward(self, images: Tensor) -> Tensor:
        output = self.head(self.decoder(self.encoder(images)))
        if output.shape[-2:] != images.shape[-2:]:
            output = F.interpolate(output, size=images.shape[-2:], mode="bilinear")
        return output
