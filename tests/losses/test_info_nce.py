import math
from functools import partial

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import info_nce_loss

from . import assert_matches_reference


def _reference_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo v3's Eq. 1 for each query, with an explicit softmax over the batch's keys."""
    k = k.detach()  # the keys come from the momentum encoder: no gradient
    n = q.shape[0]
    total = torch.zeros((), dtype=q.dtype)
    for i in range(n):
        sims = [torch.dot(q[i], k[j]) / (q[i].norm() * k[j].norm()) for j in range(n)]
        exps = [torch.exp(s / temperature) for s in sims]
        total = total - torch.log(exps[i] / sum(exps))
    return total / n * (2 * temperature)


@pytest.mark.parametrize("n, d", [(2, 3), (5, 4), (16, 8)])
@pytest.mark.parametrize("temperature", [0.1, 0.2, 1.0])
def test_matches_reference(n: int, d: int, temperature: float) -> None:
    q, k = torch.randn(2, n, d, dtype=torch.float64)
    assert_matches_reference(
        partial(info_nce_loss, temperature=temperature),
        partial(_reference_loss, temperature=temperature),
        q,
        k,
    )


def test_hand_computed_case() -> None:
    # q = k = identity, temperature 1: logits = I, so each query's loss is
    # -log(e / (e + 1)) = log(1 + 1/e); the mean is the same, times 2 * temperature = 2.
    eye = torch.eye(2, dtype=torch.float64)
    expected = 2 * math.log(1 + 1 / math.e)
    torch.testing.assert_close(info_nce_loss(eye, eye, temperature=1.0).item(), expected)


def test_invariant_to_positive_scaling_of_rows() -> None:
    q, k = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    q_scale, k_scale = (torch.rand(8, 1, dtype=torch.float64) + 0.1 for _ in range(2))
    torch.testing.assert_close(info_nce_loss(q * q_scale, k * k_scale), info_nce_loss(q, k))


def test_keys_get_no_gradient() -> None:
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8, requires_grad=True)
    info_nce_loss(q, k).backward()
    assert q.grad is not None
    assert k.grad is None


@pytest.mark.parametrize(
    "q, k, temperature, message",
    [
        (torch.randn(4, 8), torch.randn(5, 8), 0.2, "same shape"),
        (torch.randn(8), torch.randn(8), 0.2, "2D"),
        (torch.randn(1, 8), torch.randn(1, 8), 0.2, "at least 2"),
        (torch.randn(4, 8), torch.randn(4, 8), 0.0, "temperature"),
    ],
)
def test_bad_input_raises_one_line(q, k, temperature, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        info_nce_loss(q, k, temperature=temperature)
    assert "\n" not in str(info.value)
