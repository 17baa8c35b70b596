from functools import partial

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import barlow_twins_loss

from . import assert_matches_reference


def _reference_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """The paper's Eq. 1-2 with the official normalisation, written with explicit loops."""
    n, d = z1.shape
    bn = torch.nn.BatchNorm1d(d, affine=False, dtype=z1.dtype)  # train mode: batch statistics
    z1n, z2n = bn(z1), bn(z2)
    loss = torch.zeros((), dtype=z1.dtype)
    for i in range(d):
        for j in range(d):
            c_ij = sum(z1n[b, i] * z2n[b, j] for b in range(n)) / n
            loss = loss + ((1 - c_ij) ** 2 if i == j else lambd * c_ij**2)
    return loss


@pytest.mark.parametrize("n, d", [(2, 3), (5, 4), (16, 8)])
@pytest.mark.parametrize("lambd", [0.0051, 0.5])
def test_matches_reference(n: int, d: int, lambd: float) -> None:
    z1, z2 = torch.randn(2, n, d, dtype=torch.float64)
    assert_matches_reference(
        partial(barlow_twins_loss, lambd=lambd), partial(_reference_loss, lambd=lambd), z1, z2
    )


def test_hand_computed_case() -> None:
    # Every dim holds two values 1 apart from its mean, so its biased variance is 1 and it
    # standardises to +-k with k^2 = 1 / (1 + 1e-5):
    #   z1n = k [[1, 1], [-1, -1]],  z2n = k [[1, -1], [-1, 1]]
    #   C = z1n^T z2n / 2 = k^2 [[1, -1], [1, -1]]
    #   loss = (1 - k^2)^2 + (1 + k^2)^2 + lambd * 2 k^4
    z1 = torch.tensor([[1.0, 3.0], [-1.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[2.0, -1.0], [0.0, 1.0]], dtype=torch.float64)
    k2 = 1 / (1 + 1e-5)
    expected = (1 - k2) ** 2 + (1 + k2) ** 2 + 0.5 * 2 * k2**2
    torch.testing.assert_close(barlow_twins_loss(z1, z2, lambd=0.5).item(), expected)


def test_invariant_to_per_dim_affine_rescaling() -> None:
    z1 = torch.randn(32, 8, dtype=torch.float64)
    z2 = torch.randn(32, 8, dtype=torch.float64)
    scale, shift = torch.rand(8, dtype=torch.float64) + 0.5, torch.randn(8, dtype=torch.float64)
    torch.testing.assert_close(
        barlow_twins_loss(z1 * scale + shift, z2 / scale - shift),
        barlow_twins_loss(z1, z2),
        rtol=1e-4,
        atol=0,
    )


@pytest.mark.parametrize(
    "z1, z2, lambd, message",
    [
        (torch.randn(4, 8), torch.randn(4, 6), 0.0051, "same shape"),
        (torch.randn(4, 8, 2), torch.randn(4, 8, 2), 0.0051, "2D"),
        (torch.randn(1, 8), torch.randn(1, 8), 0.0051, "at least 2"),
        (torch.randn(4, 8), torch.randn(4, 8), -1.0, "lambd"),
    ],
)
def test_bad_input_raises_one_line(z1, z2, lambd, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        barlow_twins_loss(z1, z2, lambd=lambd)
    assert "\n" not in str(info.value)
