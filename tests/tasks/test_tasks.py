"""Every task x (ResNet, ViT) through Trainer.fit and Trainer.test on synthetic data in its real
layout, plus the behaviours the protocols rely on."""

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from ssl4gie.data.datamodules import (
    ClassificationDataModule,
    DepthDataModule,
    DetectionDataModule,
    SegmentationDataModule,
)
from ssl4gie.data.synthetic.layouts import C3VD_VIDEOS
from ssl4gie.tasks import ClassificationTask, DepthTask, DetectionTask, SegmentationTask

LOADER = {"batch_size": 4, "num_workers": 0}
BACKBONES = ["resnet18", "vit_tiny_patch16_224"]


def trainer(root, **kwargs) -> L.Trainer:
    settings = {
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "limit_test_batches": 1,
        "accelerator": "cpu",
        "default_root_dir": root,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **kwargs,
    }
    return L.Trainer(**settings)


def backbone_kwargs(backbone: str, size: int) -> dict:
    return {"img_size": size} if backbone.startswith("vit") else {}


CASES = {
    "classification": (
        lambda s, size: ClassificationDataModule(
            str(s("hyperkvasir-labeled", n=92)), options={"task": "landmarks"}, size=size, **LOADER
        ),
        lambda backbone, kw: ClassificationTask(backbone, num_classes=6, backbone_kwargs=kw),
        ["test_accuracy", "test_f1", "test_precision", "test_recall", "test_kappa", "test_auroc"],
        64,
    ),
    "segmentation": (
        lambda s, size: SegmentationDataModule(str(s("kvasir-seg")), size=size, **LOADER),
        lambda backbone, kw: SegmentationTask(backbone, backbone_kwargs=kw),
        ["test_dice", "test_iou", "test_precision", "test_recall", "test_loss"],
        64,
    ),
    "detection": (
        lambda s, size: DetectionDataModule(str(s("kvasir-seg")), size=size, **LOADER),
        lambda backbone, kw: DetectionTask(backbone, backbone_kwargs=kw, rois_per_image=32),
        ["test_map", "test_map_50", "test_map_75"],
        64,
    ),
    "depth": (
        lambda s, size: DepthDataModule(
            str(s("c3vd", n=24)),
            split="groups",
            val_groups=[C3VD_VIDEOS[4]],
            test_groups=[C3VD_VIDEOS[5]],
            size=size,
            **LOADER,
        ),
        lambda backbone, kw: DepthTask(backbone, backbone_kwargs=kw),
        ["test_rmse", "test_abs_rel", "test_median_rel", "test_mae", "test_delta1", "test_loss"],
        32,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("task", list(CASES))
def test_fit_and_test_write_metrics_and_pictures(synthetic, tmp_path, task, backbone):
    make_data, make_model, keys, size = CASES[task]
    datamodule = make_data(synthetic, size)
    model = make_model(backbone, backbone_kwargs(backbone, size))
    fit = trainer(tmp_path)
    fit.fit(model, datamodule=datamodule)
    if task != "detection":  # Faster R-CNN gives losses only in training mode
        assert math.isfinite(fit.callback_metrics["train_loss_epoch"])
    log_dir = Path(fit.log_dir)
    assert (log_dir / "convergence.json").exists() and set(model.convergence) == {"90", "95", "99"}
    if task != "classification":
        assert (log_dir / "predictions" / "val_epoch000.png").stat().st_size > 0
    results = fit.test(model, datamodule=datamodule, ckpt_path="best")[0]  # reloads the checkpoint
    assert set(keys) <= set(results)
    assert all(math.isfinite(results[key]) for key in keys)
    checkpoint_dir = Path(fit.checkpoint_callback.best_model_path).parent
    written = json.loads((checkpoint_dir / "test_metrics.json").read_text())
    assert written == pytest.approx({key: results[key] for key in written})
    reloaded = type(model).load_from_checkpoint(fit.checkpoint_callback.best_model_path)
    weights = model.state_dict()  # the best checkpoint's, loaded by test
    assert all(torch.equal(v, weights[k]) for k, v in reloaded.state_dict().items())


def landmarks(synthetic, size=64, **kwargs) -> ClassificationDataModule:
    root = str(synthetic("hyperkvasir-labeled", n=230))
    return ClassificationDataModule(root, options={"task": "landmarks"}, size=size, **kwargs)


@pytest.mark.slow
def test_finetuning_beats_the_untrained_baseline(synthetic, tmp_path):
    """Six synthetic landmark classes (distinct mucosa styles): 6 short epochs of fine-tuning
    take validation accuracy well above the untrained network's (about chance, 1/6)."""
    L.seed_everything(0)
    datamodule = landmarks(synthetic, batch_size=8, num_workers=0, fractions=(0.6, 0.3, 0.1))
    model = ClassificationTask("resnet18", num_classes=6, lr=1e-3)
    run = trainer(
        tmp_path,
        max_epochs=6,
        limit_train_batches=None,
        limit_val_batches=None,
        logger=False,
        enable_checkpointing=False,
    )
    before = run.validate(model, datamodule=datamodule, verbose=False)[0]["val_accuracy"]
    run.fit(model, datamodule=datamodule)
    after = run.validate(model, datamodule=datamodule, verbose=False)[0]["val_accuracy"]
    assert after >= before + 0.25, (before, after)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_linear_mode_freezes_the_backbone(synthetic, tmp_path, backbone):
    model = ClassificationTask(
        backbone, num_classes=6, mode="linear", backbone_kwargs=backbone_kwargs(backbone, 64)
    )
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}  # BN stats included
    head = [p.clone() for p in model.head.parameters()]
    trainer(tmp_path, logger=False).fit(model, datamodule=landmarks(synthetic, **LOADER))
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(head, model.head.parameters(), strict=True))
    if backbone.startswith("vit"):  # MAE's linear probe: a non-affine batch norm first
        assert isinstance(model.head[0], torch.nn.BatchNorm1d) and not model.head[0].affine


