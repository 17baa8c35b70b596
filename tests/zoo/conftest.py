"""Fixtures for the zoo tests: tiny checkpoints in ssl4gie's Lightning layout, a hand-made
Hugging Face cache, and a registry that forgets the cards a test registers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import timm
import torch

from ssl4gie.zoo import registry

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread avoids OpenMP hand-off stalls (~12 ms per op on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _forget_registered_cards(monkeypatch):
    monkeypatch.setattr(registry, "_USER_CARDS", {})
    monkeypatch.setattr(registry, "_USER_ALIASES", {})


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache that huggingface_hub and ssl4gie use through HF_HOME, offline."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    return cache


def place_in_cache(cache: Path, repo_id: str, folder: Path, revision: str = REVISION) -> Path:
    """Put ``folder``'s files in ``cache`` as a snapshot of ``repo_id`` that main points at."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    return snapshot


def lightning_checkpoint(
    backbone: str = "resnet18", **backbone_kwargs
) -> tuple[dict, torch.nn.Module]:
    """The dict Lightning saves for an ssl4gie method module (backbone + a projector), and the
    backbone it holds (eval mode)."""
    from ssl4gie.backbones import create_backbone

    model = create_backbone(backbone, **backbone_kwargs).eval()
    state = {f"backbone.{key}": value for key, value in model.state_dict().items()}
    state["projector.0.weight"] = torch.randn(8, model.num_features)
    state["momentum_encoder.0.conv1.weight"] = torch.randn(1)
    checkpoint = {
        "epoch": 3,
        "global_step": 30,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": state,
        "hparams_name": "kwargs",
        "hyper_parameters": {"backbone": backbone, "backbone_kwargs": backbone_kwargs or None},
    }
    return checkpoint, model


@pytest.fixture(scope="session")
def resnet18_export(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """An export folder of random resnet18 weights and the model they came from."""
    from ssl4gie.zoo.export import export_backbone

    root = tmp_path_factory.mktemp("export")
    checkpoint, model = lightning_checkpoint("resnet18")
    torch.save(checkpoint, root / "last.ckpt")
    return export_backbone(root / "last.ckpt", root / "r18", name="resnet18-simclr-hk"), model


def features(model: torch.nn.Module, size: int = 64) -> torch.Tensor:
    """The model's output for a fixed input ``[2, 3, size, size]``."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, size, size, generator=generator))


def tiny_vit() -> torch.nn.Module:
    return timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=64).eval()


class RunsCode:
    """Unpickling this runs ``touch <marker>``: a real payload, as in a booby-trapped .pth."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
