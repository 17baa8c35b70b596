"""The official ViT initialisations of MoCo v3 and MAE, and their fixed 2D sin-cos positions.

- MoCo v3 (facebookresearch/moco-v3 ``vits.py``, ``VisionTransformerMoCo``): fixed 2D sin-cos
  position embedding; xavier-uniform Linear weights, the ``qkv`` weight treated as three
  matrices (bound ``sqrt(6 / (out / 3 + in))``), zero biases; patch projection uniform
  ``+-sqrt(6 / (3 p^2 + D))`` (xavier of the flattened projection), zero bias; class token
  N(0, 1e-6).
- MAE (facebookresearch/mae ``models_mae.py`` ``initialize_weights``): fixed 2D sin-cos position
  embedding; xavier-uniform for every Linear (``qkv`` as one matrix), zero biases; LayerNorm 1/0;
  patch projection xavier-uniform on ``w.view(D, -1)`` (its bias keeps PyTorch's default);
  class token N(0, 0.02).

The two tables differ in orientation: MAE's ``util/pos_embed.py`` encodes the column in the
first half of the channels, MoCo v3's ``build_2d_sincos_position_embedding`` the row (its
``meshgrid(w, h)`` flattens the width index first). Each method keeps its own, so an official
encoder loaded into it has the table it was trained with.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ssl4gie.backbones import is_weights_source
from ssl4gie.errors import InputError

__all__ = ["init_vit", "loads_weights", "official_init_weights", "sincos_2d"]


def sincos_2d(dim: int, height: int, width: int, columns_first: bool = True) -> Tensor:
    """Fixed 2D sin-cos position embedding ``[height * width, dim]``, row-major patch order.

    Each coordinate gets ``dim / 2`` channels: ``sin`` then ``cos`` of
    ``position * 10000^(-i / (dim / 4))``, ``i < dim / 4``. ``columns_first``: the column
    (x) coordinate fills the first half, as MAE's ``get_2d_sincos_pos_embed``; False: the row,
    as MoCo v3's ``build_2d_sincos_position_embedding``.
    """
    if dim % 4:
        raise InputError(f"a 2D sin-cos position embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coordinates = (cols, rows) if columns_first else (rows, cols)
    angles = [pos.reshape(-1, 1).double() * omega for pos in coordinates]
    return torch.cat([f(a) for a in angles for f in (torch.sin, torch.cos)], dim=1).float()


def loads_weights(name: str, backbone_kwargs: dict[str, Any] | None) -> bool:
    """True when :func:`ssl4gie.backbones.create_backbone` loads pretrained weights for these
    arguments: ``pretrained=True``, or a weights source (zoo name, ``hf-hub:``, file, folder)
    without ``pretrained=False``."""
    pretrained = (backbone_kwargs or {}).get("pretrained")
    return is_weights_source(name) if pretrained is None else bool(pretrained)


def official_init_weights(module: nn.Module) -> None:
    """MAE's ``_init_weights`` (for ``module.apply``): xavier-uniform Linear weights, zero
    biases; LayerNorm weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_vit(vit: VisionTransformer, method: Literal["mocov3", "mae"], pretrained: bool) -> None:
    """Give a timm ViT ``method``'s official initialisation and fixed sin-cos position table.

    ``pretrained``: the loaded weights and table are kept; the table is only frozen, as both
    official models keep it fixed. Call it before any momentum copy is made.
    """
    if pretrained:
        if vit.pos_embed is not None:
            vit.pos_embed.requires_grad_(False)
        return
    _set_sincos_pos_embed(vit, columns_first=method == "mae")
    if method == "mae":
        vit.apply(official_init_weights)
    else:
        _mocov3_linear_init(vit)
    if isinstance(vit.patch_embed, PatchEmbed):  # not a hybrid (CNN stem) embedding
        proj = vit.patch_embed.proj
        if method == "mae":
            nn.init.xavier_uniform_(proj.weight.data.view(proj.out_channels, -1))
        else:
            bound = math.sqrt(6.0 / (proj.weight[0].numel() + proj.out_channels))  # 3 p^2 + D
            nn.init.uniform_(proj.weight, -bound, bound)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
    if vit.cls_token is not None:
        nn.init.normal_(vit.cls_token, std=0.02 if method == "mae" else 1e-6)


def _mocov3_linear_init(vit: nn.Module) -> None:
    """Xavier-uniform Linear weights with ``qkv`` split into Q, K and V; zero biases."""
    for name, module in vit.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if "qkv" in name:
            out_features, in_features = module.weight.shape
            bound = math.sqrt(6.0 / (out_features // 3 + in_features))
            nn.init.uniform_(module.weight, -bound, bound)
        else:
            nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _set_sincos_pos_embed(vit: VisionTransformer, columns_first: bool) -> None:
    """Overwrite the patch positions of ``vit.pos_embed`` with :func:`sincos_2d` and freeze it
    (prefix-token positions 0)."""
    if vit.pos_embed is None:
        return
    height, width = vit.patch_embed.grid_size
    prefix = vit.pos_embed.shape[1] - height * width
    table = sincos_2d(vit.pos_embed.shape[-1], height, width, columns_first)
    with torch.no_grad():
        vit.pos_embed.zero_()
        vit.pos_embed[0, prefix:] = table
    vit.pos_embed.requires_grad_(False)
