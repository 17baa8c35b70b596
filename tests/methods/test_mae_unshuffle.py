"""MAE's masking and its decoder's un-shuffle against token orders placed by hand: the official
``random_masking`` keeps the lowest-noise patches, and the decoder puts each visible token back
at its patch and a mask token at every removed one [He et al. 2022, Sec. 3; facebookresearch/mae
``models_mae.py``]."""

from __future__ import annotations

import pytest
import torch

from ssl4gie.methods.mae import MAEDecoder, random_masking
from ssl4gie.methods.vit_init import sincos_2d


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def test_random_masking_keeps_the_lowest_noise_patches_in_noise_order():
    tokens = torch.arange(6.0).view(1, 6, 1) * 10  # patch i holds 10 * i
    noise = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.7, 0.2]])
    visible, mask, ids_restore = random_masking(tokens, ratio=0.5, noise=noise)
    # lowest noise: patch 1 (0.1), patch 5 (0.2), patch 3 (0.3); the other three are removed
    assert visible.flatten().tolist() == [10.0, 50.0, 30.0]
    assert mask.tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]]
    # ids_restore[i]: where patch i sits in the shuffled order [1, 5, 3, 0, 4, 2]
    assert ids_restore.tolist() == [[3, 0, 5, 2, 4, 1]]


def test_random_masking_rounds_the_kept_count_down():
    visible, mask, _ = random_masking(torch.randn(2, 10, 3), ratio=0.75)
    assert visible.shape == (2, 2, 3)  # int(10 * 0.25) = 2
    assert mask.sum(dim=1).tolist() == [8.0, 8.0]


@pytest.mark.parametrize("prefix", [0, 1])
def test_decoder_puts_every_visible_token_back_at_its_patch(prefix):
    grid, width, batch = (2, 3), 16, 2
    length = grid[0] * grid[1]
    decoder = MAEDecoder(in_dim=8, patch_values=5, width=width, depth=1, heads=2).eval()
    noise = torch.rand(batch, length)
    keep = 2
    _, _, ids_restore = random_masking(torch.zeros(batch, length, 1), 1 - keep / length, noise)
    latent = torch.randn(batch, prefix + keep, 8)
    got = decoder(latent, ids_restore, prefix, grid)

    embedded = decoder.embed(latent)
    placed = decoder.mask_token.expand(batch, length, width).clone()
    for n in range(batch):
        kept_patches = noise[n].argsort()[:keep]  # the j-th visible token is patch kept_patches[j]
        for j, patch in enumerate(kept_patches.tolist()):
            placed[n, patch] = embedded[n, prefix + j]
    placed = placed + sincos_2d(width, *grid)
    tokens = torch.cat([embedded[:, :prefix], placed], dim=1)
    expected = decoder.pred(decoder.norm(decoder.blocks(tokens)))[:, prefix:]
    assert got.shape == (batch, length, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
