"""DINO's released full checkpoints (facebookresearch/dino ``main_dino.py`` ``save_dict``): the
``teacher`` entry is ``teacher.state_dict()``, DDP-wrapped (``module.backbone.*``) when the
network has batch norm (ResNet-50: ``teacher = nn.parallel.DistributedDataParallel(teacher)``),
plain ``backbone.*`` otherwise (ViT); the student is always DDP-wrapped. The converter must give
the teacher backbone's exact weights in both layouts, and keep the student's out."""

from __future__ import annotations

import pytest
import timm
import torch

from ssl4gie.zoo.convert import convert_checkpoint, convert_file, detect_format
from ssl4gie.zoo.export import build_backbone

from .conftest import features, tiny_vit


def _full_checkpoint(teacher_state: dict, student_state: dict, ddp_teacher: bool) -> dict:
    wrap = "module." if ddp_teacher else ""
    head = {"head.mlp.0.weight": torch.randn(4, 4), "head.last_layer.weight_g": torch.ones(4, 1)}
    teacher = {f"{wrap}backbone.{key}": value for key, value in teacher_state.items()}
    teacher |= {f"{wrap}{key}": value for key, value in head.items()}
    student = {f"module.backbone.{key}": value for key, value in student_state.items()}
    return {
        "student": student,
        "teacher": teacher,
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 100,
        "args": None,
        "dino_loss": {"center": torch.zeros(1, 4)},
    }


@pytest.mark.parametrize(
    ("make_model", "ddp_teacher"),
    [
        (lambda: timm.create_model("resnet18", num_classes=0).eval(), True),
        (tiny_vit, False),
    ],
    ids=["resnet-ddp-teacher", "vit-plain-teacher"],
)
def test_full_checkpoint_gives_the_teacher_backbone(tmp_path, make_model, ddp_teacher):
    teacher, student = make_model(), make_model()
    checkpoint = _full_checkpoint(teacher.state_dict(), student.state_dict(), ddp_teacher)
    assert detect_format(checkpoint) == "dino"
    torch.save(checkpoint, tmp_path / "checkpoint.pth")
    prefix = "module." if ddp_teacher else ""
    for given in ("dino", None):
        converted = convert_file(tmp_path / "checkpoint.pth", given)
        assert converted.architecture == teacher.default_cfg["architecture"]
        assert set(converted.state_dict) == set(teacher.state_dict())
        for key, value in teacher.state_dict().items():
            assert torch.equal(converted.state_dict[key], value), key
        assert sorted(converted.dropped) == [
            f"{prefix}head.last_layer.weight_g",
            f"{prefix}head.mlp.0.weight",
        ]
    assert torch.equal(features(build_backbone(converted)), features(teacher))


def test_a_key_holding_the_word_backbone_twice_is_stripped_once():
    # the strip order: "module." first, then "backbone.", each at most once
    state = {"module.backbone.conv1.weight": torch.ones(1)}
    converted = convert_checkpoint({"teacher": state}, "dino", architecture="resnet18")
    assert list(converted.state_dict) == ["conv1.weight"]
    state = {"backbone.module.x": torch.ones(1)}
    converted = convert_checkpoint({"teacher": state}, "dino", architecture="resnet18")
    assert list(converted.state_dict) == ["module.x"]
