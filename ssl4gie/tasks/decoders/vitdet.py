"""ViTDet's simple feature pyramid for detection with a plain ViT [Li et al. 2022, Exploring Plain
Vision Transformer Backbones for Object Detection, arXiv:2203.16527, Sec. 3 and Fig. 2c].

Only the last block's map (stride 16 for 16 px patches) is used: transposed convolutions give
strides 4 (two, with LayerNorm and GELU between) and 8, identity 16, max pooling 32; each level
then gets a 1x1 and a 3x3 convolution to ``out_channels`` with LayerNorm, and a max pooling of
the coarsest gives stride 64, as torchvision's FPN ``"pool"`` level. Position embeddings are
interpolated to any input size by timm (``dynamic_img_size``).

Windowed attention (ViTDet Sec. 3, "window attention with a few global blocks"): with
``window_size``, every block except four evenly spaced ones (2/5/8/11 of ViT-B) attends within
non-overlapping windows of ``window_size`` x ``window_size`` patches (the grid zero-padded to a
multiple, as ViTDet). Deviation for timm's class token: in a windowed block each window attends
together with the prefix tokens, and the prefix tokens' outputs are averaged over windows.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import Tensor, nn

from ssl4gie.errors import InputError
from ssl4gie.tasks.decoders.dpt import tap_blocks

__all__ = ["SimpleFeaturePyramid", "WindowedAttention"]


class WindowedAttention:
    """Forward hooks that make a timm attention module attend within windows.

    Before the module: ``[B, P + h * w, D]`` tokens -> ``[B * n, P + s * s, D]``, one row per
    window with the ``P`` prefix tokens; after: back to ``[B, P + h * w, D]``. Hooks leave the
    module and its state-dict keys unchanged, so the fine-tuned backbone exports as a plain timm
    ViT. ``grid = (h, w)`` must be set before each forward (:class:`SimpleFeaturePyramid` does).
    """

    def __init__(self, attention: nn.Module, window_size: int, prefix_tokens: int) -> None:
        self.window_size, self.prefix_tokens = window_size, prefix_tokens
        self.grid: tuple[int, int] = (0, 0)
        self._windows: tuple[int, int, int] = (0, 0, 0)  # batch, rows, cols of the last input
        attention.register_forward_pre_hook(self.partition)
        attention.register_forward_hook(self.merge)

    def partition(self, module: nn.Module, args: tuple) -> tuple:
        x, *rest = args
        p, s = self.prefix_tokens, self.window_size
        (h, w), (batch, _, dim) = self.grid, x.shape
        tokens = F.pad(x[:, p:].reshape(batch, h, w, dim), (0, 0, 0, -w % s, 0, -h % s))
        rows, cols = tokens.shape[1] // s, tokens.shape[2] // s
        self._windows = (batch, rows, cols)
        windows = tokens.view(batch, rows, s, cols, s, dim).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(batch * rows * cols, s * s, dim)
        prefix = x[:, :p].repeat_interleave(rows * cols, dim=0)
        return (torch.cat([prefix, windows], dim=1), *rest)

    def merge(self, module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        p, s = self.prefix_tokens, self.window_size
        (h, w), (batch, rows, cols), dim = self.grid, self._windows, out.shape[-1]
        prefix = out[:, :p].reshape(batch, rows * cols, p, dim).mean(dim=1)
        tokens = out[:, p:].reshape(batch, rows, cols, s, s, dim).permute(0, 1, 3, 2, 4, 5)
        tokens = tokens.reshape(batch, rows * s, cols * s, dim)[:, :h, :w]
        return torch.cat([prefix, tokens.reshape(batch, h * w, dim)], dim=1)


def _level(in_channels: int, out_channels: int, resample: list[nn.Module]) -> nn.Sequential:
    """Resampling steps, then conv1x1-LN-conv3x3-LN to ``out_channels`` (ViTDet)."""
    return nn.Sequential(
        *resample,
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        LayerNorm2d(out_channels),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        LayerNorm2d(out_channels),
    )


class SimpleFeaturePyramid(nn.Module):
    """ViT ``[B, 3, H, W]`` -> ``OrderedDict`` of ``[B, out_channels, H / s, W / s]`` for
    ``s`` = 4, 8, 16, 32 (keys ``"0"``..``"3"``) and 64 (``"pool"``), the input torchvision's
    Faster R-CNN expects from a backbone (``out_channels`` attribute included).

    Args:
        backbone: a timm ViT with 16 px patches (shared, not copied).
        out_channels: channels of every level (256 as in ViTDet and torchvision).
        window_size: patches per window side for windowed attention; None: global attention.
    """

    def __init__(
        self, backbone: nn.Module, out_channels: int = 256, window_size: int | None = None
    ) -> None:
        super().__init__()
        if backbone.patch_embed.patch_size[0] != 16:
            raise InputError("the ViTDet pyramid needs 16 px patches (stride 16)")
        self.backbone, self.out_channels = backbone, out_channels
        self.windowed = self._window_blocks(window_size) if window_size else []
        d = backbone.embed_dim
        up = nn.ConvTranspose2d
        self.levels = nn.ModuleList(
            [
                _level(
                    d // 4,
                    out_channels,
                    [up(d, d // 2, 2, 2), LayerNorm2d(d // 2), nn.GELU(), up(d // 2, d // 4, 2, 2)],
                ),
                _level(d // 2, out_channels, [up(d, d // 2, 2, 2)]),
                _level(d, out_channels, []),
                _level(d, out_channels, [nn.MaxPool2d(2)]),
            ]
        )

    def _window_blocks(self, window_size: int) -> list[WindowedAttention]:
        """Wrap the attention of every block but the four global ones."""
        blocks = self.backbone.blocks
        global_blocks = set(tap_blocks(len(blocks)))
        prefix = self.backbone.num_prefix_tokens
        windowed = []
        for i, block in enumerate(blocks):
            if i not in global_blocks:
                windowed.append(WindowedAttention(block.attn, window_size, prefix))
        return windowed

    def forward(self, images: Tensor) -> OrderedDict[str, Tensor]:
        patch = self.backbone.patch_embed.patch_size[0]
        for attention in self.windowed:
            attention.grid = (images.shape[-2] // patch, images.shape[-1] // patch)
        last = len(self.backbone.blocks) - 1
        (features,) = self.backbone.forward_intermediates(
            images, indices=[last], output_fmt="NCHW", intermediates_only=True
        )
        maps = [level(features) for level in self.levels]
        names = [str(i) for i in range(len(maps))]
        return OrderedDict([*zip(names, maps, strict=True), ("pool", F.max_pool2d(maps[-1], 1, 2))])
