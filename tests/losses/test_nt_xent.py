import math
from functools import partial

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import nt_xent_loss

from . import assert_matches_reference


def _reference_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's Eq. 1 for each of the 2N anchors, with an explicit softmax over k != i."""
    n = z1.shape[0]
    h = [row / row.norm() for row in torch.cat([z1, z2])]  # views of image b at b and b + n
    total = torch.zeros((), dtype=z1.dtype)
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        exps = [torch.exp(torch.dot(h[i], h[k]) / temperature) for k in range(2 * n)]
        total = total - torch.log(exps[positive] / sum(exps[k] for k in range(2 * n) if k != i))
    return total / (2 * n)


@pytest.mark.parametrize("n, d", [(2, 3), (5, 4), (16, 8)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_reference(n: int, d: int, temperature: float) -> None:
    z1, z2 = torch.randn(2, n, d, dtype=torch.float64)
    assert_matches_reference(
        partial(nt_xent_loss, temperature=temperature),
        partial(_reference_loss, temperature=temperature),
        z1,
        z2,
    )


def test_hand_computed_case() -> None:
    # z1 = z2 = identity, temperature 1: anchor e0 has its positive e0 (sim 1) and two
    # negatives e1 (sim 0), so its loss is -log(e / (e + 2)) = log(1 + 2/e); all four anchors
    # are alike, so that is the mean too.
    eye = torch.eye(2, dtype=torch.float64)
    expected = math.log(1 + 2 / math.e)
    torch.testing.assert_close(nt_xent_loss(eye, eye, temperature=1.0).item(), expected)


def test_invariant_to_permuting_the_batch() -> None:
    z1, z2 = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    order = torch.randperm(8)
    torch.testing.assert_close(nt_xent_loss(z1[order], z2[order]), nt_xent_loss(z1, z2))


def test_gradient_is_finite() -> None:
    z1 = torch.randn(4, 8, requires_grad=True)
    z2 = torch.randn(4, 8, requires_grad=True)
    nt_xent_loss(z1, z2).backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


@pytest.mark.parametrize(
    "z1, z2, temperature, message",
    [
        (torch.randn(4, 8), torch.randn(5, 8), 0.5, "same shape"),
        (torch.randn(8), torch.randn(8), 0.5, "2D"),
        (torch.randn(1, 8), torch.randn(1, 8), 0.5, "at least 2"),
        (torch.randn(4, 8), torch.randn(4, 8), -0.5, "temperature"),
    ],
)
def test_bad_input_raises_one_line(z1, z2, temperature, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        nt_xent_loss(z1, z2, temperature=temperature)
    assert "\n" not in str(info.value)
