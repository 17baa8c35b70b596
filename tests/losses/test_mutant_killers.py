"""Checks that kill the mutants ``nox -s mutants`` found surviving in ``ssl4gie/losses``: the
error lines name the function and the argument, the defaults are the official values, and Barlow
Twins' global batch is checked on a faked two-process run."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import barlow_twins, barlow_twins_loss, byol_loss

_Z, _Y = torch.randn(4, 3), torch.randn(4, 2)

BAD_CALLS = {
    "barlow_twins_loss: z1 and z2 must have the same shape": lambda: barlow_twins_loss(_Z, _Y),
    "barlow_twins_loss: lambd must be >= 0": lambda: barlow_twins_loss(_Z, _Z, lambd=-1.0),
    "byol_loss: p and z must have the same shape": lambda: byol_loss(_Z, _Y),
}


@pytest.mark.parametrize("message", BAD_CALLS)
def test_error_line_names_the_function_and_argument(message: str) -> None:
    with pytest.raises(InputError, match="^" + re.escape(message)):
        BAD_CALLS[message]()


@pytest.mark.parametrize(
    "function, argument, official",
    [
        (barlow_twins_loss, "lambd", 0.0051),  # facebookresearch/barlowtwins main.py --lambd
        (barlow_twins_loss, "official_grad_scale", False),  # the joint-batch gradient by default
    ],
)
def test_defaults_are_the_official_values(function, argument: str, official) -> None:
    assert inspect.signature(function).parameters[argument].default == official


def test_barlow_twins_accepts_lambd_zero() -> None:
    z1, z2 = torch.randn(2, 6, 3, dtype=torch.float64)
    on_diag_only = barlow_twins_loss(z1, z2, lambd=0.0)
    assert on_diag_only < barlow_twins_loss(z1, z2, lambd=1.0)


def test_byol_accepts_a_batch_of_one() -> None:
    p, z = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert byol_loss(p, z) == pytest.approx(2.0)  # 2 - 2 cos(90 degrees)


def _fake_two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes holding the same batch: the sum over processes doubles (gradient too)."""
    monkeypatch.setattr(barlow_twins, "world_size", lambda: 2)
    monkeypatch.setattr(barlow_twins, "all_reduce_sum", lambda x: 2 * x)


@pytest.mark.parametrize("official_grad_scale", [False, True])
def test_barlow_twins_two_processes_equal_the_joint_batch(
    monkeypatch: pytest.MonkeyPatch, official_grad_scale: bool
) -> None:
    z1, z2 = torch.randn(2, 5, 4, dtype=torch.float64)
    joint1 = z1.clone().requires_grad_()
    joint = barlow_twins_loss(torch.cat([joint1, joint1]), torch.cat([z2, z2]))
    joint.backward()
    _fake_two_processes(monkeypatch)
    local1 = z1.clone().requires_grad_()
    loss = barlow_twins_loss(local1, z2, official_grad_scale=official_grad_scale)
    loss.backward()
    assert torch.allclose(loss, joint)
    # the joint-batch gradient, or (official) this process's share of it only: 1/W
    share = 0.5 if official_grad_scale else 1.0
    assert torch.allclose(local1.grad, share * joint1.grad)
