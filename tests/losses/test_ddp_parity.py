"""Two gloo processes on different shards train exactly like one process on the joint batch.

Convention. Under DDP each rank back-propagates its own loss ``L_r`` and DDP averages parameter
gradients over the ``W`` ranks, so it follows the gradient of ``mean_r L_r``. Parity with one
process on the joint batch (loss ``L``) therefore needs:

* ``mean_r L_r == L`` (each rank's value need not equal ``L``: NT-Xent's is its own anchors' mean);
* the gradient on rank ``r``'s inputs ``== W *`` the rows of ``dL/d(joint inputs)`` for its shard:
  with autograd-aware collectives rank ``r`` receives ``d(sum_s L_s)/dx_r = W * dL/dx_r``, and
  DDP's division by ``W`` brings the parameter gradient back to ``dL/dtheta``;
* and, checked end to end, DDP-averaged parameter gradients ``== dL/dtheta`` of the joint batch.

All parity checks run in one 2-process job per test session (spawning costs seconds); the tests
below only compare its stored results with single-process references.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from ddp import run_distributed
from torch.nn.parallel import DistributedDataParallel

from ssl4gie import distributed
from ssl4gie.losses import barlow_twins_loss, byol_loss, info_nce_loss, nt_xent_loss

WORLD_SIZE = 2
PER_RANK, IN_DIM, DIM = 4, 5, 6

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "barlow_twins": barlow_twins_loss,
    "info_nce": info_nce_loss,
    "byol": byol_loss,
    "nt_xent": nt_xent_loss,
}


def _joint_batch(seed: int, rows: int, dim: int) -> torch.Tensor:
    """The same float64 ``[rows, dim]`` tensor in every process."""
    return torch.randn(
        rows, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _shard(joint: torch.Tensor, rank: int) -> torch.Tensor:
    return joint.chunk(WORLD_SIZE)[rank]


def _model() -> torch.nn.Linear:
    """A projector stand-in, initialised identically in every process."""
    torch.manual_seed(0)
    return torch.nn.Linear(IN_DIM, DIM, dtype=torch.float64)


def _loss_and_input_grads(loss_fn: Callable, a: torch.Tensor, b: torch.Tensor) -> dict:
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    loss = loss_fn(a, b)
    loss.backward()
    return {"loss": loss.detach(), "grad_a": a.grad, "grad_b": b.grad}


def _param_grads(loss_fn: Callable, model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor):
    z1, z2 = model(torch.cat([x1, x2])).chunk(2)
    loss_fn(z1, z2).backward()
    return [p.grad for p in model.parameters()]


def _inputs(rows: int, rank: int | None = None) -> dict[str, torch.Tensor]:
    """Embeddings ``a, b`` and images ``x1, x2`` of the joint batch, or of ``rank``'s shard."""
    joint = {
        "a": _joint_batch(1, rows, DIM),
        "b": _joint_batch(2, rows, DIM),
        "x1": _joint_batch(3, rows, IN_DIM),
        "x2": _joint_batch(4, rows, IN_DIM),
    }
    return joint if rank is None else {name: _shard(t, rank) for name, t in joint.items()}


def _results(loss_fn: Callable, inputs: dict[str, torch.Tensor], model: torch.nn.Module) -> dict:
    return {
        **_loss_and_input_grads(loss_fn, inputs["a"], inputs["b"]),
        "param_grads": _param_grads(loss_fn, model, inputs["x1"], inputs["x2"]),
    }


def _primitive_results(rank: int) -> dict:
    """Values and input gradients of the collectives for this rank's shard."""
    x = _shard(_joint_batch(5, WORLD_SIZE * 3, 2), rank).clone().requires_grad_()
    gathered = distributed.gather(x)
    (gathered * _joint_batch(10 + rank, WORLD_SIZE * 3, 2)).sum().backward()
    gather_grad, x.grad = x.grad, None
    summed = distributed.all_reduce_sum(x)
    (summed * _joint_batch(20 + rank, 3, 2)).sum().backward()
    return {
        "rank": distributed.rank(),
        "world_size": distributed.world_size(),
        "gather": gathered.detach(),
        "gather_grad": gather_grad,
        "gather_no_grad": distributed.gather_no_grad(x),
        "all_reduce_sum": summed.detach(),
        "all_reduce_sum_grad": x.grad,
        "all_reduce_mean_no_grad": distributed.all_reduce_mean_no_grad(x),
    }


def _parity_job(rank: int, world_size: int) -> dict:
    inputs = _inputs(PER_RANK * world_size, rank)
    losses = {
        name: _results(loss_fn, inputs, DistributedDataParallel(_model()))
        for name, loss_fn in LOSSES.items()
    }
    return {"losses": losses, "primitives": _primitive_results(rank)}


