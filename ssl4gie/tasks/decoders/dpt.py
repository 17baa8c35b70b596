"""DPT's reassembly of ViT tokens into a feature pyramid [Ranftl et al. 2021, arXiv:2103.13413].

Four transformer blocks are tapped (3/6/9/12 of ViT-B, 1-based, as DPT and SSL4GIE; evenly
spaced for other depths, :func:`tap_blocks`); each tap's patch tokens ``[B, D, h, w]`` (grid
``h = H / p``) are projected by a 1x1 convolution to ``C_i`` channels and resampled to strides
4, 8, 16 and 32 of the image (transposed convolutions x4 and x2, identity, strided 3x3
convolution), giving the input of :class:`~ssl4gie.tasks.decoders.residual.FusionDecoder`.
The readout (class token) is ignored (DPT's "ignore" variant); images of any size that is a
multiple of the patch size work (timm ``dynamic_img_size`` interpolates position embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ssl4gie.backbones import is_vit
from ssl4gie.errors import InputError
from ssl4gie.tasks.decoders.pyramid import CNNPyramid

__all__ = ["DPT_CHANNELS", "DPTEncoder", "pyramid_encoder", "tap_blocks"]

DPT_CHANNELS = (96, 192, 384, 768)
"""Reassembly channels of DPT-Base."""


def tap_blocks(depth: int, taps: int = 4) -> list[int]:
    """0-based indices of ``taps`` evenly spaced blocks ending at the last one.

    >>> tap_blocks(12)
    [2, 5, 8, 11]
    """
    if depth < taps:
        raise InputError(f"a ViT with {depth} blocks cannot give {taps} distinct taps")
    return [round(depth * (k + 1) / taps) - 1 for k in range(taps)]


def _resample(channels: int, patch: int, stride: int) -> nn.Module:
    """Resample a map at stride ``patch`` to ``stride`` (power-of-two ratios)."""
    if stride < patch:
        factor = patch // stride
        return nn.ConvTranspose2d(channels, channels, factor, stride=factor)
    if stride > patch:
        return nn.Conv2d(channels, channels, 3, stride=stride // patch, padding=1)
    return nn.Identity()


class DPTEncoder(nn.Module):
    """ViT ``[B, 3, H, W]`` -> four maps ``[B, C_i, H / s, W / s]``, ``s`` in 4, 8, 16, 32.

    Args:
        backbone: a timm ViT (``forward_intermediates``), shared, not copied.
        blocks: 0-based blocks to tap (None: :func:`tap_blocks`).
        channels: ``C_i`` per level (DPT-Base: 96, 192, 384, 768).
    """

    def __init__(
        self,
        backbone: nn.Module,
        blocks: Sequence[int] | None = None,
        channels: Sequence[int] = DPT_CHANNELS,
    ) -> None:
        super().__init__()
        depth = len(backbone.blocks)
        self.blocks = list(blocks) if blocks is not None else tap_blocks(depth)
        if len(self.blocks) != 4 or not all(0 <= b < depth for b in self.blocks):
            raise InputError(f"DPT taps 4 blocks in 0..{depth - 1}, got {self.blocks}")
        patch = backbone.patch_embed.patch_size[0]
        self.backbone = backbone
        self.reassemble = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(backbone.embed_dim, width, 1),
                _resample(width, patch, stride),
            )
            for width, stride in zip(channels, (4, 8, 16, 32), strict=True)
        )
        self.out_channels = list(channels)

    def forward(self, images: Tensor) -> list[Tensor]:
        taps = self.backbone.forward_intermediates(
            images, indices=self.blocks, output_fmt="NCHW", intermediates_only=True
        )
        return [layer(tap) for layer, tap in zip(self.reassemble, taps, strict=True)]


def pyramid_encoder(backbone: nn.Module, blocks: Sequence[int] | None = None) -> nn.Module:
    """The pyramid of strides 4..32 of any backbone: DPT reassembly for ViTs, timm's
    ``feature_info`` levels otherwise (:class:`InputError` if the backbone has none)."""
    return DPTEncoder(backbone, blocks) if is_vit(backbone) else CNNPyramid(backbone)
