"""Trainer.fit of DINO, MAE, SimMIM and SwAV on tiny backbones and synthetic data; their
schedules, freezing, queue, reconstruction grid and bad input."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import pytest
import torch

from ssl4gie.data.datamodules import Source, open_dataset
from ssl4gie.data.synthetic import synthesize
from ssl4gie.errors import InputError
from ssl4gie.losses import mae_loss, patchify
from ssl4gie.methods import DINO, MAE, MaskedImageModeling, SSLMethod, SwAV
from ssl4gie.methods.dino import teacher_temperature
from ssl4gie.transforms.views import MaskedViewCrop, MultiCrop

FIT_EPOCHS, FIT_BATCH = 2, 8  # 64 images: 16 optimiser steps
FIT_LR = 0.1  # AdamW, per 256 images
MAE_EPOCHS = 4
VIT = {
    "backbone": "vit_tiny_patch16_224",
    "backbone_kwargs": {"img_size": 32, "patch_size": 8, "depth": 3},
}
SWIN_KWARGS = {"img_size": 32, "window_size": 2, "embed_dim": 24, "depths": (2, 2, 1, 1)}
SWIN = {
    "backbone": "swin_tiny_patch4_window7_224",
    "backbone_kwargs": {**SWIN_KWARGS, "num_heads": (1, 2, 2, 2)},
}
RESNET = {"backbone": "resnet18"}
CROPS = {"global_size": 32, "local_size": 16, "num_local": 2, "jitter_p": 0.0, "grayscale_p": 0.0}
DINO_HEAD = {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 32}
MAE_DECODER = {"decoder_width": 64, "decoder_depth": 2, "decoder_heads": 4}


def _dino(backbone: dict, **overrides: Any) -> DINO:
    return DINO(**backbone, views=MultiCrop.dino(**CROPS), **DINO_HEAD, **_fit_kwargs(overrides))


def _swav(backbone: dict, **overrides: Any) -> SwAV:
    head = {"hidden_dim": 64, "dim": 32, "num_prototypes": 32}
    return SwAV(**backbone, views=MultiCrop.swav(**CROPS), **head, **_fit_kwargs(overrides))


def _mae(**overrides: Any) -> MAE:
    return MAE(**VIT, views=MaskedViewCrop.mae(size=32), **MAE_DECODER, **_fit_kwargs(overrides))


def _simmim(backbone: dict, **overrides: Any) -> MaskedImageModeling:
    views = MaskedViewCrop.simmim(size=32)
    return MaskedImageModeling(
        **backbone, views=views, **_fit_kwargs({"mask_patch_size": 8, **overrides})
    )


def _fit_kwargs(overrides: dict[str, Any]) -> dict[str, Any]:
    return {"optimizer": "adamw", "base_lr": FIT_LR, "warmup_epochs": 0, **overrides}


DINO_FIT = {"base_momentum": 0.9}  # a teacher that follows the student within 16 steps
CASES = {
    "dino-vit_tiny": lambda: _dino(VIT, **DINO_FIT),
    "dino-resnet18": lambda: _dino(RESNET, **DINO_FIT),
    "swav-resnet18": lambda: _swav(RESNET, queue_length=32, epoch_queue_starts=2),
    "mae-vit_tiny": _mae,
    "simmim-swin": lambda: _simmim(SWIN),
    "simmim-vit_tiny": lambda: _simmim(VIT),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_fit_loss_is_finite_and_decreases(
    case, tmp_path, pretrain_root, datamodule, cpu_trainer, loss_recorder
) -> None:
    """DINO's loss is not monotone at the start: the centre starts at 0 and catches up with the
    teacher's mean (momentum 0.9), so the student first matches an uncentred teacher, then the
    centred one. For DINO the check is that it falls below half its first value and ends below
    log K, the loss of a student predicting uniformly."""
    L.seed_everything(0, verbose=False)
    method = CASES[case]()
    trainer = cpu_trainer(
        max_epochs=FIT_EPOCHS, callbacks=[loss_recorder], default_root_dir=tmp_path
    )
    trainer.fit(method, datamodule(pretrain_root, batch_size=FIT_BATCH))
    losses = torch.tensor(loss_recorder.losses)
    assert len(losses) == 64 // FIT_BATCH * FIT_EPOCHS and torch.isfinite(losses).all()
    if case.startswith("dino"):
        assert losses.min() < 0.5 * losses[0] and losses[-4:].mean() < math.log(
            DINO_HEAD["out_dim"]
        )
    else:
        assert losses[-4:].mean() < losses[:4].mean()


class _EpochSnapshots(L.Callback):
    """A copy of the chosen tensor at the start and at every training epoch end."""

    def __init__(self, get) -> None:
        self.get, self.snapshots = get, []

    def on_train_start(self, trainer, module) -> None:
        self.snapshots.append(self.get(module).detach().clone())

    def on_train_epoch_end(self, trainer, module) -> None:
        self.snapshots.append(self.get(module).detach().clone())


def test_dino_freezes_the_last_layer_one_epoch_and_schedules_decay_and_centre(
    pretrain_root, datamodule, cpu_trainer
) -> None:
    method = _dino(VIT, warmup_teacher_temp=0.02, warmup_teacher_temp_epochs=2)
    snapshots = _EpochSnapshots(lambda m: m.head.last_layer.direction)
    trainer = cpu_trainer(max_epochs=2, callbacks=[snapshots])
    trainer.fit(method, datamodule(pretrain_root))
    initial, after_epoch_0, after_epoch_1 = snapshots.snapshots
    assert torch.equal(initial, after_epoch_0) and not torch.equal(after_epoch_0, after_epoch_1)
    decay = trainer.optimizers[0].param_groups[0]["weight_decay"]
    # dino utils.cosine_scheduler(0.04, 0.4) at step 7 of 8
    assert decay == pytest.approx(0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(7 * math.pi / 8)))
    assert float(trainer.callback_metrics["train/teacher_temperature"]) == pytest.approx(0.04)
    assert teacher_temperature(0, 0.02, 0.04, 2) == 0.02
    assert "center" in method.state_dict() and method.center.abs().sum() > 0


def test_dino_clips_each_parameter_gradient_separately() -> None:
    method = _dino(RESNET, clip_grad=3.0)
    method.clip_gradients = lambda *args, **kwargs: None  # the trainer's clipping: not set
    params = list(method.parameters())
    for index, param in enumerate(params):
        param.grad = torch.full_like(param, 10.0 if index % 2 else 1e-4)
    method.configure_gradient_clipping(None)
    norms = torch.stack([p.grad.norm() for p in params])
    assert (norms[1::2] <= 3.0 + 1e-4).all() and (norms[1::2] > 2.99).all()
    torch.testing.assert_close(params[0].grad, torch.full_like(params[0], 1e-4))


def test_swav_freezes_prototypes_then_fills_and_uses_the_queue(
    pretrain_root, datamodule, cpu_trainer
) -> None:
    method = _swav(RESNET, queue_length=40, epoch_queue_starts=1)
    snapshots = _EpochSnapshots(lambda m: torch.nn.functional.normalize(m.prototypes.weight, dim=1))
    trainer = cpu_trainer(max_epochs=2, callbacks=[snapshots])
    trainer.fit(method, datamodule(pretrain_root))
    initial, after_epoch_0, after_epoch_1 = snapshots.snapshots
    torch.testing.assert_close(after_epoch_0, initial)
    assert not torch.allclose(after_epoch_1, after_epoch_0)
    assert method.queue.shape == (2, 32, 32)  # 40 rounded down to whole batches of 16
    assert method.queue.abs().sum(dim=-1).gt(0).all() and method._queue_scores() is not None


def _held_out_images(tmp_path, method: SSLMethod) -> torch.Tensor:
    root = synthesize(
        "hyperkvasir-unlabeled", tmp_path / "held-out", n=16, size=64, seed=1, progress=False
    )
    dataset = open_dataset(Source("hyperkvasir-unlabeled", str(root)), 64)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    return method._probe_images(images)


@pytest.mark.slow
def test_mae_beats_the_patch_mean_on_held_out_images_and_saves_grids(
    tmp_path, pretrain_root, datamodule, cpu_trainer
) -> None:
    L.seed_everything(0, verbose=False)
    method = _mae()
    trainer = cpu_trainer(max_epochs=MAE_EPOCHS, default_root_dir=tmp_path)
    trainer.fit(method, datamodule(pretrain_root, batch_size=FIT_BATCH))
    images = _held_out_images(tmp_path, method)
    noise = torch.rand(len(images), 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss, _, _, mask = method._reconstruct(images, noise)
    # With normalised pixel targets, predicting each patch's own mean is predicting 0.
    target = patchify(images, 8)
    patch_mean_loss = mae_loss(torch.zeros_like(target), target, mask)
    assert loss < 0.97 * patch_mean_loss
    grids = sorted((tmp_path / "reconstructions").glob("epoch_*.png"))
    assert [g.name for g in grids] == [f"epoch_{e:03d}.png" for e in range(MAE_EPOCHS)]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _mae(mask_ratio=1.0), r"mask_ratio must be in \(0, 1\)"),
        (lambda: _mae(mask_ratio=0.0), r"mask_ratio must be in \(0, 1\)"),
        (lambda: _simmim(SWIN, mask_ratio=1.5), r"mask_ratio must be in \(0, 1\)"),
        (
            lambda: MAE(**VIT, views=MaskedViewCrop.mae(size=36)),
            "not divisible by the patch size 8",
        ),
        (lambda: DINO(**VIT, views=MultiCrop.dino(global_size=32, local_size=12)), "not divisible"),
        (lambda: MultiCrop.dino(global_size=16, local_size=32), "larger than global_size"),
        (lambda: MAE(backbone="resnet18"), "needs a timm VisionTransformer"),
        (lambda: MaskedImageModeling(backbone="resnet18"), "needs a timm Swin or ViT"),
        (lambda: _simmim(VIT, mask_patch_size=12), "mask_patch_size 12 must be a multiple"),
        (
            lambda: MaskedImageModeling(
                backbone="swin_tiny_patch4_window7_224",
                backbone_kwargs={**SWIN["backbone_kwargs"], "img_size": 48, "window_size": 4},
                views=MaskedViewCrop.simmim(size=48),
                mask_patch_size=8,
            ),
            "window",
        ),
    ],
)
def test_bad_input_fails_before_training_in_one_line(build, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        build()
    assert "\n" not in str(info.value)
