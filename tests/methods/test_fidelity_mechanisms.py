"""Mechanisms that must match the official code (issue: recipe and protocol fidelity):

* SwAV's queue stays per process under DDP (Lightning's ``broadcast_buffers=True`` must not
  overwrite it with rank 0's) and every process's queue is checkpointed;
* global batch norm keeps timm's fused ``BatchNormAct2d`` activation (CUDA conversion and the
  CPU/gloo ``GlobalBatchNorm`` path);
* MoCo v3 ViT (``vits.py``) and MAE (``models_mae.py``): fixed 2D sin-cos tables in each
  official orientation, official initialisation, loaded weights kept;
* LARS adapts the weights with weight decay 0;
* DINO's last layer and SwAV's prototype scores in float32 under bf16 autocast.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import pytest
import timm
import torch
from ddp import run_distributed
from timm.layers import BatchNormAct2d, SyncBatchNormAct
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ssl4gie.errors import InputError
from ssl4gie.methods import MAE, MoCoV3, SwAV
from ssl4gie.methods.dino import DINOHead
from ssl4gie.nn import distributed_batchnorm, global_batchnorm
from ssl4gie.transforms.views import MaskedViewCrop, MultiCrop, TwoViews

WORLD_SIZE, PER_RANK, QUEUE, DIM = 2, 4, 8, 16
CPU = torch.device("cpu")


# --- SwAV queue under DDP, and global batch norm with fused activations (one 2-process job) ---


def _swav(**overrides: Any) -> SwAV:
    torch.manual_seed(0)
    crops = MultiCrop(global_size=32, local_size=16, num_local=2)
    head = {"hidden_dim": 32, "dim": DIM, "num_prototypes": 24, "epoch_queue_starts": 0}
    return SwAV("resnet18", views=crops, **head, **overrides)


class _TrainingStep(nn.Module):
    """What Lightning hands to DDP: a module (holding the method) whose forward is the step."""

    def __init__(self, method: SwAV) -> None:
        super().__init__()
        self.method = method

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        loss, stats = self.method.ssl_loss(views)
        return loss, stats["embedding"]


def _bn_act_model() -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3), BatchNormAct2d(8, act_layer=nn.SiLU), nn.Conv2d(8, 4, 1)]
    return nn.Sequential(*layers, BatchNormAct2d(4, act_layer=nn.ReLU)).double()


def _joint_images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(WORLD_SIZE * PER_RANK, 3, 8, 8, generator=generator, dtype=torch.float64)


def _ddp_job(rank: int, world_size: int) -> dict[str, Any]:
    method = distributed_batchnorm(_swav(), CPU, world_size)
    ddp = DistributedDataParallel(_TrainingStep(method))  # broadcast_buffers=True, as Lightning
    generator = torch.Generator().manual_seed(rank + 1)  # a different shard and queue per rank
    method.queue = torch.randn(2, QUEUE, DIM, generator=generator)  # as on_train_start, wrapped
    initial = method.queue.clone()
    views = [torch.randn(PER_RANK, 3, s, s, generator=generator) for s in (32, 32, 16, 16)]
    loss, embedding = ddp(views)
    loss.backward()
    checkpoint: dict[str, Any] = {}
    method.on_save_checkpoint(checkpoint)
    restored = _swav()
    restored.on_load_checkpoint(checkpoint)
    model = global_batchnorm(_bn_act_model()).train()
    shard = _joint_images().chunk(world_size)[rank]
    return {
        "initial": initial,
        "queue": method.queue,
        "embedding": embedding.detach(),
        "checkpoint": checkpoint.get("swav_queue"),
        "restored": restored.queue,
        "bn_out": model(shard).detach(),
        "bn_running_mean": model[1].running_mean,
    }


@pytest.fixture(scope="module")
def ranks() -> list[dict[str, Any]]:
    return run_distributed(_ddp_job, WORLD_SIZE)


@pytest.mark.ddp
@pytest.mark.slow
def test_swav_queue_stays_per_rank_after_a_ddp_step(ranks) -> None:
    for r in ranks:
        # newest first: this rank's global-crop embeddings, then its own older entries
        torch.testing.assert_close(r["queue"][0, :PER_RANK], r["embedding"])
        torch.testing.assert_close(r["queue"][:, PER_RANK:], r["initial"][:, :-PER_RANK])
    assert not torch.allclose(ranks[0]["queue"], ranks[1]["queue"])


@pytest.mark.ddp
@pytest.mark.slow
def test_swav_checkpoint_holds_every_rank_queue_and_restores_its_own(ranks) -> None:
    for index, r in enumerate(ranks):
        assert r["checkpoint"] is not None and r["checkpoint"].shape == (WORLD_SIZE, 2, QUEUE, DIM)
        torch.testing.assert_close(r["checkpoint"][index], r["queue"])
        torch.testing.assert_close(r["restored"], r["queue"])


def test_swav_single_process_checkpoint_restores_the_queue() -> None:
    method = _swav()
    method.queue = torch.randn(2, QUEUE, DIM)
    checkpoint: dict[str, Any] = {}
    method.on_save_checkpoint(checkpoint)
    assert checkpoint["swav_queue"].shape == (1, 2, QUEUE, DIM)
    restored = _swav()
    restored.on_load_checkpoint(checkpoint)
    torch.testing.assert_close(restored.queue, method.queue)
    assert "queue" not in restored.state_dict()  # not a buffer: DDP cannot broadcast it


@pytest.mark.ddp
@pytest.mark.slow
def test_gloo_global_batchnorm_keeps_the_fused_activation(ranks) -> None:
    joint_model = _bn_act_model().train()
    joint = joint_model(_joint_images()).detach()
    for index, r in enumerate(ranks):
        torch.testing.assert_close(r["bn_out"], joint.chunk(WORLD_SIZE)[index])
        torch.testing.assert_close(r["bn_running_mean"], joint_model[1].running_mean)


def test_cuda_conversion_keeps_efficientnet_activations() -> None:
    model = timm.create_model("test_efficientnet", num_classes=0).eval()  # a tiny EfficientNet
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        converted = distributed_batchnorm(model, torch.device("cuda"), 2)  # no GPU needed
        out = converted(x)
    assert any(isinstance(m, SyncBatchNormAct) for m in converted.modules())
    assert not any(type(m) is nn.SyncBatchNorm for m in converted.modules())
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-9)


def test_global_batchnorm_rejects_unknown_batchnorm_subclasses() -> None:
    class OddBatchNorm(nn.BatchNorm2d):
        pass

    with pytest.raises(InputError, match="OddBatchNorm"):
        global_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), OddBatchNorm(4)))


# --- MoCo v3 and MAE ViTs ------------------------------------------------------------------

VIT = {"img_size": 64, "depth": 1}  # vit_tiny: D 192, patch 16, a 4 x 4 grid
D, PATCH, GRID = 192, 16, 4


def _sincos_reference(dim: int, grid: int, columns_first: bool) -> torch.Tensor:
    """The 2D sin-cos table written out: per patch (row-major), the first coordinate's
    sin(pos * w_i), cos(pos * w_i), then the second's, w_i = 10000^(-i / (dim / 4))."""
    quarter = dim // 4
    rows = []
    for r in range(grid):
        for c in range(grid):
            first, second = (c, r) if columns_first else (r, c)
            row = []
            for pos in (first, second):
                row += [math.sin(pos / 10000 ** (i / quarter)) for i in range(quarter)]
                row += [math.cos(pos / 10000 ** (i / quarter)) for i in range(quarter)]
            rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


