import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import simmim_loss


def _reference_loss(pred, target, mask):
    """Xie et al. 2022, Eq. 1 with loops: mean |difference| over masked pixels and channels."""
    total, count = 0.0, 0
    for i in range(pred.shape[0]):
        for y in range(pred.shape[2]):
            for x in range(pred.shape[3]):
                if mask[i, y, x]:
                    total = total + (pred[i, :, y, x] - target[i, :, y, x]).abs().sum()
                    count += pred.shape[1]
    return total / count


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (2, 1, 6, 4), (3, 3, 8, 8)])
def test_matches_reference(shape) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    pred, target = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    mask = torch.rand(shape[0], *shape[2:], generator=generator) < 0.5
    mask[:, 0, 0] = True
    pred.requires_grad_()
    got, expected = simmim_loss(pred, target, mask), _reference_loss(pred, target, mask)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)  # the official +1e-5 in count
    torch.testing.assert_close(
        torch.autograd.grad(got, pred), torch.autograd.grad(expected, pred), rtol=1e-4, atol=1e-7
    )


def test_hand_computed_case_and_unmasked_pixels_ignored() -> None:
    pred, target = torch.zeros(1, 2, 1, 2), torch.tensor([[[[2.0, 50.0]], [[4.0, 60.0]]]])
    mask = torch.tensor([[[1.0, 0.0]]])
    assert simmim_loss(pred, target, mask).item() == pytest.approx(3.0, rel=1e-4)  # (2+4)/2


def test_bad_input_raises_one_line() -> None:
    with pytest.raises(InputError, match="mask \\[N, H, W\\]") as info:
        simmim_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.ones(2, 1, 4, 4))
    assert "\n" not in str(info.value)
