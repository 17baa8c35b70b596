"""The GPU fast path (ssl4gie.methods.fast_path) changes speed, not numerics: with every switch,
one training step from the same weights and batch gives the same weights as the plain step, on
CPU. (One step: after two, Adam's normalisation g / (|g| + eps) magnifies the rounding
differences of the first for the few gradients near eps.)"""

from __future__ import annotations

import copy
import shutil

import lightning as L
import pytest
import torch
import torch._dynamo
from torch import nn

from ssl4gie.errors import InputError
from ssl4gie.methods import METHODS, SSLMethod
from ssl4gie.methods.fast_path import compile_backbones, optimizer_impl_kwargs
from ssl4gie.transforms.views import MaskedViewCrop, TwoViews

from .conftest import TINY_HEADS


def _method(name: str, backbone: str = "test_resnet", **overrides) -> SSLMethod:
    """A tiny ``name`` on timm's test backbones (ResNet: 96 features; ViT: 6 blocks, 64 wide)."""
    kwargs = {"backbone_kwargs": {"img_size": 32}} if "vit" in backbone else {}
    views = MaskedViewCrop.mae(size=32) if name == "mae" else TwoViews.preset(name, size=32)
    heads = TINY_HEADS.get(name, {"decoder_width": 32, "decoder_depth": 1, "decoder_heads": 2})
    return METHODS[name](backbone, views=views, warmup_epochs=0, **kwargs, **heads, **overrides)


class _Views(L.Callback):
    """Keeps the views of the first training batch."""

    def __init__(self) -> None:
        self.views: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.views = batch["views"]


@pytest.fixture
def fit(pretrain_root, datamodule, cpu_trainer, tmp_path):
    """``fit(method, callbacks=())``: one optimiser step from seed 0 (the same batch and views
    for every call), writing under ``tmp_path``."""

    def run(method: SSLMethod, callbacks=()) -> L.Trainer:
        L.seed_everything(0, verbose=False)
        trainer = cpu_trainer(max_steps=1, callbacks=list(callbacks), default_root_dir=tmp_path)
        trainer.fit(method, datamodule(pretrain_root, batch_size=16))
        return trainer

    return run


def _assert_same_weights(a: nn.Module, b: nn.Module, rtol: float, atol: float) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize(
    ("name", "optimizer", "impls"),
    [
        ("barlow_twins", "lars", ["foreach"]),
        ("mocov3", "adamw", ["foreach", "fused"]),
        ("simclr", "sgd", ["foreach", "fused"]),
    ],
)
def test_optimizer_kernels_take_the_same_step_as_the_loop(name, optimizer, impls, fit) -> None:
    torch.manual_seed(0)
    reference = _method(name, optimizer=optimizer, optimizer_impl="loop")
    start = copy.deepcopy(reference.state_dict())
    fit(reference)
    assert reference.trainer.optimizers[0].defaults["foreach"] is False
    assert any((reference.state_dict()[key] != start[key]).any() for key in start)
    for impl in impls:
        method = _method(name, optimizer=optimizer, optimizer_impl=impl)
        method.load_state_dict(start)
        fit(method)
        assert method.trainer.optimizers[0].defaults[impl] is True
        _assert_same_weights(method, reference, rtol=1e-5, atol=1e-7)


def test_channels_last_takes_the_same_step(fit) -> None:
    torch.manual_seed(0)
    reference = _method("barlow_twins")
    method = _method("barlow_twins", channels_last=True)
    method.load_state_dict(reference.state_dict())
    seen = _Views()
    fit(reference)
    fit(method, [seen])
    channels_last = torch.channels_last
    conv = next(m for m in method.backbone.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=channels_last)
    assert not conv.weight.is_contiguous()
    assert all(view.is_contiguous(memory_format=channels_last) for view in seen.views)
    _assert_same_weights(method, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "backbone"), [("byol", "test_resnet"), ("mocov3", "test_vit")])
