"""MAE [He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", arXiv:2111.06377;
facebookresearch/mae ``models_mae.py``, ``main_pretrain.py``, ``PRETRAIN.md``]."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

from ssl4gie.errors import InputError
from ssl4gie.losses import mae_loss, patchify, scene_patches, unpatchify
from ssl4gie.methods.base import ArchitectureKind, Recipe, SSLMethod
from ssl4gie.methods.dino import check_patch_divisible
from ssl4gie.methods.vit_init import init_vit, loads_weights, official_init_weights, sincos_2d
from ssl4gie.transforms.views import MaskedViewCrop
from ssl4gie.viz import denormalise, save_grid

__all__ = ["MAE", "MAEDecoder", "check_mask_ratio", "random_masking"]

GRID_IMAGES = 8  # images in the reconstruction grid saved at each training epoch end


def check_mask_ratio(ratio: float, method: str) -> None:
    """Raise unless ``0 < ratio < 1``."""
    if not 0.0 < ratio < 1.0:
        raise InputError(f"{method}: mask_ratio must be in (0, 1), got {ratio}")


def random_masking(
    tokens: Tensor, ratio: float, noise: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep a random ``int(L * (1 - ratio))`` tokens of every sample, as the official
    ``random_masking``: sort per-sample uniform noise, keep the lowest.

    Args:
        tokens: ``[N, L, D]``.
        ratio: fraction removed.
        noise: ``[N, L]`` uniform noise fixing the masks (None: ``torch.rand``).

    Returns:
        visible ``[N, L_keep, D]`` (in shuffled order), mask ``[N, L]`` (0 keep, 1 remove) and
        ids_restore ``[N, L]`` (the inverse permutation, to unshuffle).
    """
    n, length, dim = tokens.shape
    keep = int(length * (1 - ratio))
    if noise is None:
        noise = torch.rand(n, length, device=tokens.device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    visible = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, dim))
    mask = torch.ones(n, length, device=tokens.device, dtype=tokens.dtype)
    mask[:, :keep] = 0
    return visible, mask.gather(1, ids_restore), ids_restore


