"""MAE and SimMIM losses skip what the scene mask of ``fov=True`` views excludes."""

import torch

from ssl4gie.methods import MAE, MaskedImageModeling
from ssl4gie.transforms import MaskedViewCrop, TwoViews

VIT = {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": {"img_size": 32, "patch_size": 8}}


def test_fov_masked_view_crop_returns_the_view_and_its_scene_mask():
    images = torch.zeros(2, 3, 64, 64)
    images[:, :, 4:60, 4:60] = 0.6  # a bright window on a black border
    images[:, 1, 40:60, 4:24] = 0.64  # a flat teal UI box over the window's lower left
    images[:, 0, 40:60, 4:24] = 0.07
    images[:, 2, 40:60, 4:24] = 0.52
    whole = {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "flip_p": 0.0}
    view, scene = MaskedViewCrop.mae(size=32, fov=True, **whole)(images)  # the window's box
    assert view.shape == (2, 3, 32, 32) and scene.shape == (2, 1, 32, 32)
    assert scene.dtype == torch.bool
    assert scene[:, 0, :8, 16:].all() and not scene[:, 0, 24:, :8].any()  # the box is out
    assert (view.masked_select(~scene) == 0).all()  # outside the scene: the dataset mean
    assert len(TwoViews.byol(size=32, fov=True)(images)) == 2  # two-view methods: unchanged
    assert len(MaskedViewCrop.mae(size=32)(images)) == 1


def test_mae_loss_is_the_mean_over_removed_scene_patches_only():
    torch.manual_seed(0)
    method = MAE(**VIT, views=MaskedViewCrop.mae(size=32), decoder_width=32, decoder_depth=1,
                 decoder_heads=2)  # fmt: skip
    images = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 16)
    noise[:, 5] = 2.0  # patch 5 (row 1, column 1) is removed in both images
    scene = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    scene[:, :, 8:16, 8:16] = False  # and is pure overlay
    scene[:, :, 0:3, :] = False  # 3 of 8 rows of patches 0-3 are overlay: they still count
    with torch.no_grad():
        loss, *_ = method.ssl_loss([images, scene], noise)
        plain, _, pred, removed = method._reconstruct(images, noise)
    target = images.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 4, 5, 1).reshape(2, 16, -1)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(-1)  # [2, 16]
    counted = removed.bool().clone()
    counted[:, 5] = False
    torch.testing.assert_close(loss, per_patch[counted].mean())
    torch.testing.assert_close(plain, per_patch[removed.bool()].mean())
    assert not torch.isclose(loss, plain)


def test_simmim_loss_is_the_l1_mean_over_masked_scene_pixels_only():
    torch.manual_seed(0)
    method = MaskedImageModeling(**VIT, views=MaskedViewCrop.simmim(size=32), mask_patch_size=16)
    images = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 4, 4)
    mask[:, :2, :2] = 1  # the top-left mask block (16 x 16 px) is masked
    scene = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    scene[:, :, :16, :6] = False  # a UI strip over part of it
    with torch.no_grad():
        loss, _ = method.ssl_loss([images, scene], mask)
        plain, _ = method.ssl_loss([images], mask)
        reconstruction = method.decoder(method.encode(images, mask))
    l1 = (reconstruction - images).abs()[:, :, :16, 6:16]  # masked pixels in the scene
    torch.testing.assert_close(loss, l1.mean(), rtol=1e-4, atol=1e-6)
    assert not torch.isclose(loss, plain)
