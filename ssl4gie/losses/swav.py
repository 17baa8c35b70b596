"""SwAV swapped-prediction loss with Sinkhorn-Knopp over the global batch [Caron et al. 2020,
"Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
arXiv:2006.09882; facebookresearch/swav ``main_swav.py``]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssl4gie.distributed import all_reduce_sum
from ssl4gie.errors import InputError
from ssl4gie.losses._checks import check_positive
from ssl4gie.nn import to_fp32

__all__ = ["sinkhorn", "swav_loss"]


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft equipartitioned assignments of the samples of all processes to the prototypes.

    "Q* = Diag(u) exp(C^T Z / epsilon) Diag(v) [...] computed with a small number of matrix
    multiplications using the iterative Sinkhorn-Knopp algorithm" [Caron et al. 2020, Eq. 3]. As
    the official ``distributed_sinkhorn``: ``Q = exp(scores / epsilon)`` is scaled to sum to 1
    (to keep it in range), then each iteration gives every prototype the same total (row sums
    all-reduced over processes) and every sample the total 1. The official code makes these
    totals ``1/K`` and ``1/B`` and multiplies by ``B`` at the end; each constant factor cancels
    in the next normalisation, so the result is the same. W processes give the rows of one
    process on the concatenated scores. No gradient.

    Args:
        scores: Prototype scores ``[N, K]`` of this process's samples (cosine similarities).
        epsilon: Entropy regularisation (0.05).
        iterations: Sinkhorn-Knopp iterations (3), at least 1.

    Returns:
        Assignments ``[N, K]``, float32 or wider, each row summing to 1.

    Examples:
        >>> codes = sinkhorn(torch.randn(8, 5))
        >>> codes.shape, torch.allclose(codes.sum(dim=1), torch.ones(8))
        (torch.Size([8, 5]), True)
    """
    if scores.ndim != 2:
        raise InputError(f"sinkhorn: scores must be [N, K], got shape {tuple(scores.shape)}")
    check_positive("sinkhorn", "epsilon", epsilon)
    check_positive("sinkhorn", "iterations", iterations)
    q = (to_fp32(scores) / epsilon).exp().T  # [K, N]
    q = q / all_reduce_sum(q.sum())
    for _ in range(iterations):
        q = q / all_reduce_sum(q.sum(dim=1, keepdim=True))  # prototypes: equal totals
        q = q / q.sum(dim=0)  # samples: total 1 ([K, N] / [N] divides each column)
    return q.T


def swav_loss(
    crop_scores: Sequence[torch.Tensor],
    queue_scores: Sequence[torch.Tensor] | None = None,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    num_assign: int = 2,
) -> torch.Tensor:
    """Predict each assigning crop's code from every other crop.

    "L(z_t, z_s) = l(z_t, q_s) + l(z_s, q_t) [...] l(z_t, q_s) = -sum_k q_s^(k) log p_t^(k),
    where p_t^(k) = exp(z_t^T c_k / tau) / sum_k' exp(z_t^T c_k' / tau)" [Caron et al. 2020,
    Eq. 1-2]. As the official ``train``: for each of the first ``num_assign`` crops (the global
    crops, ``crops_for_assign``) the codes ``q`` come from :func:`sinkhorn` over the global batch
    (with the queue's scores prepended, then dropped); every other crop's softmax at
    ``temperature`` predicts them. The cross-entropies are averaged over samples and over the
    other crops, then over the assigning crops. The value is this process's sample mean, so its
    mean over processes is the joint-batch loss. It is computed in float32 whatever the scores'
    dtype (the method computes them in float32, :func:`ssl4gie.nn.fp32_linear`).

    Args:
        crop_scores: Prototype scores ``[N, K]`` per crop, the assigning crops first.
        queue_scores: Optional scores ``[Q, K]`` of queued embeddings, one per assigning crop.
        temperature: Softmax temperature of the predictions (0.1).
        epsilon, iterations: Of :func:`sinkhorn`.
        num_assign: How many leading crops get codes (2).

    Returns:
        The scalar loss.

    Examples:
        >>> scores = [torch.randn(4, 10) for _ in range(4)]
        >>> swav_loss(scores).shape
        torch.Size([])
    """
    check_positive("swav_loss", "temperature", temperature)
    if (
        not 1 <= num_assign < len(crop_scores)
        or len(queue_scores or [None] * num_assign) != num_assign
    ):
        raise InputError(
            f"swav_loss: need 1 <= num_assign < {len(crop_scores)} crops and one queue per "
            f"assigning crop, got num_assign {num_assign}; pass the global crops first"
        )
    log_p = [F.log_softmax(to_fp32(s) / temperature, dim=1) for s in crop_scores]
    total = 0.0
    for index in range(num_assign):
        scores = crop_scores[index].detach()
        if queue_scores is not None:
            scores = torch.cat([queue_scores[index].detach(), scores])
        codes = sinkhorn(scores, epsilon, iterations)[-len(crop_scores[index]) :]  # [N, K]
        others = [lp for other, lp in enumerate(log_p) if other != index]
        total = total + sum(-(codes * lp).sum(dim=1).mean() for lp in others) / len(others)
    return total / num_assign