class MAEDecoder(nn.Module):
    """MAE's light decoder: "a series of Transformer blocks [...] The decoder has its own
    position embeddings" [He et al. 2022, Sec. 3].

    Visible tokens are projected to ``width``, the mask token fills the removed places, the
    fixed sin-cos positions (MAE's orientation) are added, then ``depth`` timm ``Block``s,
    LayerNorm and a linear prediction of each patch's ``p*p*3`` pixels. Prefix tokens (class,
    registers) pass through the blocks and are dropped from the output.
    """

    def __init__(
        self, in_dim: int, patch_values: int, width: int = 512, depth: int = 8, heads: int = 16
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        norm = partial(nn.LayerNorm, eps=1e-6)
        block = partial(Block, width, heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm)
        self.blocks = nn.Sequential(*[block() for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.pred = nn.Linear(width, patch_values)
        self.apply(official_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, latent: Tensor, ids_restore: Tensor, prefix: int, grid: tuple[int, int]
    ) -> Tensor:
        """latent ``[N, prefix + L_keep, D]`` -> predicted patches ``[N, L, patch_values]``."""
        x = self.embed(latent)
        visible = x[:, prefix:]
        n, length = ids_restore.shape
        filler = self.mask_token.expand(n, length - visible.shape[1], -1)
        patches = torch.cat([visible, filler], dim=1)
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))
        patches = patches + sincos_2d(x.shape[-1], *grid).to(patches)
        x = self.norm(self.blocks(torch.cat([x[:, :prefix], patches], dim=1)))
        return self.pred(x[:, prefix:])


class MAE(SSLMethod):
    """MAE: a ViT encodes a random quarter of the patches; a light decoder predicts the rest.

    "Our MAE is an autoencoder that reconstructs the original signal given its partial
    observation [...] the encoder is applied only on visible, unmasked patches" [He et al. 2022,
    Sec. 3]. The encoder is the timm ViT under ``self.backbone`` (its patch embedding, position
    embedding, class/register tokens, blocks and norm), so the zoo exports it unchanged.

    Official defaults (``models_mae.py``, ``PRETRAIN.md``, ``main_pretrain.py``):

    - mask ratio 0.75, per-sample random masking; decoder 8 blocks, 512 wide, 16 heads; loss on
      removed patches with per-patch normalised pixels (``norm_pix_loss``), :func:`mae_loss`.
      With ``MaskedViewCrop(fov=True)`` views, removed patches less than half inside the
      view's scene mask (border, burnt-in overlays) do not count (an addition for endoscopy).
    - fixed 2D sin-cos position embeddings for encoder (copied into the ViT's ``pos_embed``,
      frozen; the class token's position is 0) and decoder, in the official orientation
      (:func:`~ssl4gie.methods.vit_init.sincos_2d`).
    - the official ``initialize_weights`` for a randomly initialised encoder
      (:func:`~ssl4gie.methods.vit_init.init_vit`) and the decoder. A backbone loaded with
      pretrained weights keeps them and its position table (only frozen).
    - AdamW, lr 1.5e-4 per 256 (``--blr``), weight decay 0.05, betas (0.9, 0.95), 40 warm-up
      epochs, cosine to 0; views :meth:`MaskedViewCrop.mae`.

    At every training epoch end, rank 0 writes ``reconstructions/epoch_NNN.png`` under the
    trainer's ``log_dir`` (``default_root_dir`` without a logger): original, masked and
    reconstructed (visible patches pasted back) views of the epoch's first batch. The training
    epoch end, not validation, because validation here needs a labelled probe set.

    Args:
        mask_ratio: fraction of patches removed (0.75).
        decoder_width, decoder_depth, decoder_heads: 512, 8, 16.
        norm_pix_loss: normalise each target patch (True).
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> method = MAE("vit_tiny_patch16_224", decoder_width=64, decoder_depth=1, decoder_heads=4,
        ...              views=MaskedViewCrop.mae(size=32),
        ...              backbone_kwargs={"img_size": 32, "patch_size": 8})
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> loss, stats = method.ssl_loss(method.views(images))  # 75 % of 16 patches removed
        >>> loss.shape
        torch.Size([])
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = dict.fromkeys(
        ("cnn", "vit"), Recipe("adamw", base_lr=1.5e-4, weight_decay=0.05, warmup_epochs=40)
    )
    betas: ClassVar[tuple[float, float]] = (0.9, 0.95)

    def __init__(
        self,
        backbone: str = "vit_base_patch16_224",
        mask_ratio: float = 0.75,
        decoder_width: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        norm_pix_loss: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        check_plain_vit(self.backbone, backbone, "MAE")
        check_mask_ratio(mask_ratio, "MAE")
        size = self.views.groups[0][0].size
        check_patch_divisible(self.backbone, [size], "MAE")
        self.patch = self.backbone.patch_embed.patch_size[0]
        if int((size // self.patch) ** 2 * (1 - mask_ratio)) < 1:
            raise InputError(
                f"MAE: mask_ratio {mask_ratio} leaves no visible patch of the "
                f"{(size // self.patch) ** 2} in a {size} px view; lower it or enlarge the view"
            )
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        pretrained = loads_weights(backbone, kwargs.get("backbone_kwargs"))
        init_vit(self.backbone, "mae", pretrained)
        patch_values = self.patch**2 * self.backbone.patch_embed.proj.in_channels
        self.decoder = MAEDecoder(
            self.backbone.num_features, patch_values, decoder_width, decoder_depth, decoder_heads
        )
        self._grid_images: Tensor | None = None

    def default_views(self) -> nn.Module:
        return MaskedViewCrop.mae()

    def encode(self, images: Tensor, noise: Tensor | None = None) -> tuple[Tensor, ...]:
        """Images ``[N, 3, H, W]`` -> latent ``[N, prefix + L_keep, D]`` of the visible patches
        (after the ViT's norm), mask ``[N, L]``, ids_restore ``[N, L]`` and the patch grid."""
        vit = self.backbone
        x = vit.patch_embed(images)  # [N, h, w, D] (dynamic size) or [N, L, D]
        grid = (images.shape[-2] // self.patch, images.shape[-1] // self.patch)
        x = vit._pos_embed(x)  # [N, prefix + L, D], positions added
        prefix = vit.num_prefix_tokens
        visible, mask, ids_restore = random_masking(x[:, prefix:], self.mask_ratio, noise)
        x = vit.norm_pre(torch.cat([x[:, :prefix], visible], dim=1))
        return vit.norm(vit.blocks(x)), mask, ids_restore, grid

    def ssl_loss(
        self, views: list[Tensor], noise: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One view ``[N, 3, H, W]`` (and its bool ``[N, 1, H, W]`` scene mask with fov views)
        -> MAE loss; ``noise`` ``[N, L]`` fixes the masks."""
        scene = views[1] if len(views) > 1 else None
        loss, latent, _, _ = self._reconstruct(views[0], noise, scene)
        return loss, {"embedding": latent[:, self.backbone.num_prefix_tokens :].mean(dim=1)}

    def _reconstruct(
        self, images: Tensor, noise: Tensor | None, scene: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        """Loss, latent, predicted patches ``[N, L, p*p*3]`` and mask ``[N, L]``; the loss
        counts removed patches of the ``scene`` (bool ``[N, 1, H, W]``) only, if given."""
        latent, mask, ids_restore, grid = self.encode(images, noise)
        pred = self.decoder(latent, ids_restore, self.backbone.num_prefix_tokens, grid)
        counted = mask if scene is None else mask * scene_patches(scene, self.patch)
        loss = mae_loss(pred, patchify(images, self.patch), counted, self.norm_pix_loss)
        return loss, latent, pred, mask

    def configure_optimizers(self) -> dict[str, Any]:
        """The base's AdamW with MAE's betas (0.9, 0.95)."""
        config = super().configure_optimizers()
        for group in config["optimizer"].param_groups:
            group["betas"] = self.betas
        return config

    def on_train_batch_start(self, batch: dict[str, Any], batch_idx: int) -> None:
        if batch_idx == 0:
            self._grid_images = batch["views"][0][:GRID_IMAGES].detach()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.trainer.is_global_zero and self._grid_images is not None:
            root = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            self.save_reconstructions(
                self._grid_images, root / "reconstructions" / f"epoch_{self.current_epoch:03d}.png"
            )

    @torch.no_grad()
    def save_reconstructions(self, images: Tensor, path: Path) -> Path:
        """Save original / masked / reconstructed rows of normalised ``images`` ``[N, 3, H, W]``
        as a PNG, with masks fixed by seed 0 (the global RNG is left alone)."""
        generator = torch.Generator(images.device).manual_seed(0)
        length = (images.shape[-2] // self.patch) * (images.shape[-1] // self.patch)
        noise = torch.rand(images.shape[0], length, device=images.device, generator=generator)
        _, _, pred, mask = self._reconstruct(images, noise)
        target = patchify(images, self.patch)
        if self.norm_pix_loss:  # back to pixels with each true patch's statistics
            pred = pred * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(
                -1, keepdim=True
            )
        removed = mask[..., None]
        masked = unpatchify(target * (1 - removed), self.patch, *images.shape[-2:])
        pasted = unpatchify(target * (1 - removed) + pred * removed, self.patch, *images.shape[-2:])
        mean, std = self.views.mean.flatten().tolist(), self.views.std.flatten().tolist()
        rows = [
            [denormalise(x, mean, std) for x in triple]
            for triple in zip(images, masked, pasted, strict=True)
        ]
        return save_grid(rows, path, titles=["original", "masked", "reconstructed"])


def check_plain_vit(backbone: nn.Module, name: str, method: str) -> None:
    """Raise unless ``backbone`` is a timm ``VisionTransformer``."""
    if not isinstance(backbone, VisionTransformer):
        raise InputError(
            f"{method} needs a timm VisionTransformer backbone, got {name!r} "
            f"({type(backbone).__name__}); pick e.g. 'vit_base_patch16_224'"
        )