@pytest.fixture(scope="module")
def ranks() -> list[dict]:
    return run_distributed(_parity_job, WORLD_SIZE)


@pytest.fixture(scope="module")
def joint() -> dict[str, dict]:
    inputs = _inputs(PER_RANK * WORLD_SIZE)
    return {name: _results(loss_fn, inputs, _model()) for name, loss_fn in LOSSES.items()}


@pytest.mark.ddp
@pytest.mark.parametrize("name", LOSSES)
def test_mean_of_rank_losses_is_joint_loss(name: str, ranks: list[dict], joint: dict) -> None:
    mean = torch.stack([r["losses"][name]["loss"] for r in ranks]).mean()
    torch.testing.assert_close(mean, joint[name]["loss"])


@pytest.mark.ddp
def test_barlow_twins_gives_joint_loss_on_every_rank(ranks: list[dict], joint: dict) -> None:
    for r in ranks:
        torch.testing.assert_close(
            r["losses"]["barlow_twins"]["loss"], joint["barlow_twins"]["loss"]
        )


@pytest.mark.ddp
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("grad", ["grad_a", "grad_b"])
def test_rank_input_grads_are_world_size_times_joint_grads(
    name: str, grad: str, ranks: list[dict], joint: dict
) -> None:
    if joint[name][grad] is None:  # info_nce's keys get no gradient
        assert all(r["losses"][name][grad] is None for r in ranks)
        return
    stacked = torch.cat([r["losses"][name][grad] for r in ranks])
    torch.testing.assert_close(stacked, WORLD_SIZE * joint[name][grad])


@pytest.mark.ddp
@pytest.mark.parametrize("name", LOSSES)
def test_ddp_param_grads_equal_joint_param_grads(name: str, ranks: list[dict], joint: dict) -> None:
    for r in ranks:
        torch.testing.assert_close(r["losses"][name]["param_grads"], joint[name]["param_grads"])


@pytest.mark.ddp
def test_rank_and_world_size(ranks: list[dict]) -> None:
    assert [(r["primitives"]["rank"], r["primitives"]["world_size"]) for r in ranks] == [
        (0, WORLD_SIZE),
        (1, WORLD_SIZE),
    ]


@pytest.mark.ddp
def test_gather_values_and_grads(ranks: list[dict]) -> None:
    joint_x = _joint_batch(5, WORLD_SIZE * 3, 2)
    # Rank s's loss is sum(gather(x) * w_s), so x_r's gradient is rank r's rows of sum_s w_s.
    summed_weights = sum(_joint_batch(10 + s, WORLD_SIZE * 3, 2) for s in range(WORLD_SIZE))
    for rank, r in enumerate(ranks):
        torch.testing.assert_close(r["primitives"]["gather"], joint_x)
        torch.testing.assert_close(r["primitives"]["gather_grad"], _shard(summed_weights, rank))


@pytest.mark.ddp
def test_gather_no_grad_values(ranks: list[dict]) -> None:
    for r in ranks:
        torch.testing.assert_close(r["primitives"]["gather_no_grad"], _joint_batch(5, 6, 2))
        assert not r["primitives"]["gather_no_grad"].requires_grad


@pytest.mark.ddp
def test_all_reduce_sum_values_and_grads(ranks: list[dict]) -> None:
    shards = _joint_batch(5, WORLD_SIZE * 3, 2).chunk(WORLD_SIZE)
    # Rank s's loss is sum(all_reduce_sum(x) * v_s), so every x_r's gradient is sum_s v_s.
    summed_weights = sum(_joint_batch(20 + s, 3, 2) for s in range(WORLD_SIZE))
    for r in ranks:
        torch.testing.assert_close(r["primitives"]["all_reduce_sum"], sum(shards))
        torch.testing.assert_close(r["primitives"]["all_reduce_sum_grad"], summed_weights)


@pytest.mark.ddp
def test_all_reduce_mean_no_grad_values(ranks: list[dict]) -> None:
    shards = _joint_batch(5, WORLD_SIZE * 3, 2).chunk(WORLD_SIZE)
    for r in ranks:
        torch.testing.assert_close(r["primitives"]["all_reduce_mean_no_grad"], sum(shards) / 2)
        assert not r["primitives"]["all_reduce_mean_no_grad"].requires_grad


def test_single_process_fallback() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert (distributed.world_size(), distributed.rank()) == (1, 0)
    assert distributed.gather(x) is x
    assert distributed.all_reduce_sum(x) is x
    for no_grad in (distributed.gather_no_grad(x), distributed.all_reduce_mean_no_grad(x)):
        torch.testing.assert_close(no_grad, x.detach())
        assert not no_grad.requires_grad
