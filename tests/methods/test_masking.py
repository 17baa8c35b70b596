"""MAE's random masking and SimMIM's block-wise masking: exact ratio, per-sample masks, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from ssl4gie.methods.mae import random_masking
from ssl4gie.methods.simmim import block_mask


@pytest.mark.parametrize(("length", "ratio"), [(16, 0.75), (49, 0.75), (10, 0.3)])
def test_random_masking_removes_an_exact_share_per_sample(length: int, ratio: float) -> None:
    tokens = torch.randn(32, length, 4)
    visible, mask, ids_restore = random_masking(tokens, ratio)
    keep = int(length * (1 - ratio))
    assert visible.shape == (32, keep, 4)
    assert (mask.sum(dim=1) == length - keep).all()
    assert len({tuple(row.tolist()) for row in mask}) > 16  # masks differ between samples
    # the visible tokens are exactly the unmasked ones, and ids_restore undoes the shuffle
    for tokens_i, visible_i, mask_i in zip(tokens, visible, mask, strict=True):
        kept = tokens_i[mask_i == 0]
        assert torch.equal(kept[kept[:, 0].argsort()], visible_i[visible_i[:, 0].argsort()])
    shuffled = torch.cat([visible, torch.zeros(32, length - keep, 4)], dim=1)
    restored = shuffled.gather(1, ids_restore[..., None].expand(-1, -1, 4))
    torch.testing.assert_close(restored * (1 - mask[..., None]), tokens * (1 - mask[..., None]))


def test_random_masking_is_deterministic_per_seed() -> None:
    tokens = torch.randn(8, 16, 4)
    masks = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        masks.append(random_masking(tokens, 0.75)[1])
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


@pytest.mark.parametrize(
    ("grid", "block", "ratio"), [((8, 8), 2, 0.6), ((12, 12), 4, 0.6), ((6, 6), 1, 0.5)]
)
def test_block_mask_masks_whole_blocks_at_the_exact_ratio(grid, block, ratio) -> None:
    mask = block_mask(64, grid, block, ratio)
    blocks = (grid[0] // block) * (grid[1] // block)
    assert mask.shape == (64, *grid)
    assert (mask.sum(dim=(1, 2)) == math.ceil(blocks * ratio) * block**2).all()
    pooled = torch.nn.functional.max_pool2d(mask[:, None], block)
    assert torch.equal(pooled.repeat_interleave(block, 2).repeat_interleave(block, 3)[:, 0], mask)
    assert len({tuple(m.flatten().tolist()) for m in mask}) > 32


def test_block_mask_is_deterministic_per_seed() -> None:
    def draw(seed: int) -> torch.Tensor:
        return block_mask(8, (8, 8), 2, 0.6, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
