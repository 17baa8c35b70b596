"""Resume for the stateful methods of SSL methods II: DINO (centre buffer, teacher, frozen last
layer by epoch) and SwAV (prototypes frozen for an epoch, a queue filled from the first epoch):
1 epoch + resume + 1 epoch ends in the state of an uninterrupted 2-epoch run."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from .test_methods2_fit import RESNET, _dino, _swav
from .test_resume import _StopAfterOneEpoch

BUILD = {
    "dino": lambda: _dino(RESNET, base_momentum=0.9),
    "swav": lambda: _swav(RESNET, queue_length=16, epoch_queue_starts=0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILD))
def test_resumed_state_equals_uninterrupted_state(
    name, tmp_path, pretrain_root, datamodule, cpu_trainer
) -> None:
    def fit(folder, ckpt_path=None, interrupt=False):
        L.seed_everything(0, verbose=False)
        method = BUILD[name]()
        callbacks = [ModelCheckpoint(dirpath=folder, save_last=True)]
        callbacks += [_StopAfterOneEpoch()] if interrupt else []
        trainer = cpu_trainer(
            max_epochs=2, deterministic=True, enable_checkpointing=True, callbacks=callbacks
        )
        trainer.fit(method, datamodule(pretrain_root, batch_size=8), ckpt_path=ckpt_path)
        return method

    fit(tmp_path / "interrupted", interrupt=True)
    resumed = fit(tmp_path / "resumed", ckpt_path=tmp_path / "interrupted" / "last.ckpt")
    full = fit(tmp_path / "full")
    stateful = {"dino": "center", "swav": "queue"}[name]  # SwAV's: per process, not a buffer
    assert getattr(full, stateful).abs().sum() > 0
    torch.testing.assert_close(getattr(resumed, stateful), getattr(full, stateful))
    torch.testing.assert_close(resumed.state_dict(), full.state_dict())
