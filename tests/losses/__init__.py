"""Tests of :mod:`ssl4gie.losses`: plain references, hand-worked cases, invariances, DDP parity."""

from __future__ import annotations

from collections.abc import Callable

import torch


def assert_matches_reference(loss: Callable, reference: Callable, *inputs: torch.Tensor) -> None:
    """Assert that ``loss`` and ``reference`` agree on ``inputs`` in value and input gradients."""
    inputs = tuple(x.detach().requires_grad_() for x in inputs)
    got, expected = loss(*inputs), reference(*inputs)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(_input_grads(got, inputs), _input_grads(expected, inputs))


def _input_grads(value: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(value, inputs, allow_unused=True, materialize_grads=True)
