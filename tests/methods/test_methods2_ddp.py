"""DINO, SwAV and MAE on 2 gloo processes with different shards train exactly like 1 process.

The pattern of ``test_methods_ddp.py``, in float64, in one spawned job: fixed multi-crop views
(2 global 32 px + 2 local 16 px crops) for DINO and SwAV on a ResNet-18 (batch norms converted
to ``GlobalBatchNorm``), one 32 px view and fixed masking noise for MAE on a 2-block ViT.
Parity means:

* the mean of the per-rank losses is the joint loss;
* the averaged parameter gradients are the joint gradients (SwAV: codes from Sinkhorn-Knopp
  over the global batch);
* after one SGD step and one EMA update, the whole state dict is the joint one, including DINO's
  centre (updated with the all-reduced batch mean) and the teacher.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ddp import run_distributed

from ssl4gie.distributed import all_reduce_sum
from ssl4gie.methods import DINO, MAE, SSLMethod, SwAV
from ssl4gie.methods.base import MomentumEncoder
from ssl4gie.nn import distributed_batchnorm
from ssl4gie.transforms.views import MaskedViewCrop, MultiCrop

WORLD_SIZE = 2
PER_RANK, GLOBAL, LOCAL = 4, 32, 16
LR, MOMENTUM = 0.1, 0.9
MULTICROP = MultiCrop(global_size=GLOBAL, local_size=LOCAL, num_local=2)
VIT = {"img_size": GLOBAL, "patch_size": 8, "depth": 2}
BUILDERS = {
    "dino": lambda: DINO("resnet18", views=MULTICROP, out_dim=32, hidden_dim=32, bottleneck_dim=16),
    "swav": lambda: SwAV("resnet18", views=MULTICROP, hidden_dim=32, dim=16, num_prototypes=24),
    "mae": lambda: MAE(
        "vit_tiny_patch16_224", backbone_kwargs=VIT, views=MaskedViewCrop(size=GLOBAL),
        decoder_width=32, decoder_depth=1, decoder_heads=2,
    ),
}  # fmt: skip


def _method(name: str) -> SSLMethod:
    torch.manual_seed(0)
    return BUILDERS[name]().double()


def _inputs(name: str, rank: int | None = None) -> dict[str, Any]:
    """``ssl_loss`` arguments of the joint batch, or of ``rank``'s shard."""
    generator = torch.Generator().manual_seed(0)
    rows = WORLD_SIZE * PER_RANK

    def joint(*shape: int) -> torch.Tensor:
        return torch.randn(rows, *shape, generator=generator, dtype=torch.float64)

    if name == "mae":
        inputs = {"views": [joint(3, GLOBAL, GLOBAL)], "noise": joint(16)}
    else:
        sizes = [GLOBAL, GLOBAL, LOCAL, LOCAL]
        inputs = {"views": [joint(3, size, size) for size in sizes]}
    if rank is None:
        return inputs
    shard = {key: value.chunk(WORLD_SIZE)[rank] for key, value in inputs.items() if key != "views"}
    return {**shard, "views": [v.chunk(WORLD_SIZE)[rank] for v in inputs["views"]]}


def _train_step(method: SSLMethod, inputs: dict[str, Any], average) -> dict[str, Any]:
    """Loss, (averaged) gradients and the state dict after one SGD step and one EMA update."""
    loss, _ = method.ssl_loss(**inputs)
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
    for name in BUILDERS:
        method = distributed_batchnorm(_method(name), torch.device("cpu"), world_size)
        average = lambda g: all_reduce_sum(g) / world_size  # noqa: E731
        results[name] = _train_step(method, _inputs(name, rank), average)
    return results


@pytest.fixture(scope="module")
def ranks() -> list[dict]:
    return run_distributed(_ddp_job, WORLD_SIZE)


@pytest.fixture(scope="module")
def joint() -> dict[str, dict]:
    return {name: _train_step(_method(name), _inputs(name), lambda g: g) for name in BUILDERS}


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILDERS))
def test_mean_rank_loss_is_joint_loss(name: str, ranks: list[dict], joint: dict) -> None:
    mean = torch.stack([r[name]["loss"] for r in ranks]).mean()
    torch.testing.assert_close(mean, joint[name]["loss"])


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILDERS))
def test_averaged_grads_are_joint_grads(name: str, ranks: list[dict], joint: dict) -> None:
    for r in ranks:
        assert r[name]["grads"].keys() == joint[name]["grads"].keys()
        torch.testing.assert_close(r[name]["grads"], joint[name]["grads"])


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILDERS))
def test_state_after_step_and_ema_is_joint_state(name: str, ranks: list[dict], joint: dict) -> None:
    for r in ranks:
        torch.testing.assert_close(dict(r[name]["state"]), dict(joint[name]["state"]))


@pytest.mark.ddp
@pytest.mark.slow
def test_dino_centre_moved_to_the_global_batch_mean(ranks: list[dict], joint: dict) -> None:
    centres = [r["dino"]["state"]["center"] for r in ranks]
    assert centres[0].abs().sum() > 0
    torch.testing.assert_close(centres[0], centres[1])
    torch.testing.assert_close(centres[0], joint["dino"]["state"]["center"])
