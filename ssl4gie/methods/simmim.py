"""Masked image modelling as SimMIM [Xie et al. 2022, "SimMIM: A Simple Framework for Masked
Image Modeling", arXiv:2111.09886; microsoft/SimMIM ``models/simmim.py``,
``data/data_simmim.py``, ``configs/``]."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ssl4gie.errors import InputError
from ssl4gie.losses import simmim_loss
from ssl4gie.methods.base import ArchitectureKind, Recipe, SSLMethod
from ssl4gie.methods.dino import check_patch_divisible
from ssl4gie.methods.mae import check_mask_ratio
from ssl4gie.transforms.views import MaskedViewCrop

__all__ = ["MaskedImageModeling", "block_mask"]


def block_mask(
    batch: int,
    grid: tuple[int, int],
    block: int,
    ratio: float,
    device: torch.device | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random block-wise masks ``[batch, h, w]`` (1 masked) on a grid of ``h x w`` patches.

    As the official ``MaskGenerator``: the grid is tiled by ``block x block`` patches (a mask
    patch of 32 px over 4 px Swin or 16 px ViT patches), and exactly ``ceil(blocks * ratio)``
    random blocks of every sample are masked. Drawn from ``torch.rand`` (``generator`` or the
    global RNG) on ``device``.
    """
    rows, cols = grid[0] // block, grid[1] // block
    count = rows * cols
    noise = torch.rand(batch, count, device=device, generator=generator)
    masked = noise.argsort(dim=1).argsort(dim=1) < math.ceil(count * ratio)  # [batch, count]
    mask = masked.view(batch, rows, cols).repeat_interleave(block, 1).repeat_interleave(block, 2)
    return mask.float()


