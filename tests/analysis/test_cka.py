"""Linear CKA against the HSIC formula written with the centring matrix, its invariances, and the
layer-wise comparison of timm backbones."""

import math

import pytest
import torch

from ssl4gie.analysis import block_features, layerwise_cka, linear_cka
from ssl4gie.backbones import create_backbone
from ssl4gie.errors import InputError


def reference_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al. 2019, Sec. 3: HSIC(K, L) = tr(K H L H) / (n - 1)^2 with K = X X^T,
    L = Y Y^T and the centring matrix H = I - 1 1^T / n; CKA = HSIC(K, L) /
    sqrt(HSIC(K, K) HSIC(L, L)) (the (n - 1)^2 cancels)."""
    x, y = x.double(), y.double()
    n = len(x)
    h = torch.eye(n, dtype=torch.float64) - torch.ones(n, n, dtype=torch.float64) / n
    k, l_ = x @ x.T, y @ y.T
    hsic_kl = torch.trace(k @ h @ l_ @ h)
    hsic_kk = torch.trace(k @ h @ k @ h)
    hsic_ll = torch.trace(l_ @ h @ l_ @ h)
    return float(hsic_kl / torch.sqrt(hsic_kk * hsic_ll))


# (N, D1, D2): N > D (covariance path) and N < D (Gram path), equal and unequal widths.
SHAPES = [(3, 2, 2), (5, 3, 4), (10, 50, 7), (16, 64, 128), (64, 8, 16), (200, 20, 20)]


@pytest.mark.parametrize(("n", "d1", "d2"), SHAPES)
def test_matches_the_hsic_formula(n, d1, d2):
    x = torch.randn(n, d1) + 2.0  # an offset: the centring must remove it
    y = x[:, :1] * torch.randn(1, d2) + 0.5 * torch.randn(n, d2)  # partly related to x
    assert linear_cka(x, y) == pytest.approx(reference_cka(x, y), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n", "d"), [(50, 10), (10, 50)])
def test_identical_features_give_one(n, d):
    x = torch.randn(n, d)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("n", "d"), [(50, 10), (10, 50)])
def test_invariant_to_orthogonal_maps_and_isotropic_scaling(n, d):
    x = torch.randn(n, d)
    z = torch.randn(n, 7) + x.sum(dim=1, keepdim=True)
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
    moved = 3.7 * (x.double() @ q) + 1.5
    assert linear_cka(x, moved) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(moved, z) == pytest.approx(linear_cka(x, z), abs=1e-9)


def test_independent_features_are_near_zero():
    """For independent Gaussian features E[CKA] is about sqrt(D1 D2) / N (here 0.007)."""
    n, d1, d2 = 2000, 10, 20
    value = linear_cka(torch.randn(n, d1), torch.randn(n, d2))
    assert 0 <= value < 4 * math.sqrt(d1 * d2) / n


def test_constant_features_give_nan():
    assert math.isnan(linear_cka(torch.ones(10, 3), torch.randn(10, 3)))


def test_bad_shapes_fail_with_one_line():
    with pytest.raises(InputError, match=r"same N examples, got \(10, 3\) and \(9, 3\)"):
        linear_cka(torch.randn(10, 3), torch.randn(9, 3))
    with pytest.raises(InputError, match="at least 2 examples, got 1"):
        linear_cka(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(InputError, match=r"features \[N, D1\] and \[N, D2\]"):
        linear_cka(torch.randn(10, 3, 2), torch.randn(10, 3))
    with pytest.raises(InputError, match="no forward_intermediates"):
        block_features(torch.nn.Linear(3, 3), torch.randn(2, 3))
    with pytest.raises(InputError, match="no image batches"):
        layerwise_cka(create_backbone("resnet18"), create_backbone("resnet18"), [])


def tiny(name: str) -> torch.nn.Module:
    return create_backbone(name, **({"img_size": 32} if name.startswith("vit") else {}))


@pytest.mark.parametrize(("name", "blocks"), [("resnet18", 5), ("vit_tiny_patch16_224", 12)])
def test_a_backbone_with_itself_gives_ones_per_block(name, blocks):
    backbone = tiny(name).train()
    first_block = backbone.blocks[0] if name.startswith("vit") else backbone.layer1
    first_block.eval()  # mixed modes, as in a partly frozen network
    modes = [module.training for module in backbone.modules()]
    batches = [torch.randn(6, 3, 32, 32) for _ in range(2)]
    values = layerwise_cka(backbone, backbone, batches)
    assert len(values) == blocks == len(backbone.feature_info)
    assert values == pytest.approx([1.0] * blocks, abs=1e-6)
    assert [module.training for module in backbone.modules()] == modes  # every mode restored


def test_block_features_are_pooled_per_block():
    backbone = tiny("resnet18")
    features = block_features(backbone, torch.randn(3, 3, 32, 32))
    assert [f.shape for f in features] == [(3, info["num_chs"]) for info in backbone.feature_info]
    assert not any(f.requires_grad for f in features)


def test_different_networks_are_less_similar_than_one_with_itself():
    a, b = tiny("resnet18"), tiny("resnet18")  # two random initialisations
    values = layerwise_cka(a, b, [torch.randn(16, 3, 32, 32)])
    assert all(0 <= v <= 1 for v in values) and min(values) < 0.99


def test_a_segmentation_encoder_gives_the_same_blocks_as_its_backbone():
    """A CNN segmentation task's backbone is a timm features_only net sharing the weights."""
    from ssl4gie.tasks import SegmentationTask

    task = SegmentationTask("resnet18", decoder="fpn")
    plain = tiny("resnet18")
    plain.load_state_dict(task.backbone.state_dict(), strict=False)
    images = torch.randn(2, 3, 64, 64)
    encoder, reference = block_features(task.backbone, images), block_features(plain, images)
    assert [f.shape for f in encoder] == [f.shape for f in reference]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(encoder, reference, strict=True))