def test_knn_mode_needs_no_fit(synthetic, tmp_path):
    model = ClassificationTask("resnet18", num_classes=6, mode="knn", knn_k=5)
    datamodule = landmarks(synthetic, **LOADER)
    results = trainer(tmp_path, logger=False).test(model, datamodule=datamodule)[0]
    assert 0 <= results["test_accuracy"] <= 1 and "test_loss" not in results
    assert len(model.bank[0]) == len(datamodule.parts["train"])


@pytest.mark.slow
def test_fit_through_the_command_line(synthetic, tmp_path):
    """LightningCLI validates the typed task arguments and runs a task from the command line."""
    import subprocess
    import sys

    root = synthetic("kvasir-seg")
    common = ["--model", "ssl4gie.tasks.SegmentationTask", "--model.backbone", "resnet18"]
    common += ["--data", "ssl4gie.data.datamodules.SegmentationDataModule"]
    common += ["--data.root", str(root), "--data.size", "64", "--data.batch_size", "4"]
    common += ["--data.num_workers", "0", "--trainer.accelerator", "cpu"]
    common += ["--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1"]
    common += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]

    def run(*extra, stage="fit"):
        command = [sys.executable, "-m", "ssl4gie.cli", "finetune", stage, *common, *extra]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    bad = run("--model.decoder", "pspnet")
    assert bad.returncode != 0 and "pspnet" in bad.stderr
    unet = ["--model.decoder", "unet", "--trainer.enable_progress_bar", "false"]
    good = run(*unet)
    assert good.returncode == 0, good.stderr[-2000:]
    assert list(tmp_path.rglob("convergence.json")) and list(tmp_path.rglob("val_epoch000.png"))
    (best,) = tmp_path.glob("runs/finetune/version_0/checkpoints/best-*.ckpt")
    tested = run(*unet, "--ckpt_path", "best", stage="test")  # a new process: no "best" known
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert (best.parent / "test_metrics.json").is_file()
