"""Mechanisms behind the official recipes (issue 17): a momentum copy never drops paths, DINO's
absolute ``min_lr``, SimMIM's weight-decay exclusions, Barlow Twins' released gradient scale."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import timm
import torch
from ddp import run_distributed
from timm.layers import DropPath
from torch.nn.parallel import DistributedDataParallel

from ssl4gie.errors import InputError
from ssl4gie.losses import barlow_twins_loss
from ssl4gie.methods import DINO, MaskedImageModeling
from ssl4gie.methods.momentum import MomentumEncoder
from ssl4gie.transforms.views import MaskedViewCrop, MultiCrop

VIT = {"img_size": 32, "patch_size": 8, "depth": 4}
CROPS = MultiCrop.dino(global_size=32, local_size=16, num_local=2)
HEAD = {"out_dim": 32, "hidden_dim": 32, "bottleneck_dim": 16}


def _dino(**overrides) -> DINO:
    kwargs = {"backbone_kwargs": {**VIT, "drop_path_rate": 0.5}, "views": CROPS, **HEAD}
    return DINO("vit_tiny_patch16_224", **{**kwargs, **overrides})


def test_dino_teacher_never_drops_paths_whatever_the_student() -> None:
    torch.manual_seed(0)
    method = _dino().train()
    x = torch.randn(4, 3, 32, 32)
    student = [method.head(method.backbone(x)) for _ in range(2)]
    assert not torch.allclose(*student)  # the student drops paths in train mode
    teacher = [method.momentum_encoder(x) for _ in range(2)]
    torch.testing.assert_close(teacher[0], teacher[1], rtol=0, atol=0)
    method.eval()  # same weights, no drop path: the reference
    torch.testing.assert_close(teacher[0], method.head(method.backbone(x)))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vit_tiny_patch16_224", VIT),
        ("convnext_atto", {}),
        ("swin_tiny_patch4_window7_224", {"embed_dim": 16, "depths": (1, 1, 2, 1),
                                          "num_heads": (1, 1, 1, 1)}),
        ("resnet18", {"drop_block_rate": 0.3}),
        ("efficientnet_b0", {}),
    ],
)  # fmt: skip
def test_momentum_copy_zeroes_every_stochastic_layer(name: str, kwargs: dict) -> None:
    online = timm.create_model(name, drop_path_rate=0.5, drop_rate=0.3, **kwargs)
    drops = [m.drop_prob for m in online.modules() if isinstance(m, DropPath)]
    assert drops and max(drops) > 0  # the online model does drop paths
    copy = MomentumEncoder([online], 0.99).encoder
    stochastic = {
        key: getattr(m, "drop_prob", getattr(m, "p", None))
        for key, m in copy.named_modules()
        if isinstance(m, DropPath | timm.layers.DropBlock2d | torch.nn.Dropout)
    }
    assert stochastic and set(stochastic.values()) == {0.0}, stochastic
    assert max(m.drop_prob for m in online.modules() if isinstance(m, DropPath)) == max(drops)


@pytest.mark.parametrize(("world", "per_process"), [(8, 128), (1, 64)])
def test_dino_cosine_ends_at_the_absolute_min_lr_whatever_the_batch(world, per_process) -> None:
    method = _dino(optimizer="adamw", base_lr=7.5e-4, min_lr=2e-6, warmup_epochs=0)
    total = 20
    method._trainer = SimpleNamespace(  # what configure_optimizers reads from a Trainer
        train_dataloader=SimpleNamespace(batch_size=per_process),
        world_size=world,
        accumulate_grad_batches=1,
        estimated_stepping_batches=total,
        num_training_batches=total,
    )
    config = method.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    peak = 7.5e-4 * world * per_process / 256
    assert optimizer.param_groups[0]["lr"] == pytest.approx(peak)
    for _ in range(total):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(2e-6, rel=1e-9)  # main_dino min_lr


def test_dino_min_lr_and_min_lr_ratio_are_exclusive() -> None:
    with pytest.raises(InputError, match="min_lr: null"):
        _dino(min_lr=1e-6, min_lr_ratio=0.01)
    assert _dino(min_lr=None, min_lr_ratio=0.01)._min_lr_ratio(1.0) == 0.01


def _group_names(method: MaskedImageModeling) -> tuple[set[str], set[str]]:
    names = {id(p): n for n, p in method.named_parameters()}
    decayed, undecayed = method._param_groups(1e-3)[:2]
    assert undecayed["weight_decay"] == 0.0 and "weight_decay" not in decayed
    return {names[id(p)] for p in decayed["params"]}, {names[id(p)] for p in undecayed["params"]}


def test_simmim_swin_skips_decay_on_mask_token_and_relative_position_tables() -> None:
    swin = {"img_size": 32, "window_size": 2, "embed_dim": 16, "depths": (1, 1, 1, 1),
            "num_heads": (1, 1, 1, 1)}  # fmt: skip
    method = MaskedImageModeling(
        "swin_tiny_patch4_window7_224", backbone_kwargs=swin, mask_patch_size=8,
        views=MaskedViewCrop.simmim(size=32),
    )  # fmt: skip
    decayed, undecayed = _group_names(method)
    tables = {n for n, _ in method.named_parameters() if n.endswith("relative_position_bias_table")}
    assert len(tables) == 4 and tables | {"mask_token"} <= undecayed
    # official optimizer.py: every 1-D parameter, bias, skip-list name; nothing else
    official = {
        n for n, p in method.named_parameters()
        if p.ndim == 1 or n.endswith(".bias") or n == "mask_token"
        or "relative_position_bias_table" in n
    }  # fmt: skip
    assert undecayed == official
    assert decayed == {n for n, _ in method.named_parameters()} - official


def test_simmim_vit_skips_decay_on_position_embedding_and_class_token_only() -> None:
    method = MaskedImageModeling(
        "vit_tiny_patch16_224", backbone_kwargs=VIT, mask_patch_size=16,
        views=MaskedViewCrop.simmim(size=32),
    )  # fmt: skip
    decayed, undecayed = _group_names(method)
    # official VisionTransformer.no_weight_decay: {'pos_embed', 'cls_token'}; mask_token decays
    assert {"backbone.pos_embed", "backbone.cls_token"} <= undecayed
    assert "mask_token" in decayed


WORLD, PER_RANK, IN_DIM, DIM = 2, 4, 5, 6


def _joint(seed: int, dim: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(WORLD * PER_RANK, dim, generator=generator, dtype=torch.float64)


def _linear() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(IN_DIM, DIM, dtype=torch.float64)


def _barlow_job(rank: int, world: int) -> dict:
    """On 2 processes: input gradients, loss and DDP-averaged parameter gradients."""
    out = {}
    for official in (False, True):
        a, b = (_joint(seed, DIM).chunk(world)[rank].requires_grad_() for seed in (1, 2))
        loss = barlow_twins_loss(a, b, official_grad_scale=official)
        loss.backward()
        model = DistributedDataParallel(_linear())
        x1, x2 = (_joint(seed, IN_DIM).chunk(world)[rank] for seed in (3, 4))
        z1, z2 = model(torch.cat([x1, x2])).chunk(2)
        barlow_twins_loss(z1, z2, official_grad_scale=official).backward()
        grads = [p.grad for p in model.parameters()]
        out[official] = {"loss": loss.detach(), "a": a.grad, "b": b.grad, "params": grads}
    return out


@pytest.mark.ddp
@pytest.mark.slow
def test_barlow_twins_official_grad_scale_is_the_joint_batch_gradient_over_w() -> None:
    ranks = run_distributed(_barlow_job, WORLD)
    a, b = _joint(1, DIM).requires_grad_(), _joint(2, DIM).requires_grad_()
    joint_loss = barlow_twins_loss(a, b)
    joint_loss.backward()
    model = _linear()
    z1, z2 = model(torch.cat([_joint(3, IN_DIM), _joint(4, IN_DIM)])).chunk(2)
    barlow_twins_loss(z1, z2).backward()
    for rank, result in enumerate(ranks):
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        for official, scale in ((False, WORLD), (True, 1)):  # input grad: W x or 1 x the rows
            torch.testing.assert_close(result[official]["loss"], joint_loss.detach())
            torch.testing.assert_close(result[official]["a"], scale * a.grad[rows])
            torch.testing.assert_close(result[official]["b"], scale * b.grad[rows])
        for got, p in zip(result[False]["params"], model.parameters(), strict=True):
            torch.testing.assert_close(got, p.grad)  # exact joint-batch gradient
        for got, p in zip(result[True]["params"], model.parameters(), strict=True):
            torch.testing.assert_close(got, p.grad / WORLD)  # the released main.py's scale
