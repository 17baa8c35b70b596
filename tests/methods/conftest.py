"""Shared by the method tests: synthetic data in the real layouts, tiny methods, a loss recorder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.data.synthetic import synthesize
from ssl4gie.methods import METHODS, SSLMethod
from ssl4gie.transforms.views import TwoViews

VIEW_SIZE = 32
TINY_HEADS: dict[str, dict[str, Any]] = {
    "mocov3": {"mlp_dim": 64, "dim": 32, "temperature": 0.2},
    "barlow_twins": {"projector_dims": [64, 64]},
    "byol": {"mlp_dim": 64, "dim": 32},
    "simclr": {"mlp_dim": 64, "dim": 32},
}
BACKBONES: dict[str, dict[str, Any]] = {
    "resnet18": {},
    "vit_tiny_patch16_224": {"backbone_kwargs": {"img_size": VIEW_SIZE}},
}


def _tiny_method(name: str, backbone: str = "resnet18", **overrides: Any) -> SSLMethod:
    """``name`` with tiny heads, 32 px views of the method's preset, no warm-up."""
    kwargs = {
        "backbone": backbone,
        "views": TwoViews.preset(name, size=VIEW_SIZE),
        "warmup_epochs": 0,
        **BACKBONES[backbone],
        **TINY_HEADS[name],
        **overrides,
    }
    return METHODS[name](**kwargs)


def _datamodule(root: Path, batch_size: int = 16, probe: Path | None = None) -> PretrainDataModule:
    return PretrainDataModule(
        Source("hyperkvasir-unlabeled", str(root)),
        max_size=64,
        batch_size=batch_size,
        num_workers=0,
        probe_size=64,
        probe=None if probe is None else Source("hyperkvasir-labeled", str(probe)),
    )


def _cpu_trainer(**kwargs: Any) -> L.Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**defaults, **kwargs})


class _LossRecorder(L.Callback):
    """The training loss of every batch, as floats."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.fixture(scope="session")
def tiny_method() -> Callable[..., SSLMethod]:
    """``tiny_method(name, backbone="resnet18", **overrides)``: tiny heads, 32 px views."""
    return _tiny_method


@pytest.fixture(scope="session")
def datamodule() -> Callable[..., PretrainDataModule]:
    """``datamodule(root, batch_size=16, probe=None)`` on synthetic folders, no workers."""
    return _datamodule


@pytest.fixture(scope="session")
def cpu_trainer() -> Callable[..., L.Trainer]:
    """``cpu_trainer(**trainer_kwargs)``: one CPU process, quiet, no logger or checkpoints."""
    return _cpu_trainer


@pytest.fixture
def loss_recorder() -> _LossRecorder:
    """A callback holding ``losses``, the training loss of every batch."""
    return _LossRecorder()


@pytest.fixture(scope="session")
def pretrain_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 synthetic HyperKvasir-unlabelled frames, 64 px."""
    root = tmp_path_factory.mktemp("pretrain") / "hyper-kvasir"
    return synthesize("hyperkvasir-unlabeled", root, n=64, size=64, progress=False)


@pytest.fixture(scope="session")
def probe_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic labelled HyperKvasir frames (23 classes), 64 px."""
    root = tmp_path_factory.mktemp("probe") / "hyper-kvasir"
    return synthesize("hyperkvasir-labeled", root, n=48, size=64, progress=False)
