"""Task model details: ViTDet windowed attention, layer-wise lr decay, backbone weights."""

import pytest
import torch

from ssl4gie.backbones import create_backbone
from ssl4gie.tasks import ClassificationTask, SegmentationTask
from ssl4gie.tasks.decoders.vitdet import SimpleFeaturePyramid


def test_one_window_over_the_whole_grid_is_global_attention():
    backbone = create_backbone("vit_tiny_patch16_224", img_size=64)
    images = torch.rand(2, 3, 64, 64)
    reference = SimpleFeaturePyramid(backbone)
    expected = backbone.forward_intermediates(images, indices=[11], intermediates_only=True)[0]
    windowed = SimpleFeaturePyramid(backbone, window_size=4)  # the 4x4 grid is one window
    for attention in windowed.windowed:
        attention.grid = (4, 4)
    got = windowed.backbone.forward_intermediates(images, indices=[11], intermediates_only=True)[0]
    assert torch.allclose(got, expected, atol=1e-5)
    assert len(windowed.windowed) == 8  # all but blocks 2, 5, 8, 11
    assert set(backbone.state_dict()) == set(create_backbone("vit_tiny_patch16_224").state_dict())
    assert {k: v.shape for k, v in reference(images).items()}["0"] == (2, 256, 16, 16)


def test_windowed_attention_is_local():
    backbone = create_backbone(
        "vit_tiny_patch16_224", img_size=64, class_token=False, global_pool="avg"
    )
    pyramid = SimpleFeaturePyramid(backbone, window_size=2)
    for attention in pyramid.windowed:
        attention.grid = (4, 4)
    block = backbone.blocks[0]  # windowed
    tokens = torch.rand(1, 16, backbone.embed_dim)
    changed = tokens.clone()
    changed[0, 15] += 1  # bottom-right window only
    difference = (block.attn(block.norm1(tokens)) - block.attn(block.norm1(changed))).abs()
    grid = difference.sum(-1).view(4, 4)
    assert grid[:2, :2].max() == 0 and grid[2:, 2:].max() > 0


def test_layer_decay_scales_the_learning_rate_per_block():
    model = ClassificationTask("vit_tiny_patch16_224", lr=1e-3, layer_decay=0.5)
    groups = model.configure_optimizers()["optimizer"].param_groups
    lrs = sorted({group["lr"] for group in groups})
    assert lrs[-1] == pytest.approx(1e-3)  # head, final norm and last block
    assert lrs[0] == pytest.approx(1e-3 * 0.5**12)  # embeddings, below the 12 blocks
    assert len(lrs) == 13
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_segmentation_encoder_holds_the_backbone_weights():
    torch.manual_seed(1)
    backbone = create_backbone("resnet18")
    torch.manual_seed(1)
    model = SegmentationTask("resnet18", decoder="unet")
    ours = {key.replace("_", "."): value for key, value in model.backbone.state_dict().items()}
    theirs = {key.replace("_", "."): value for key, value in backbone.state_dict().items()}
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