def test_compile_targets_the_backbone_and_its_momentum_copy(name, backbone, monkeypatch) -> None:
    """CNN: the online backbone and the momentum copy whole; ViT: every block of both."""
    compiled: list[nn.Module] = []
    monkeypatch.setattr(nn.Module, "compile", lambda module, *a, **k: compiled.append(module))
    method = _method(name, backbone)
    compile_backbones(method, method.backbone)
    copy_ = method.momentum_encoder.encoder[0]
    if backbone == "test_vit":
        assert compiled == [*method.backbone.blocks, *copy_.blocks]
    else:
        assert compiled == [method.backbone, copy_]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.parametrize(
    ("name", "backbone"), [("barlow_twins", "test_resnet"), ("mae", "test_vit")]
)
def test_compile_takes_the_same_step_and_keeps_the_keys(name, backbone, fit) -> None:
    """Inductor on CPU, fp32: the same step as eager. MAE's encoder calls the ViT's blocks, not
    the backbone's forward: the blocks are what gets compiled."""
    torch.manual_seed(0)
    reference = _method(name, backbone)
    method = _method(name, backbone, compile=True)
    method.load_state_dict(reference.state_dict())
    fit(reference)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    fit(method)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert list(method.state_dict()) == list(reference.state_dict())
    _assert_same_weights(method, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["barlow_twins", "mocov3", "byol", "simclr"])
def test_bf16_autocast_loss_and_gradients_are_close_to_fp32(name) -> None:
    """What ``precision="bf16-mixed"`` runs: the loss within 2 % of fp32's (measured: <= 0.3 %)
    and the gradient pointing the same way (cosine > 0.95 overall, > 0.85 per tensor; measured:
    >= 0.97 and >= 0.93); bf16 keeps 8 bits of mantissa (0.4 % per rounding). A loss or head
    that breaks in bf16 gives cosines near 0."""
    torch.manual_seed(0)
    method = _method(name)
    views = method.views(torch.randint(0, 256, (32, 3, 48, 48), dtype=torch.uint8))

    def loss_and_grads(bf16: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        method.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = method.ssl_loss(views)
        loss.float().backward()
        return loss.float().detach(), [p.grad.flatten() for p in method.backbone.parameters()]

    loss32, grads32 = loss_and_grads(bf16=False)
    loss16, grads16 = loss_and_grads(bf16=True)
    assert torch.isclose(loss16, loss32, rtol=0.02), (loss16, loss32)
    cosine = nn.functional.cosine_similarity
    assert cosine(torch.cat(grads16), torch.cat(grads32), dim=0) > 0.95
    nonzero = [(a, b) for a, b in zip(grads16, grads32, strict=True) if b.abs().max() > 0]
    assert len(nonzero) > len(grads32) // 2  # (zero: the residual branches' zero-init BN)
    assert min(cosine(a, b, dim=0) for a, b in nonzero) > 0.85


def test_numbers_logged_every_step_are_cpu_tensors(fit, monkeypatch) -> None:
    """``self.log`` copies a Python number to the module's device, which on a GPU waits for its
    queue (a host sync per step); the learning rate and momentum go as CPU tensors."""
    logged: dict[str, object] = {}
    log = SSLMethod.log

    def spy(self, name, value, *args, **kwargs):
        logged[name] = value
        return log(self, name, value, *args, **kwargs)

    monkeypatch.setattr(SSLMethod, "log", spy)
    fit(_method("byol"))
    for name in ("lr", "momentum"):
        assert isinstance(logged[name], torch.Tensor) and logged[name].device.type == "cpu"


def test_auto_takes_fused_adamw_and_multi_tensor_sgd_and_lars() -> None:
    """Fused AdamW where torch has the kernel (CPU since torch 2.4: 4.7x the loop on 2 cores);
    foreach SGD and LARS on CUDA (on CPU the loop was as fast). Never the fused SGD: it fails
    once a parameter gets its first gradient after the others (DINO's unfrozen last layer)."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert optimizer_impl_kwargs("auto", "adamw", cpu) == {"fused": True}
    assert optimizer_impl_kwargs("auto", "adamw", cuda) == {"fused": True}
    for optimizer in ("sgd", "lars"):
        assert optimizer_impl_kwargs("auto", optimizer, cpu) == {}
        assert optimizer_impl_kwargs("auto", optimizer, cuda) == {"foreach": True}


def test_bad_optimizer_impl_fails_at_construction() -> None:
    with pytest.raises(InputError, match="no fused kernel"):
        _method("barlow_twins", optimizer_impl="fused")  # LARS for CNNs
    with pytest.raises(InputError, match=r"unknown optimizer_impl 'fusd'.*fused"):
        _method("simclr", optimizer_impl="fusd")
