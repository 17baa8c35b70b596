"""Input checks shared by the losses; each failure is one :class:`InputError` line."""

from __future__ import annotations

import torch

from ssl4gie.errors import InputError


def check_pair(
    loss: str, names: tuple[str, str], a: torch.Tensor, b: torch.Tensor, min_batch: int = 2
) -> None:
    """Raise unless ``a`` and ``b`` are ``[N, D]`` tensors of one shape with ``N >= min_batch``."""
    name_a, name_b = names
    if a.shape != b.shape:
        raise InputError(
            f"{loss}: {name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; pass one embedding per sample of the same batch"
        )
    if a.ndim != 2:
        raise InputError(
            f"{loss}: {name_a} and {name_b} must be 2D [batch, dim], got shape {tuple(a.shape)}; "
            "flatten the features first"
        )
    if a.shape[0] < min_batch:
        raise InputError(
            f"{loss}: needs at least {min_batch} samples per process, got {a.shape[0]}; "
            "increase the batch size"
        )


def check_positive(loss: str, name: str, value: float, allow_zero: bool = False) -> None:
    """Raise unless ``value > 0`` (or ``value >= 0`` with ``allow_zero``)."""
    if value > 0 or (allow_zero and value == 0):
        return
    bound = ">= 0" if allow_zero else "> 0"
    raise InputError(f"{loss}: {name} must be {bound}, got {value}; pass a number {bound}")
