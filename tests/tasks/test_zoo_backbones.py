"""A task's backbone given as a zoo name, an export folder or a Lightning checkpoint starts from
the same weights."""

import shutil

import pytest
import torch

from ssl4gie.backbones import create_backbone
from ssl4gie.tasks import ClassificationTask, SegmentationTask
from ssl4gie.zoo import WeightsCard, registry
from ssl4gie.zoo.export import export_backbone
from ssl4gie.zoo.hub import sha256_of

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Random resnet18 weights as a pretraining checkpoint, its export folder, and a zoo name
    whose Hub snapshot (in an offline cache) is that folder; and the weights themselves."""
    monkeypatch.setattr(registry, "_USER_CARDS", {})
    monkeypatch.setattr(registry, "_USER_ALIASES", {})
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(3)
    model = create_backbone("resnet18")
    state = {f"backbone.{key}": value for key, value in model.state_dict().items()}
    state["projector.0.weight"] = torch.randn(8, model.num_features)
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"backbone": "resnet18"}}, checkpoint)
    folder = export_backbone(checkpoint, tmp_path / "export")
    snapshot = tmp_path / "hf" / "hub" / "models--lab--r18"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text(REVISION)
    (snapshot / "snapshots").mkdir()
    shutil.copytree(folder, snapshot / "snapshots" / REVISION)
    registry.register_backbone(
        WeightsCard(
            name="resnet18-simclr-colon",
            architecture="resnet18",
            method="simclr",
            data="colon",
            license="mit",
            hub_id="lab/r18",
            available=True,
            revision=REVISION,
            sha256=sha256_of(folder / "model.safetensors"),
        )
    )
    return ["resnet18-simclr-colon", str(folder), str(checkpoint)], model.state_dict()


def normalised(state: dict) -> dict:
    """Keys without the layout differences of timm's feature wrappers (``layer1_0``)."""
    return {key.replace("_", "."): value for key, value in state.items()}


@pytest.mark.parametrize("task", [ClassificationTask, SegmentationTask])
def test_zoo_name_folder_and_checkpoint_give_identical_weights(sources, task):
    names, weights = sources
    expected = normalised(weights)
    for name in names:
        loaded = normalised(task(name).backbone.state_dict())
        assert loaded.keys() == expected.keys(), name
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), name
