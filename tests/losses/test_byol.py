import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import byol_loss

from . import assert_matches_reference


def _reference_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's Eq. 2 in its first form: squared distance of the l2-normalised vectors."""
    n = p.shape[0]
    return sum(((p[i] / p[i].norm() - z[i] / z[i].norm()) ** 2).sum() for i in range(n)) / n


@pytest.mark.parametrize("n, d", [(1, 3), (5, 4), (16, 8)])
def test_matches_reference(n: int, d: int) -> None:
    p, z = torch.randn(2, n, d, dtype=torch.float64)
    assert_matches_reference(byol_loss, _reference_loss, p, z)


def test_hand_computed_case() -> None:
    # cos = 1 for the first pair (loss 0) and 0 for the second (loss 2): mean 1.
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z = torch.tensor([[3.0, 0.0], [2.0, 0.0]])
    assert byol_loss(p, z).item() == pytest.approx(1.0)


def test_invariant_to_positive_scaling_of_rows() -> None:
    p, z = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    p_scale, z_scale = (torch.rand(8, 1, dtype=torch.float64) + 0.1 for _ in range(2))
    torch.testing.assert_close(byol_loss(p * p_scale, z * z_scale), byol_loss(p, z))


def test_does_not_detach_the_target() -> None:
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None
    assert z.grad is not None


@pytest.mark.parametrize(
    "p, z, message",
    [
        (torch.randn(4, 8), torch.randn(4, 6), "same shape"),
        (torch.randn(4, 8, 2), torch.randn(4, 8, 2), "2D"),
        (torch.randn(0, 8), torch.randn(0, 8), "at least 1"),
    ],
)
def test_bad_input_raises_one_line(p, z, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        byol_loss(p, z)
    assert "\n" not in str(info.value)
