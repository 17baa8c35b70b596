import math

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import sinkhorn, swav_loss


def _reference_sinkhorn(scores, epsilon, iterations):
    """Caron et al. 2020, Eq. 3 / official ``distributed_sinkhorn`` on one process, with loops."""
    q = [
        [math.exp(float(scores[b, k]) / epsilon) for b in range(scores.shape[0])]
        for k in range(scores.shape[1])
    ]
    k_count, b_count = len(q), len(q[0])
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        q = [[v / sum(row) / k_count for v in row] for row in q]
        cols = [sum(q[k][b] for k in range(k_count)) for b in range(b_count)]
        q = [[q[k][b] / cols[b] / b_count for b in range(b_count)] for k in range(k_count)]
    cols = [sum(q[k][b] for k in range(k_count)) for b in range(b_count)]
    return torch.tensor(
        [[q[k][b] / cols[b] for k in range(k_count)] for b in range(b_count)], dtype=scores.dtype
    )


def _reference_loss(scores, temperature, epsilon, iterations, queue=None):
    total = 0.0
    n = scores[0].shape[0]
    for a in range(2):
        assign_scores = (
            scores[a].detach() if queue is None else torch.cat([queue[a], scores[a].detach()])
        )
        q = _reference_sinkhorn(assign_scores, epsilon, iterations)[-n:]
        sub = 0.0
        for v in range(len(scores)):
            if v != a:
                log_p = torch.log_softmax(scores[v] / temperature, dim=1)
                sub = sub - sum((q[i] * log_p[i]).sum() for i in range(n)) / n
        total = total + sub / (len(scores) - 1)
    return total / 2


@pytest.mark.parametrize("n, k", [(2, 3), (5, 4), (8, 10)])
@pytest.mark.parametrize("iterations", [1, 3])
def test_sinkhorn_matches_reference(n, k, iterations) -> None:
    scores = torch.nn.functional.normalize(torch.randn(n, k, dtype=torch.float64), dim=1)
    torch.testing.assert_close(
        sinkhorn(scores, 0.05, iterations), _reference_sinkhorn(scores, 0.05, iterations)
    )


def test_sinkhorn_rows_sum_to_one_and_prototypes_share_the_batch() -> None:
    q = sinkhorn(torch.randn(64, 4, dtype=torch.float64) * 0.1, epsilon=0.5, iterations=50)
    torch.testing.assert_close(q.sum(1), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(
        q.sum(0), torch.full((4,), 16.0, dtype=torch.float64), rtol=1e-3, atol=1e-3
    )


@pytest.mark.parametrize("crops", [3, 5])
@pytest.mark.parametrize("with_queue", [False, True])
def test_loss_matches_reference(crops, with_queue) -> None:
    generator = torch.Generator().manual_seed(crops)
    scores = [
        s.requires_grad_()
        for s in torch.randn(crops, 4, 6, generator=generator, dtype=torch.float64).tanh()
    ]
    queue = (
        list(torch.randn(2, 8, 6, generator=generator, dtype=torch.float64).tanh())
        if with_queue
        else None
    )
    got = swav_loss(scores, queue, temperature=0.1, epsilon=0.05, iterations=3)
    expected = _reference_loss(scores, 0.1, 0.05, 3, queue)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        torch.autograd.grad(got, scores), torch.autograd.grad(expected, scores)
    )


def test_hand_computed_case() -> None:
    # Identical scores everywhere: uniform codes and uniform predictions, loss log K.
    scores = [torch.zeros(4, 5)] * 3
    assert swav_loss(scores).item() == pytest.approx(math.log(5))


def test_bad_input_raises_one_line() -> None:
    with pytest.raises(InputError, match="num_assign") as info:
        swav_loss([torch.randn(4, 5)] * 2)
    assert "\n" not in str(info.value)
