"""Every method on 2 gloo processes with different shards trains exactly like 1 process.

A ResNet-18 backbone with the heads, in float64: under DDP, :meth:`SSLMethod.configure_model`'s
conversion (``GlobalBatchNorm`` on CPU) makes every batch norm use the global batch. One
spawned job runs every method on fixed views (no random view recipe): forward, backward,
gradient averaging as DDP does, one SGD step and one momentum-encoder update. The single-process
reference runs the unconverted model on the concatenated batch. Parity means:

* the mean of the per-rank losses is the joint loss (the loss DDP's averaging optimises);
* the averaged parameter gradients are the joint gradients;
* after the step, the whole state dict (parameters, running statistics, momentum encoder) is
  the joint one.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ddp import run_distributed

from ssl4gie.distributed import all_reduce_sum
from ssl4gie.methods import METHODS, SSLMethod
from ssl4gie.methods.base import MomentumEncoder
from ssl4gie.nn import GlobalBatchNorm, distributed_batchnorm

WORLD_SIZE = 2
PER_RANK, SIZE = 4, 32
HEADS: dict[str, dict[str, Any]] = {
    "mocov3": {"mlp_dim": 32, "dim": 16},
    "barlow_twins": {"projector_dims": [32, 32]},
    "byol": {"mlp_dim": 32, "dim": 16},
    "simclr": {"mlp_dim": 32, "dim": 16},
}
LR, MOMENTUM = 0.1, 0.9


def _method(name: str) -> SSLMethod:
    torch.manual_seed(0)
    return METHODS[name](backbone="resnet18", **HEADS[name]).double()


def _views(rank: int | None = None) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    joint = torch.randn(2, WORLD_SIZE * PER_RANK, 3, SIZE, SIZE, generator=generator)
    views = list(joint.double().unbind(0))
    return views if rank is None else [v.chunk(WORLD_SIZE)[rank] for v in views]


def _train_step(method: SSLMethod, views: list[torch.Tensor], average) -> dict[str, Any]:
    """Loss, (averaged) gradients and the state dict after one SGD step and one EMA update."""
    loss, _ = method.ssl_loss(views)
    loss.backward()
    grads = {n: average(p.grad) for n, p in method.named_parameters() if p.grad is not None}
    with torch.no_grad():
        for name, param in method.named_parameters():
            if name in grads:
                param -= LR * grads[name]
    for child in method.children():
        if isinstance(child, MomentumEncoder):
            child.update(MOMENTUM)
    return {"loss": loss.detach(), "grads": grads, "state": method.state_dict()}


def _ddp_job(rank: int, world_size: int) -> dict[str, Any]:
    results = {}
    for name in HEADS:
        method = distributed_batchnorm(_method(name), torch.device("cpu"), world_size)
        converted = sum(isinstance(m, GlobalBatchNorm) for m in method.modules())
        step = _train_step(method, _views(rank), lambda g: all_reduce_sum(g) / world_size)
        results[name] = {**step, "converted": converted}
    return results


@pytest.fixture(scope="module")
def ranks() -> list[dict]:
    return run_distributed(_ddp_job, WORLD_SIZE)


@pytest.fixture(scope="module")
def joint() -> dict[str, dict]:
    return {name: _train_step(_method(name), _views(), lambda g: g) for name in HEADS}


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(HEADS))
def test_every_batchnorm_is_global(name: str, ranks: list[dict]) -> None:
    plain = sum(
        isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in _method(name).modules()
    )
    assert plain > 20 and all(r[name]["converted"] == plain for r in ranks)


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(HEADS))
def test_mean_rank_loss_is_joint_loss(name: str, ranks: list[dict], joint: dict) -> None:
    mean = torch.stack([r[name]["loss"] for r in ranks]).mean()
    torch.testing.assert_close(mean, joint[name]["loss"])


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(HEADS))
def test_averaged_grads_are_joint_grads(name: str, ranks: list[dict], joint: dict) -> None:
    for r in ranks:
        assert r[name]["grads"].keys() == joint[name]["grads"].keys()
        torch.testing.assert_close(r[name]["grads"], joint[name]["grads"])


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(HEADS))
def test_state_after_step_and_ema_is_joint_state(name: str, ranks: list[dict], joint: dict) -> None:
    for r in ranks:
        torch.testing.assert_close(dict(r[name]["state"]), dict(joint[name]["state"]))