class MaskedImageModeling(SSLMethod):
    """SimMIM: masked patches are replaced by a learnable token; a linear head regresses their
    pixels from the encoder's last feature map.

    "(1) random masking [...] with a moderately large masked patch size (e.g., 32) [...]
    (2) predicting raw pixels of RGB values by direct regression [...] (3) the prediction head
    can be as light as a linear layer" [Xie et al. 2022, Sec. 1]. The mask token replaces the
    masked patch embeddings (timm's ``patch_embed`` output, ``[N, h, w, C]`` for Swin and for ViTs
    with dynamic size); the encoder's last map ``[N, C', h', w']`` goes through a 1x1 convolution
    to ``stride^2 * 3`` channels and ``PixelShuffle(stride)``, ``stride`` being the encoder's total
    downsampling (32 for Swin, the patch size for ViT); :func:`~ssl4gie.losses.simmim_loss`
    on the masked pixels (with ``MaskedViewCrop(fov=True)`` views, the masked pixels of the
    view's scene mask only: border and burnt-in overlays do not count, an addition for
    endoscopy). The encoder under ``self.backbone`` stays a plain timm Swin or ViT, for export
    and dense tasks.

    Official defaults (Swin-B 100-epoch config ``simmim_pretrain__swin_base__img192_window6``):
    192 px, window 6 (``backbone_kwargs={"img_size": 192, "window_size": 6}``), mask patch 32,
    ratio 0.6, AdamW lr 2e-4 per 512 (1e-4 per 256), weight decay 0.05, 10 warm-up epochs,
    cosine to ``MIN_LR`` 1e-5 (ratio 0.05), gradient clipping 5.0 (set the trainer's
    ``gradient_clip_val=5.0``), drop path 0.0 (``DROP_PATH_RATE``; timm's Swin defaults to 0.1:
    pass ``backbone_kwargs={"drop_path_rate": 0.0}``); views :meth:`MaskedViewCrop.simmim`. No
    weight decay on 1-D parameters, biases and the encoder's ``no_weight_decay()`` parameters
    (Swin: ``relative_position_bias_table``; ``absolute_pos_embed`` is off in the official
    config and absent from timm's Swin; ViT: ``pos_embed``, ``cls_token``), and for Swin on
    ``mask_token`` (``optimizer.py`` ``get_pretrain_param_groups``; ``models/simmim.py``
    ``SwinTransformerForSimMIM.no_weight_decay``). The ViT-B
    config uses lr 1e-4 per 512 and a step schedule; pass ``base_lr=5e-5`` for it.

    Args:
        mask_ratio: fraction of mask blocks masked (0.6).
        mask_patch_size: mask block side in pixels (32); a multiple of the encoder's patch size
            that divides the view size.
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> method = MaskedImageModeling("vit_tiny_patch16_224", mask_patch_size=16,
        ...                              views=MaskedViewCrop.simmim(size=32),
        ...                              backbone_kwargs={"img_size": 32, "patch_size": 8})
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> loss, stats = method.ssl_loss(method.views(images))
        >>> loss.shape
        torch.Size([])
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = dict.fromkeys(
        ("cnn", "vit"),
        Recipe("adamw", base_lr=1e-4, weight_decay=0.05, warmup_epochs=10, min_lr_ratio=0.05),
    )

    def __init__(
        self,
        backbone: str = "swin_base_patch4_window7_224",
        mask_ratio: float = 0.6,
        mask_patch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if not isinstance(self.backbone, SwinTransformer | VisionTransformer):
            raise InputError(
                f"MaskedImageModeling needs a timm Swin or ViT backbone, got {backbone!r} "
                f"({type(self.backbone).__name__}); pick e.g. 'swin_base_patch4_window7_224'"
            )
        check_mask_ratio(mask_ratio, "MaskedImageModeling")
        self.patch = self.backbone.patch_embed.patch_size[0]
        self.size = self.views.groups[0][0].size
        self._check_sizes(mask_patch_size)
        self.mask_ratio, self.mask_block = mask_ratio, mask_patch_size // self.patch
        swin = isinstance(self.backbone, SwinTransformer)
        self.stride = self.patch * 2 ** (len(self.backbone.layers) - 1) if swin else self.patch
        embed_dim = self.backbone.patch_embed.proj.out_channels
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder = nn.Sequential(
            nn.Conv2d(self.backbone.num_features, self.stride**2 * 3, kernel_size=1),
            nn.PixelShuffle(self.stride),
        )

    def default_views(self) -> nn.Module:
        return MaskedViewCrop.simmim()

    def _param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The base's groups, with :meth:`no_weight_decay` parameters moved from the decayed
        group (first) to the undecayed one (second), as the official pretraining optimiser."""
        decayed, undecayed, *rest = super()._param_groups(lr)
        names = self._no_weight_decay()
        skip = {id(p) for name, p in self.named_parameters() if name in names}
        undecayed["params"] = undecayed["params"] + [p for p in decayed["params"] if id(p) in skip]
        decayed["params"] = [p for p in decayed["params"] if id(p) not in skip]
        return [decayed, undecayed, *rest]

    def _no_weight_decay(self) -> set[str]:
        """Names (in this module) of the parameters kept out of weight decay besides 1-D ones:
        the timm encoder's ``no_weight_decay()`` (Swin: relative position bias tables; ViT:
        position embedding and class token), and ``mask_token`` with a Swin encoder."""
        names = {f"backbone.{name}" for name in self.backbone.no_weight_decay()}
        if isinstance(self.backbone, SwinTransformer):
            names.add("mask_token")
        return names

    def _check_sizes(self, mask_patch_size: int) -> None:
        name = "MaskedImageModeling"
        check_patch_divisible(self.backbone, [self.size], name)
        if mask_patch_size % self.patch or self.size % mask_patch_size:
            raise InputError(
                f"{name}: mask_patch_size {mask_patch_size} must be a multiple of the patch size "
                f"{self.patch} and divide the view size {self.size}; e.g. {self.patch * 2}"
            )
        if isinstance(self.backbone, SwinTransformer):
            _check_swin(self.backbone, self.size)

    def encode(self, images: Tensor, mask: Tensor) -> Tensor:
        """Images ``[N, 3, H, W]`` and patch mask ``[N, h, w]`` -> last map ``[N, C', h', w']``."""
        encoder = self.backbone
        x = encoder.patch_embed(images)  # [N, h, w, C] (Swin; ViT with dynamic size) or [N, L, C]
        weight = mask.reshape(x.shape[:-1]).unsqueeze(-1).to(x.dtype)
        x = x * (1 - weight) + self.mask_token.to(x.dtype) * weight
        if isinstance(encoder, SwinTransformer):
            return encoder.norm(encoder.layers(x)).permute(0, 3, 1, 2)
        x = encoder.norm(encoder.blocks(encoder.norm_pre(encoder._pos_embed(x))))
        tokens = x[:, encoder.num_prefix_tokens :]  # [N, h*w, C]
        grid = mask.shape[-2:]
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)

    def ssl_loss(
        self, views: list[Tensor], mask: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One view ``[N, 3, H, W]`` (and its bool ``[N, 1, H, W]`` scene mask with fov views)
        -> L1 loss on the masked scene pixels; ``mask`` ``[N, h, w]`` (patch grid, 1 masked)
        fixes the masks (None: :func:`block_mask`)."""
        images = views[0]
        grid = (images.shape[-2] // self.patch, images.shape[-1] // self.patch)
        if mask is None:
            mask = block_mask(
                images.shape[0], grid, self.mask_block, self.mask_ratio, images.device
            )
        features = self.encode(images, mask)
        reconstruction = self.decoder(features)  # [N, 3, H, W]
        pixel_mask = mask.repeat_interleave(self.patch, 1).repeat_interleave(self.patch, 2)
        if len(views) > 1:
            pixel_mask = pixel_mask * views[1][:, 0]
        loss = simmim_loss(reconstruction, images, pixel_mask)
        return loss, {"embedding": features.mean(dim=(2, 3))}


def _check_swin(swin: SwinTransformer, size: int) -> None:
    """Raise unless the views have the Swin's image size and every window divides its map."""
    if tuple(swin.patch_embed.img_size) != (size, size):
        raise InputError(
            f"MaskedImageModeling: the Swin backbone is built for {swin.patch_embed.img_size} "
            f"px, the views are {size} px; pass backbone_kwargs={{'img_size': {size}}}"
        )
    for stage, layer in enumerate(swin.layers):
        block = layer.blocks[0]
        resolution, window = block.input_resolution, block.window_size
        if resolution[0] % window[0] or resolution[1] % window[1]:
            raise InputError(
                f"MaskedImageModeling: Swin stage {stage} has a {resolution} feature map that "
                f"its window {window} does not divide; choose img_size / window_size so that "
                "every stage's map is a multiple of the window (e.g. 192 px, window 6)"
            )
