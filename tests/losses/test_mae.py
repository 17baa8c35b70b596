import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import mae_loss, patchify, unpatchify


def _reference_loss(pred, target, mask, norm_pix):
    """He et al. 2022, Sec. 3 with loops: per-patch MSE on removed patches, averaged over them."""
    total, removed = 0.0, 0
    for i in range(pred.shape[0]):
        for j in range(pred.shape[1]):
            if mask[i, j] == 0:
                continue
            t = target[i, j]
            if norm_pix:
                t = (t - t.mean()) / (t.var() + 1e-6) ** 0.5
            total = total + ((pred[i, j] - t) ** 2).mean()
            removed += 1
    return total / removed


@pytest.mark.parametrize("norm_pix", [True, False])
@pytest.mark.parametrize("n, length, dim", [(1, 4, 12), (3, 9, 48)])
def test_matches_reference(n, length, dim, norm_pix) -> None:
    generator = torch.Generator().manual_seed(length)
    pred, target = torch.randn(2, n, length, dim, generator=generator, dtype=torch.float64)
    mask = (torch.rand(n, length, generator=generator) < 0.6).double()
    mask[:, 0] = 1
    pred.requires_grad_()
    got, expected = (
        mae_loss(pred, target, mask, norm_pix),
        _reference_loss(pred, target, mask, norm_pix),
    )
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(torch.autograd.grad(got, pred), torch.autograd.grad(expected, pred))


def test_hand_computed_case() -> None:
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 0]])
    assert mae_loss(pred, target, mask, norm_pix=False).item() == pytest.approx(5.0)  # (1+9)/2
    # normalised [1, 3]: mean 2, unbiased var 2 -> [-1, 1] / sqrt(2 + 1e-6)
    assert mae_loss(pred, target, mask).item() == pytest.approx(1.0 / (2 + 1e-6))


def test_kept_patches_contribute_nothing() -> None:
    pred, target = torch.randn(2, 2, 6, 12)
    mask = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 1, 0, 1, 0]])
    kept = (mask == 0)[..., None]
    pred = pred.requires_grad_()
    loss = mae_loss(pred, target, mask)
    (grad,) = torch.autograd.grad(loss, pred)
    assert (grad[kept.expand_as(grad)] == 0).all() and (grad[~kept.expand_as(grad)] != 0).any()
    changed_pred = torch.where(kept, torch.randn_like(pred) * 100, pred)
    changed_target = torch.where(kept, torch.randn_like(target) * 100, target)
    torch.testing.assert_close(mae_loss(changed_pred, changed_target, mask), loss)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_patchify_layout_and_round_trip(channels) -> None:
    images = torch.randn(2, channels, 8, 12)
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 4 * 4 * channels)
    # patch 1 is row 0, column 1; values in (row, column, channel) order
    torch.testing.assert_close(
        patches[:, 1], images[:, :, 0:4, 4:8].permute(0, 2, 3, 1).reshape(2, -1)
    )
    torch.testing.assert_close(unpatchify(patches, 4, 8, 12), images)


def test_bad_input_raises_one_line() -> None:
    with pytest.raises(InputError, match="not divisible by the patch size 5"):
        patchify(torch.randn(1, 3, 8, 8), 5)
    with pytest.raises(InputError, match="mask \\[N, L\\]") as info:
        mae_loss(torch.randn(2, 4, 3), torch.randn(2, 4, 3), torch.ones(2, 5))
    assert "\n" not in str(info.value)
