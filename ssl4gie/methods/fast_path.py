"""The GPU fast path of :class:`~ssl4gie.methods.base.SSLMethod`: optimiser kernels, torch.compile
and channels-last memory format. Each is an option of the method; all of them leave the
numerics of a step unchanged (up to floating-point reordering) and run on CPU too.

- optimiser kernels: torch's AdamW and SGD have a per-parameter loop, a multi-tensor
  (``foreach``) and a ``fused`` implementation; timm's LARS has the first two. ``"auto"`` takes
  the fused AdamW wherever torch has that kernel (CUDA; CPU since torch 2.4, measured 4.7x
  faster than the loop on a 2-core CPU) and the foreach SGD and LARS on CUDA (on CPU the loop
  was as fast). Not the fused SGD: it fails when a parameter gets its first gradient after
  the others have momentum buffers, as DINO's last layer does after its frozen first epoch.
  With ``precision="16-mixed"`` the fused kernels unscale the gradients themselves, so
  gradient clipping (the trainer's, DINO's) needs ``"foreach"`` there.
- compile: ``nn.Module.compile`` compiles a module's call in place, so parameter names and
  checkpoints are unchanged. A transformer is compiled block by block ("regional
  compilation": one graph shared by the identical blocks, compiled once), which also serves
  MAE and SimMIM, whose encoders call the blocks directly rather than the backbone's forward.
- channels-last (NHWC) weights and views let cuDNN use its tensor-core convolution kernels
  without layout conversions (PyTorch "channels last memory format" tutorial).
- no host synchronisation per step: numbers logged every step go to ``self.log`` as CPU
  tensors (:func:`host_scalar`); Lightning would copy a Python number to the device, and a
  copy from pageable memory waits for the GPU's queue.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ssl4gie.errors import InputError, check_choice

__all__ = [
    "OptimizerImpl",
    "compile_backbones",
    "host_scalar",
    "optimizer_impl_kwargs",
    "to_channels_last",
]

OptimizerImpl = Literal["auto", "fused", "foreach", "loop"]


def optimizer_impl_kwargs(
    impl: OptimizerImpl, optimizer: str, device: torch.device
) -> dict[str, bool]:
    """The ``fused``/``foreach`` keyword for ``timm.optim.create_optimizer_v2``.

    ``impl``: ``"auto"`` (fused AdamW where torch has the kernel for ``device``, foreach SGD
    and LARS on CUDA, else the optimiser's own default), ``"fused"``, ``"foreach"`` or
    ``"loop"`` (one parameter at a time). ``optimizer``: ``"lars"``, ``"adamw"`` or ``"sgd"``.

    >>> optimizer_impl_kwargs("auto", "lars", torch.device("cuda"))
    {'foreach': True}
    >>> optimizer_impl_kwargs("loop", "adamw", torch.device("cpu"))
    {'foreach': False}
    """
    check_choice("optimizer_impl", impl, ("auto", "fused", "foreach", "loop"))
    if impl == "auto":
        if optimizer == "adamw":
            return {"fused": True} if _has_fused_kernels(device) else {}
        return {"foreach": True} if device.type == "cuda" else {}
    if impl == "fused" and optimizer == "lars":
        raise InputError(
            "timm's LARS has no fused kernel; use optimizer_impl 'foreach' (or 'auto')"
        )
    return {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}


def _has_fused_kernels(device: torch.device) -> bool:
    """Whether torch has a fused AdamW kernel for ``device``'s type (torch's own list)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    return device.type in _get_fused_kernels_supported_devices()


def compile_backbones(model: nn.Module, backbone: nn.Module) -> None:
    """Compile in place ``backbone`` and its copies in ``model`` (momentum encoders, found as the
    submodules of the same class): a transformer's ``blocks`` one by one, other backbones
    whole. Parameter names do not change."""
    for module in model.modules():
        if type(module) is type(backbone):
            blocks = getattr(module, "blocks", None)
            regions = list(blocks) if isinstance(blocks, nn.Sequential) else [module]
            for region in regions:
                region.compile()


def to_channels_last(views: list[Tensor]) -> list[Tensor]:
    """Views ``[B, 3, h, w]`` in channels-last memory format (same values and shape)."""
    return [view.contiguous(memory_format=torch.channels_last) for view in views]


def host_scalar(value: float) -> Tensor:
    """``value`` as a CPU tensor ``[]``, for ``self.log`` in every step without a host sync."""
    return torch.tensor(value)
