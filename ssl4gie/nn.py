"""Layers shared by the methods: batch norm over the global batch, float32 similarity matrices.

The official MoCo v3, Barlow Twins, BYOL and SimCLR code normalises with the statistics of the
whole (global) batch: ``SyncBatchNorm`` in the PyTorch repositories, cross-replica batch norm
on TPU. ``torch.nn.SyncBatchNorm`` runs on CUDA only (it raises on CPU), so
:class:`GlobalBatchNorm` does the same with :func:`ssl4gie.distributed.all_reduce_sum`, whose
backward sums the gradients: W processes give the statistics, outputs and gradients of one
process on the concatenated batch (``tests/methods/test_methods_ddp.py`` checks it).

:func:`distributed_batchnorm` converts a model before DDP wraps it: ``SyncBatchNorm`` on CUDA
(its fused kernels are faster), :class:`GlobalBatchNorm` elsewhere, nothing on one process.
timm's fused ``BatchNormAct2d`` (EfficientNet, MobileNet) keeps its activation on both paths.

:func:`fp32_linear` computes similarity and logit matrices in float32 under ``bf16-mixed``
autocast (InfoNCE, NT-Xent, DINO's last layer, SwAV's prototype scores), as the official
fp16/fp32 runs round them far less than bf16's 8-bit mantissa would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, convert_sync_batchnorm
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ssl4gie.distributed import all_reduce_sum, world_size
from ssl4gie.errors import InputError

__all__ = [
    "GlobalBatchNorm",
    "GlobalBatchNormAct",
    "distributed_batchnorm",
    "fp32_linear",
    "global_batchnorm",
    "to_fp32",
]

_PLAIN_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class GlobalBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are over all processes, with exact gradients.

    Takes ``[N, C]`` or ``[N, C, *]`` like ``BatchNorm1d/2d/3d``; parameters and buffers have the
    same names, so state dicts load either way. In training, each channel is normalised with the
    mean and *biased* variance over the ``W * N * prod(*)`` values of all processes (computed in
    float32 or wider) and the running statistics get the *unbiased* variance, as ``BatchNorm``
    does. In evaluation (with running statistics) it is a plain batch norm. Every process must
    hold a batch of the same shape, as ``DistributedSampler`` gives.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.ndim < 2:
            raise ValueError(f"GlobalBatchNorm expects [N, C, *] input, got shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not self.training and self.track_running_stats:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        reduce_dims = [0, *range(2, x.ndim)]
        per_channel = [1, -1] + [1] * (x.ndim - 2)
        count = x.numel() // x.shape[1] * world_size()
        if count < 2:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input {tuple(x.shape)}"
            )
        values = to_fp32(x)
        mean = all_reduce_sum(values.sum(reduce_dims)) / count  # [C]
        centred = values - mean.view(per_channel)
        var = all_reduce_sum(centred.pow(2).sum(reduce_dims)) / count  # [C], biased
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        out = centred * torch.rsqrt(var + self.eps).view(per_channel)
        if self.affine:
            out = out * self.weight.view(per_channel) + self.bias.view(per_channel)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, count: int) -> None:
        """``BatchNorm``'s update: exponential (or cumulative if momentum is None) averages."""
        self.num_batches_tracked.add_(1)
        factor = self.momentum
        if factor is None:
            factor = 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        unbiased = var * (count / (count - 1))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


class GlobalBatchNormAct(GlobalBatchNorm):
    """:class:`GlobalBatchNorm`, then the dropout and activation of the timm ``BatchNormAct2d``
    it replaces (``drop`` then ``act``, as ``BatchNormAct2d.forward``); same state dict keys."""

    def __init__(self, *args: object, drop: nn.Module, act: nn.Module) -> None:
        super().__init__(*args)
        self.drop, self.act = drop, act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.drop(super().forward(x)))


def _as_global(bn: _BatchNorm) -> GlobalBatchNorm:
    """A GlobalBatchNorm(Act) sharing ``bn``'s parameters, buffers and activation (no copy)."""
    args = (bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if isinstance(bn, BatchNormAct2d):
        out = GlobalBatchNormAct(*args, drop=bn.drop, act=bn.act)
    else:
        out = GlobalBatchNorm(*args)
    if bn.affine:
        out.weight, out.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        out.running_mean, out.running_var = bn.running_mean, bn.running_var
        out.num_batches_tracked = bn.num_batches_tracked
    out.train(bn.training)
    return out


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d/2d/3d`` in ``module`` by a :class:`GlobalBatchNorm`, and every
    timm ``BatchNormAct2d`` by a :class:`GlobalBatchNormAct`.

    Works in place like ``SyncBatchNorm.convert_sync_batchnorm`` and returns the module (a new one
    only when ``module`` itself is a batch norm). SyncBatchNorm and GlobalBatchNorm are left
    alone; another batch norm subclass raises :class:`~ssl4gie.errors.InputError` (its own forward
    would be lost).
    """
    if type(module) in _PLAIN_BATCHNORMS or isinstance(module, BatchNormAct2d):
        return _as_global(module)
    if isinstance(module, _BatchNorm) and not isinstance(
        module, nn.SyncBatchNorm | GlobalBatchNorm
    ):
        raise InputError(
            f"global_batchnorm: cannot make {type(module).__name__} normalise over all "
            "processes (known: BatchNorm1d/2d/3d, timm BatchNormAct2d); use plain batch norms "
            "or train on CUDA"
        )
    for name, child in module.named_children():
        converted = global_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def distributed_batchnorm(module: nn.Module, device: torch.device, num_processes: int) -> nn.Module:
    """Make ``module``'s batch norms use the global batch of ``num_processes`` processes.

    Unchanged for one process; on CUDA ``SyncBatchNorm`` through timm's
    ``convert_sync_batchnorm``, which turns ``BatchNormAct2d`` into ``SyncBatchNormAct`` (torch's
    own conversion keeps the norm and silently drops the fused activation); on other devices
    (CPU with gloo) :func:`global_batchnorm`. Call it before DDP wraps the model.
    """
    if num_processes == 1:
        return module
    if device.type == "cuda":
        return convert_sync_batchnorm(module)
    return global_batchnorm(module)


def to_fp32(x: Tensor) -> Tensor:
    """``x`` in float32, or unchanged if wider (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def fp32_linear(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` in float32 (or wider) with autocast off: ``[N, D] x [K, D] -> [N, K]``.

    For similarity and logit matrices under ``bf16-mixed``: autocast would run the matmul in
    bf16 and round every logit to 8 bits of mantissa (a relative error up to 2^-9, i.e. up to
    0.05 on a logit of 25, a cosine divided by the 0.04 of DINO's teacher). Gradients flow to
    both inputs in their own dtypes.
    """
    with torch.autocast(x.device.type, enabled=False):
        return F.linear(to_fp32(x), to_fp32(weight))
