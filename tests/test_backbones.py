"""``ssl4gie.backbones`` resolves every kind of backbone name, and checks one without building."""

from __future__ import annotations

import pytest

from ssl4gie.backbones import check_backbone_name, create_backbone, is_weights_source
from ssl4gie.errors import InputError


@pytest.mark.parametrize(
    ("name", "weights_source"),
    [
        ("resnet18", False),  # timm name
        ("vit_tiny_patch16_224.augreg_in21k", False),  # timm name with a pretrained tag
        ("resnet50-barlow-hk", True),  # zoo name
        ("hf-hub:lab/encoder", True),
    ],
)
def test_known_names_pass_the_check(name, weights_source):
    assert check_backbone_name(name) == name
    assert is_weights_source(name) is weights_source


def test_an_existing_folder_is_a_weights_source_but_a_missing_one_is_refused(tmp_path):
    assert check_backbone_name(str(tmp_path)) == str(tmp_path)
    with pytest.raises(InputError, match=r"unknown backbone .*hf-hub: id, an export folder"):
        check_backbone_name(str(tmp_path / "missing"))


def test_a_checkpoint_named_like_a_timm_model_is_a_weights_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18.ckpt").touch()
    (tmp_path / "resnet18").mkdir()  # a folder named like a timm model: the timm name wins
    assert is_weights_source("resnet18.ckpt") and not is_weights_source("resnet18")


def test_a_misspelt_zoo_name_is_refused_with_the_close_names():
    with pytest.raises(InputError, match=r"'resnet50-barlow-hkk' \(did you mean 'resnet50-barlow"):
        check_backbone_name("resnet50-barlow-hkk")


def test_a_timm_name_builds_a_headless_timm_model():
    model = create_backbone("resnet18")
    assert model.num_classes == 0 and model.num_features == 512
