"""Soft Dice losses against the plain formula, on hand-made masks."""

import pytest
import torch
import torch.nn.functional as F

from ssl4gie.errors import InputError
from ssl4gie.losses import dice_bce_loss, dice_loss, soft_dice_loss


def reference_dice_loss(probs, target, smooth=1.0):
    """Loop over images and channels: 1 - mean (2 sum pg + s) / (sum p + sum g + s)."""
    scores = []
    for b in range(probs.shape[0]):
        for k in range(probs.shape[1]):
            p, g = probs[b, k].flatten().tolist(), target[b, k].flatten().tolist()
            inter = sum(x * y for x, y in zip(p, g, strict=True))
            scores.append((2 * inter + smooth) / (sum(p) + sum(g) + smooth))
    return 1 - sum(scores) / len(scores)


def test_perfect_disjoint_and_empty():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    assert soft_dice_loss(mask, mask, smooth=0.0) == pytest.approx(0.0)
    assert soft_dice_loss(1 - mask, mask, smooth=0.0) == pytest.approx(1.0)
    empty = torch.zeros(1, 1, 4, 4)
    assert soft_dice_loss(empty, empty) == pytest.approx(0.0)  # smooth: 1 / 1


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_plain_formula(seed):
    generator = torch.Generator().manual_seed(seed)
    probs = torch.rand(3, 2, 5, 6, generator=generator)
    target = (torch.rand(3, 2, 5, 6, generator=generator) > 0.5).float()
    expected = reference_dice_loss(probs, target)
    assert soft_dice_loss(probs, target).item() == pytest.approx(expected, rel=1e-5)


def test_logit_wrappers_binary_and_multiclass():
    mask = torch.randint(0, 2, (2, 6, 6))
    logits = torch.randn(2, 1, 6, 6)
    target = mask.unsqueeze(1).float()
    assert dice_loss(logits, mask) == pytest.approx(reference_dice_loss(logits.sigmoid(), target))
    bce = F.binary_cross_entropy_with_logits(logits, target)
    assert dice_bce_loss(logits, mask) == pytest.approx(dice_loss(logits, mask) + bce.item())
    classes = torch.randint(0, 4, (2, 6, 6))
    logits = torch.randn(2, 4, 6, 6)
    one_hot = F.one_hot(classes, 4).permute(0, 3, 1, 2).float()
    expected = reference_dice_loss(logits.softmax(1), one_hot)
    assert dice_loss(logits, classes) == pytest.approx(expected, rel=1e-5)
    ce = F.cross_entropy(logits, classes)
    assert dice_bce_loss(logits, classes) == pytest.approx(expected + ce.item(), rel=1e-5)


def test_bad_shapes_fail_with_one_line():
    with pytest.raises(InputError, match=r"\[B, K, H, W\]"):
        soft_dice_loss(torch.rand(2, 4, 4), torch.rand(2, 4, 4))
    with pytest.raises(InputError, match="mask"):
        dice_loss(torch.rand(2, 1, 4, 4), torch.zeros(2, 5, 4))
