"""Trainer.fit of every method on synthetic data; the online probe, the collapse monitor and
bad input."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from ssl4gie.errors import InputError
from ssl4gie.methods import NonFiniteLossError, create_method
from ssl4gie.transforms.views import TwoViews

FIT_EPOCHS = 6  # 64 images, batch 16: 24 optimiser steps
FIT_LR = 0.1  # AdamW, per 256 images


def _mild_views() -> TwoViews:
    """Crops and flips only: with the full recipes, 24 steps are too few for the contrastive
    losses to leave chance level reliably on a ResNet-18 at 32 px."""
    no_colour = {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": (0.0, 0.0)}
    return TwoViews(size=32, crop_scale=(0.3, 1.0), solarize_p=(0.0, 0.0), **no_colour)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet18", "vit_tiny_patch16_224"])
# two-view methods; SSL methods II: test_methods2_fit.py
@pytest.mark.parametrize("name", ["mocov3", "barlow_twins", "byol", "simclr"])
def test_fit_loss_is_finite_and_decreases(
    name, backbone, pretrain_root, tiny_method, datamodule, cpu_trainer, loss_recorder
) -> None:
    L.seed_everything(0, verbose=False)
    method = tiny_method(name, backbone, views=_mild_views(), optimizer="adamw", base_lr=FIT_LR)
    trainer = cpu_trainer(max_epochs=FIT_EPOCHS, callbacks=[loss_recorder])
    trainer.fit(method, datamodule(pretrain_root))
    losses = torch.tensor(loss_recorder.losses)
    assert len(losses) == 4 * FIT_EPOCHS and torch.isfinite(losses).all()
    assert losses[-6:].mean() < losses[:6].mean()


def test_fit_logs_probe_collapse_lr_and_momentum(
    pretrain_root, probe_root, tiny_method, datamodule, cpu_trainer
) -> None:
    method = tiny_method("mocov3", check_every_n_batches=1)
    trainer = cpu_trainer(max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(method, datamodule(pretrain_root, probe=probe_root))
    metrics = trainer.callback_metrics
    for key in ("probe/knn_accuracy", "probe/linear_accuracy"):
        assert 0.0 <= float(metrics[key]) <= 1.0
    assert float(metrics["collapse/normalised_std"]) > 0.1
    assert float(metrics["collapse/effective_rank"]) > 1.0
    assert float(metrics["momentum"]) > 0.99
    assert float(metrics["lr"]) > 0.0


class _ConstantBackbone(nn.Module):
    """Maps every image to the same features: a completely collapsed encoder."""

    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.ones(x.shape[0], self.num_features, device=x.device)


def test_collapse_monitor_warns_on_a_collapsed_encoder(
    pretrain_root, tiny_method, datamodule, cpu_trainer
) -> None:
    method = tiny_method("simclr", check_every_n_batches=1)
    method.backbone = _ConstantBackbone()
    method.projector = nn.Linear(8, 8)  # batch norm would amplify rounding noise of a constant
    with pytest.warns(UserWarning, match="embeddings look collapsed"):
        cpu_trainer(max_steps=1).fit(method, datamodule(pretrain_root))


def test_nan_loss_stops_training_naming_the_step(
    pretrain_root, tiny_method, datamodule, cpu_trainer
) -> None:
    method = tiny_method("barlow_twins", backbone="vit_tiny_patch16_224", check_every_n_batches=1)
    original = method.ssl_loss

    def nan_from_step_2(views):
        loss, stats = original(views)
        return (loss * float("nan") if method.global_step >= 2 else loss), stats

    method.ssl_loss = nan_from_step_2
    with pytest.raises(NonFiniteLossError, match="at step 2; likely causes: a learning rate"):
        cpu_trainer(max_epochs=1).fit(method, datamodule(pretrain_root))


def test_batch_size_one_fails_before_training(
    pretrain_root, tiny_method, datamodule, cpu_trainer, loss_recorder
) -> None:
    trainer = cpu_trainer(max_epochs=1, callbacks=[loss_recorder])
    with pytest.raises(InputError, match="at least 2 images per process"):
        trainer.fit(tiny_method("byol"), datamodule(pretrain_root, batch_size=1))
    assert loss_recorder.losses == []


def test_unknown_backbone_lists_close_matches() -> None:
    with pytest.raises(InputError, match=r"unknown backbone 'resnet51'.*did you mean"):
        create_method("mocov3", backbone="resnet51")


def test_unknown_method_lists_close_matches() -> None:
    with pytest.raises(InputError, match=r"unknown method 'mocov4'.*did you mean 'mocov3'"):
        create_method("mocov4")


def test_freeze_patch_embed_needs_a_vit(tiny_method) -> None:
    with pytest.raises(InputError, match="freeze_patch_embed needs a ViT"):
        tiny_method("mocov3", freeze_patch_embed=True)
    vit = tiny_method("mocov3", "vit_tiny_patch16_224", freeze_patch_embed=True)
    assert not any(p.requires_grad for p in vit.backbone.patch_embed.parameters())


@pytest.mark.parametrize(
    ("backbone", "kind"), [("resnet18", "cnn"), ("vit_tiny_patch16_224", "vit")]
)
def test_recipe_defaults_follow_the_backbone(backbone: str, kind: str, tiny_method) -> None:
    method = tiny_method("mocov3", backbone, temperature=None, warmup_epochs=None)
    official = {"cnn": ("lars", 0.6, 1e-6, 10, 1.0), "vit": ("adamw", 1.5e-4, 0.1, 40, 0.2)}
    recipe = method.recipe
    got = (recipe.optimizer, recipe.base_lr, recipe.weight_decay, recipe.warmup_epochs)
    assert (method.kind, (*got, method.temperature)) == (kind, official[kind])
