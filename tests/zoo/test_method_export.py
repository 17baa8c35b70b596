"""A real pretraining checkpoint -> zoo export folder -> load_backbone: the same encoder."""

from __future__ import annotations

import lightning as L
import timm
import torch

import ssl4gie
from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.methods import BarlowTwins
from ssl4gie.transforms import TwoViews

from .conftest import features


def test_barlow_twins_checkpoint_exports_its_encoder(synthetic, tmp_path):
    method = BarlowTwins(
        "resnet18", projector_dims=[32, 32], views=TwoViews.barlow_twins(size=32), warmup_epochs=0
    )
    data = PretrainDataModule(
        Source("hyperkvasir-unlabeled", str(synthetic("hyperkvasir-unlabeled", n=16))),
        size=48, batch_size=8, num_workers=0,
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(method, datamodule=data)
    checkpoint = next((tmp_path / "checkpoints").glob("*.ckpt"))
    trained = features(method.backbone)
    assert not torch.equal(trained, features(timm.create_model("resnet18", num_classes=0)))

    folder = ssl4gie.export_backbone(checkpoint, tmp_path / "export", name="resnet18-barlow-hk")
    assert (folder / "model.safetensors").exists() and (folder / "README.md").exists()
    plain_timm = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0)
    for model in (ssl4gie.load_backbone(folder), ssl4gie.load_backbone(checkpoint), plain_timm):
        assert torch.allclose(features(model), trained, atol=1e-5)
