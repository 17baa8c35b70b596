"""MAE reconstruction loss and the patch layout it uses [He et al. 2022, "Masked Autoencoders Are
Scalable Vision Learners", arXiv:2111.06377; facebookresearch/mae ``models_mae.py``]."""

from __future__ import annotations

import torch

from ssl4gie.errors import InputError

__all__ = ["mae_loss", "patchify", "scene_patches", "unpatchify"]

_NORM_PIX_EPS = 1e-6  # added to the per-patch variance, as the official ``forward_loss``


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, L, p*p*C]`` with ``L = (H/p) * (W/p)`` patches in row-major order.

    Each patch is flattened as ``(row, column, channel)``, the official ``patchify`` order, for
    any channel count ``C``.

    Examples:
        >>> patchify(torch.rand(2, 3, 32, 32), patch=16).shape
        torch.Size([2, 4, 768])
    """
    n, c, h, w = images.shape
    if h % patch or w % patch:
        raise InputError(
            f"patchify: image size {h}x{w} is not divisible by the patch size {patch}; "
            "resize the images to a multiple of the patch size"
        )
    x = images.reshape(n, c, h // patch, patch, w // patch, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // patch) * (w // patch), -1)


def unpatchify(patches: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """``[N, L, p*p*C]`` -> ``[N, C, H, W]``, the inverse of :func:`patchify`.

    Examples:
        >>> images = torch.rand(2, 3, 32, 32)
        >>> torch.equal(unpatchify(patchify(images, 16), 16, 32, 32), images)
        True
    """
    n, length, dim = patches.shape
    grid_h, grid_w = height // patch, width // patch
    channels = dim // (patch * patch)
    if grid_h * grid_w != length or channels * patch * patch != dim:
        raise InputError(
            f"unpatchify: {length} patches of {dim} values do not tile {height}x{width} with "
            f"patch {patch}; pass the size the patches came from"
        )
    x = patches.reshape(n, grid_h, grid_w, patch, patch, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, channels, height, width)


def mae_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True
) -> torch.Tensor:
    """Mean squared error on the removed patches only.

    "we compute the loss only on masked patches [...] using the normalized pixel values of each
    masked patch as the reconstruction target" [He et al. 2022, Sec. 3]. With ``norm_pix`` each
    target patch becomes ``(x - mean) / sqrt(var + 1e-6)`` with its own mean and unbiased
    variance, as the official ``forward_loss`` (``norm_pix_loss``). The per-patch MSE is averaged
    over the ``p*p*C`` values, then over the removed patches of the batch (``sum(mask)``); kept
    patches contribute neither value nor gradient. To skip patches that are not scene (burnt-in
    overlays, the border), pass ``mask * scene_patches(scene, p)``; a batch with no patch left
    gives 0.

    Args:
        pred: Predicted patches ``[N, L, p*p*C]``.
        target: Image patches ``[N, L, p*p*C]`` (:func:`patchify`).
        mask: ``[N, L]``, 1 for removed patches that count, 0 for the others.
        norm_pix: Normalise each target patch (True, the paper's default).

    Returns:
        The scalar loss.

    Examples:
        >>> pred, target = torch.randn(2, 4, 12), torch.randn(2, 4, 12)
        >>> mae_loss(pred, target, torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1]])).shape
        torch.Size([])
    """
    if pred.shape != target.shape or pred.ndim != 3 or mask.shape != pred.shape[:2]:
        raise InputError(
            f"mae_loss: need pred and target [N, L, D] and mask [N, L], got {tuple(pred.shape)}, "
            f"{tuple(target.shape)} and {tuple(mask.shape)}"
        )
    if norm_pix:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + _NORM_PIX_EPS).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)  # [N, L]
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


def scene_patches(scene: torch.Tensor, patch: int) -> torch.Tensor:
    """Which patches are scene: bool ``[N, 1, H, W]`` scene masks
    (:func:`~ssl4gie.transforms.fov.scene_mask`, cropped with the view) -> float ``[N, L]``,
    1 where at least half of a patch's pixels are scene, in :func:`patchify`'s order.

    Examples:
        >>> scene = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
        >>> scene[..., :2, :] = True
        >>> scene_patches(scene, 2)
        tensor([[1., 1., 0., 0.]])
    """
    return (patchify(scene.float(), patch).mean(dim=-1) >= 0.5).float()
