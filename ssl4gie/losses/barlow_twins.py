"""Barlow Twins redundancy-reduction loss [Zbontar et al. 2021]."""

from __future__ import annotations

import torch

from ssl4gie.distributed import all_reduce_sum, world_size
from ssl4gie.losses._checks import check_pair, check_positive

__all__ = ["barlow_twins_loss"]

_BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, as in the official projector's last layer


def _standardised(z: torch.Tensor, global_batch: int) -> torch.Tensor:
    """Batch norm without affine over the global batch, as SyncBatchNorm does in training.

    Each dim ``d`` of ``z`` ``[N, D]`` becomes ``(z - mean_d) / sqrt(var_d + eps)`` with the mean
    and the biased variance over all ``W*N`` samples of all processes (with gradient).
    """
    mean = all_reduce_sum(z.sum(dim=0)) / global_batch
    centred = z - mean
    var = all_reduce_sum(centred.pow(2).sum(dim=0)) / global_batch
    return centred / torch.sqrt(var + _BN_EPS)


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, official_grad_scale: bool = False
) -> torch.Tensor:
    """Barlow Twins loss between the projections of two views of one batch.

    "L_BT = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2, where C is the
    cross-correlation matrix computed between the outputs of the two identical networks along the
    batch dimension" [Zbontar et al. 2021, Eq. 1-2].

    Following the official code, each dim is standardised with batch norm without affine (mean and
    biased variance over the global batch, eps 1e-5, as its ``SyncBatchNorm``), and
    ``C = z1n^T z2n / (W*N)`` is summed over processes. Deliberate deviation: the official code
    sums ``C`` with the raw ``torch.distributed.all_reduce``, which stops the gradient from other
    ranks and leaves DDP's update ``1/W`` of the joint-batch one; here the sum is autograd-aware, so
    W processes update the parameters exactly as one process on the joint batch (see
    :mod:`ssl4gie.distributed`). ``official_grad_scale=True`` sums ``C`` as the official code does
    (the sum's value, the gradient of this process's share only), so the DDP update is ``1/W`` of
    the joint-batch one. The returned value is the joint-batch loss on every process either way.

    Args:
        z1: Projections of the first view, ``[N, D]`` on this process.
        z2: Projections of the second view, ``[N, D]``; row ``n`` is the same image as in ``z1``.
        lambd: Weight of the redundancy-reduction (off-diagonal) term. The paper gives 5e-3; the
            official code's default, used here, is 0.0051.
        official_grad_scale: Sum ``C`` over processes without autograd, as barlowtwins
            ``main.py`` (``torch.distributed.all_reduce(c)``); no effect on one process.

    Returns:
        The scalar loss. Every process must hold the same ``N``; ``N >= 2`` per process.

    Examples:
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> barlow_twins_loss(z1, z2).shape
        torch.Size([])
    """
    check_pair("barlow_twins_loss", ("z1", "z2"), z1, z2)
    check_positive("barlow_twins_loss", "lambd", lambd, allow_zero=True)
    global_batch = z1.shape[0] * world_size()
    z1n, z2n = _standardised(z1, global_batch), _standardised(z2, global_batch)
    c = z1n.T @ z2n / global_batch  # [D, D], this process's share
    # official: the sum's value with the gradient of the local share only (raw all_reduce)
    c = c + (all_reduce_sum(c.detach()) - c).detach() if official_grad_scale else all_reduce_sum(c)
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    eye = torch.eye(c.shape[0], dtype=torch.bool, device=c.device)
    off_diag = c.masked_fill(eye, 0).pow(2).sum()
    return on_diag + lambd * off_diag