def test_sincos_reference_matches_a_hand_computed_official_row() -> None:
    # dim 8, patch (row 0, column 1): MAE util/pos_embed.py puts the column first,
    # MoCo v3 vits.py (meshgrid(w, h) flattened width-major) the row
    mae = _sincos_reference(8, 2, columns_first=True)[1]
    mocov3 = _sincos_reference(8, 2, columns_first=False)[1]
    torch.testing.assert_close(mae, torch.tensor([math.sin(1), math.sin(0.01), math.cos(1),
                                                  math.cos(0.01), 0, 0, 1, 1]))  # fmt: skip
    torch.testing.assert_close(mocov3, torch.tensor([0, 0, 1, 1, math.sin(1), math.sin(0.01),
                                                     math.cos(1), math.cos(0.01)]))  # fmt: skip


def _mocov3(**overrides: Any) -> MoCoV3:
    torch.manual_seed(0)
    kwargs = {"backbone_kwargs": VIT, "views": TwoViews.mocov3(size=64), "mlp_dim": 32, "dim": 16}
    return MoCoV3("vit_tiny_patch16_224", **{**kwargs, **overrides})


def _mae(**overrides: Any) -> MAE:
    torch.manual_seed(0)
    decoder = {"decoder_width": 32, "decoder_depth": 1, "decoder_heads": 2}
    kwargs = {"backbone_kwargs": VIT, "views": MaskedViewCrop.mae(size=64), **decoder}
    return MAE("vit_tiny_patch16_224", **{**kwargs, **overrides})


def _uniform_bound_ok(weight: torch.Tensor, bound: float) -> bool:
    """Uniform(-bound, bound): max |w| within the bound and close to it, std bound / sqrt(3)."""
    top, std = float(weight.detach().abs().max()), float(weight.detach().std())
    return bound * 0.97 < top <= bound and abs(std - bound / math.sqrt(3)) < 0.03 * bound


def test_mocov3_vit_position_embedding_is_fixed_sincos_and_not_trained() -> None:
    method = _mocov3()
    pos = method.backbone.pos_embed
    assert not pos.requires_grad
    torch.testing.assert_close(pos[0, 0], torch.zeros(D))  # class token
    torch.testing.assert_close(pos[0, 1:], _sincos_reference(D, GRID, columns_first=False))
    before = pos.detach().clone()
    optimizer = torch.optim.AdamW(method._param_groups(1e-2), lr=1e-2, weight_decay=0.1)
    loss, _ = method.ssl_loss([torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)])
    loss.backward()
    optimizer.step()
    torch.testing.assert_close(method.backbone.pos_embed.detach(), before)


