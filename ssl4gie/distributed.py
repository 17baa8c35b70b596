"""Collectives for losses that need the global batch; the only module that calls torch.distributed.

Every helper falls back to a single process (world size 1) when no process group is initialised,
so the same loss code runs in tests on CPU, on one GPU and under Lightning's DDP.

Gradient convention. Under DDP, rank ``r`` computes its own loss ``L_r`` and back-propagates it;
DDP then *averages* parameter gradients over the ``W`` ranks, so training follows the gradient of
``(1/W) * sum_r L_r``. The autograd-aware helpers here give every collective the backward of its
adjoint (all-reduce sum <-> all-reduce sum, all-gather <-> sum then take this rank's slice), so
the gradient that reaches rank ``r``'s input is ``d(sum_s L_s)/dx_r``: the gradients of all ranks'
losses, not just its own. A loss whose per-rank values average to the joint-batch loss therefore
makes W-process DDP update the parameters exactly as one process would on the concatenated batch;
the gradient on rank ``r``'s input is ``W`` times that slice of the joint-batch gradient, and
DDP's division by ``W`` cancels it. ``tests/losses/test_ddp_parity.py`` checks this.

Every process must hold a batch of the same shape (as ``DistributedSampler`` gives).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_mean_no_grad",
    "all_reduce_sum",
    "gather",
    "gather_no_grad",
    "rank",
    "world_size",
]


def _initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group, 1 when none is initialised."""
    return dist.get_world_size() if _initialised() else 1


def rank() -> int:
    """This process's rank in the default group, 0 when none is initialised."""
    return dist.get_rank() if _initialised() else 0


def _summed(x: torch.Tensor) -> torch.Tensor:
    """A new tensor holding the sum of ``x`` over all processes."""
    out = x.clone(memory_format=torch.contiguous_format)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def _concatenated(x: torch.Tensor) -> torch.Tensor:
    """``x`` from every process, concatenated along dim 0 in rank order: ``[W*N, ...]``."""
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the sum is self-adjoint, so the backward sums the gradients too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return _summed(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _summed(grad)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.local_size = x.shape[0]
        return _concatenated(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        start = rank() * ctx.local_size
        return _summed(grad)[start : start + ctx.local_size]


def gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 with gradient flowing back to every rank's input.

    Shapes: ``x`` ``[N, ...]`` -> ``[W*N, ...]``, rank 0's rows first. Rank ``r``'s input gets
    the sum over all ranks of the gradient on its rows. Identity when ``W == 1``.
    """
    return _GatherWithGrad.apply(x) if world_size() > 1 else x


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 without gradient, MoCo v3's ``concat_all_gather`` for keys.

    Shapes: ``x`` ``[N, ...]`` -> ``[W*N, ...]``, rank 0's rows first. The result is detached
    for every world size, so a loss behaves the same on one process and on many.
    """
    if world_size() == 1:
        return x.detach()
    with torch.no_grad():
        return _concatenated(x)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes, differentiable: the backward is a sum of the gradients.

    Returns a new tensor of the shape of ``x``; identity when ``W == 1``.
    """
    return _AllReduceSum.apply(x) if world_size() > 1 else x


def all_reduce_mean_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes without gradient, for buffers such as DINO's centre.

    Returns a new detached tensor of the shape of ``x``.
    """
    if world_size() == 1:
        return x.detach().clone()
    with torch.no_grad():
        return _summed(x) / world_size()
