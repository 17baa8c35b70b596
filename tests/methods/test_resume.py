"""Resuming from a checkpoint continues exactly: a 2-epoch run stopped after epoch 1 and resumed
from its last checkpoint ends with the weights of the uninterrupted 2-epoch run.

BYOL on a ResNet-18 exercises what a resume must restore: weights, the momentum encoder and its
batch-norm buffers, LARS momentum buffers, the per-step learning-rate schedule, the loop
counters (the momentum schedule is a function of the global step) and the torch RNG behind the
views and the shuffling.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

EPOCHS = 2


class _StopAfterOneEpoch(L.Callback):
    """An interruption: ends the run after its first epoch (its checkpoint is saved)."""

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        trainer.should_stop = True


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pretrain_root, tiny_method, datamodule, cpu_trainer) -> dict:
    """The uninterrupted run and the resumed one, each as (method, trainer)."""

    def fit(root: Path, ckpt_path: Path | None = None, interrupt: bool = False):
        L.seed_everything(0, verbose=False)
        method = tiny_method("byol", warmup_epochs=1, base_lr=2.0)
        callbacks = [ModelCheckpoint(dirpath=root, save_last=True)]
        callbacks += [_StopAfterOneEpoch()] if interrupt else []
        trainer = cpu_trainer(
            max_epochs=EPOCHS, deterministic=True, enable_checkpointing=True, callbacks=callbacks
        )
        trainer.fit(method, datamodule(pretrain_root, batch_size=8), ckpt_path=ckpt_path)
        return method, trainer

    interrupted = tmp_path_factory.mktemp("interrupted")
    fit(interrupted, interrupt=True)
    return {
        "full": fit(tmp_path_factory.mktemp("full")),
        "resumed": fit(tmp_path_factory.mktemp("resumed"), interrupted / "last.ckpt"),
    }


@pytest.mark.slow
def test_resumed_weights_equal_uninterrupted_weights(runs: dict) -> None:
    full, resumed = runs["full"][0].state_dict(), runs["resumed"][0].state_dict()
    assert any(key.startswith("momentum_encoder.") for key in full)
    torch.testing.assert_close(resumed, full)


@pytest.mark.slow
def test_resumed_optimizer_and_schedule_equal_uninterrupted(runs: dict) -> None:
    (_, full), (_, resumed) = runs["full"], runs["resumed"]
    assert resumed.global_step == full.global_step == EPOCHS * 8
    torch.testing.assert_close(
        resumed.optimizers[0].state_dict()["state"], full.optimizers[0].state_dict()["state"]
    )
    assert resumed.lr_scheduler_configs[0].scheduler.get_last_lr() == pytest.approx(
        full.lr_scheduler_configs[0].scheduler.get_last_lr()
    )


@pytest.mark.slow
def test_checkpoint_holds_the_rng_states(runs: dict, tmp_path: Path) -> None:
    trainer = runs["full"][1]
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert torch.equal(checkpoint["rng_states"]["torch"], torch.get_rng_state())