def test_mocov3_vit_official_init_and_momentum_copy_equal_at_start() -> None:
    method = _mocov3(freeze_patch_embed=True)
    vit = method.backbone
    # patch projection: uniform +-sqrt(6 / (3 p^2 + D)), bias 0 (vits.py)
    assert _uniform_bound_ok(vit.patch_embed.proj.weight, math.sqrt(6 / (3 * PATCH**2 + D)))
    assert not vit.patch_embed.proj.bias.any()
    # qkv treated as three D x D matrices: sqrt(6 / (D + D)); other Linear plain xavier
    assert _uniform_bound_ok(vit.blocks[0].attn.qkv.weight, math.sqrt(6 / (D + D)))
    assert _uniform_bound_ok(vit.blocks[0].mlp.fc1.weight, math.sqrt(6 / (4 * D + D)))
    assert not vit.blocks[0].attn.qkv.bias.any() and not vit.blocks[0].mlp.fc2.bias.any()
    assert float(vit.cls_token.std()) < 1e-5
    torch.testing.assert_close(method.momentum_encoder.encoder[0].state_dict(), vit.state_dict())


def test_mae_official_init_and_sincos_orientation() -> None:
    vit = _mae().backbone
    assert not vit.pos_embed.requires_grad
    torch.testing.assert_close(vit.pos_embed[0, 1:], _sincos_reference(D, GRID, columns_first=True))
    # models_mae.py initialize_weights: patch proj xavier on w.view(D, -1); every Linear xavier
    # (qkv as one 3D x D matrix), bias 0; LayerNorm 1/0; cls N(0, 0.02)
    assert _uniform_bound_ok(vit.patch_embed.proj.weight, math.sqrt(6 / (3 * PATCH**2 + D)))
    assert _uniform_bound_ok(vit.blocks[0].attn.qkv.weight, math.sqrt(6 / (3 * D + D)))
    assert _uniform_bound_ok(vit.blocks[0].mlp.fc2.weight, math.sqrt(6 / (4 * D + D)))
    assert not vit.blocks[0].attn.proj.bias.any()
    assert bool((vit.norm.weight == 1).all()) and not vit.norm.bias.any()
    assert 0.015 < float(vit.cls_token.std()) < 0.025


def test_loaded_vit_keeps_its_weights_and_position_table(tmp_path) -> None:
    torch.manual_seed(1)
    source = timm.create_model("vit_tiny_patch16_224", num_classes=0, **VIT)
    path = tmp_path / "vit.pth"
    torch.save(source.state_dict(), path)
    loaded = {**VIT, "pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    for method in (_mae(backbone_kwargs=loaded), _mocov3(backbone_kwargs=loaded)):
        torch.testing.assert_close(method.backbone.state_dict(), source.state_dict())
        assert not method.backbone.pos_embed.requires_grad


# --- LARS with weight decay 0 ----------------------------------------------------------------


class _FirstStep(L.Callback):
    """A weight, its gradient and the learning rate before the first optimiser step; the weight
    after it."""

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        weight = module.backbone.conv1.weight
        self.before, self.grad = weight.detach().clone(), weight.grad.detach().clone()
        self.lr = optimizer.param_groups[0]["lr"]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.after = module.backbone.conv1.weight.detach().clone()


def test_lars_adapts_weights_with_zero_weight_decay(
    tiny_method, datamodule, cpu_trainer, pretrain_root
) -> None:
    method = tiny_method("simclr", weight_decay=0.0)
    assert method.recipe.optimizer == "lars"
    step = _FirstStep()
    cpu_trainer(max_steps=1, callbacks=[step]).fit(method, datamodule(pretrain_root, batch_size=4))
    trust = 0.001 * step.before.norm() / (step.grad.norm() + 1e-8)  # timm Lars, weight decay 0
    torch.testing.assert_close(step.after, step.before - step.lr * trust * step.grad)


# --- float32 logits under bf16 autocast --------------------------------------------------------


def test_dino_last_layer_logits_are_float32_under_bf16_autocast() -> None:
    head = DINOHead(16, out_dim=64, hidden_dim=32, bottleneck_dim=16)
    bottleneck = head.project(torch.randn(8, 16)).detach()
    expected = head.last_layer(bottleneck)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head.last_layer(bottleneck)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-7)


def test_swav_prototype_scores_are_float32_under_bf16_autocast(monkeypatch) -> None:
    import ssl4gie.methods.swav as swav_module

    seen: list[torch.dtype] = []
    original = swav_module.swav_loss

    def spy(crop_scores, *args, **kwargs):
        seen.extend(s.dtype for s in crop_scores)
        return original(crop_scores, *args, **kwargs)

    monkeypatch.setattr(swav_module, "swav_loss", spy)
    method = _swav()
    views = [torch.randn(4, 3, s, s) for s in (32, 32, 16, 16)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        method.ssl_loss(views)
    assert seen and all(dtype == torch.float32 for dtype in seen)
