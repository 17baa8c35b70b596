"""Every released format, key by key, on hand-made checkpoints: each layout below holds every
prefix its format names (wrapping entry, other networks, stripped prefixes, heads, temporal
layers) and must give exactly the listed timm keys and drop exactly the listed source keys;
the architecture table and a ViT's input size read from shapes alone (meta tensors); the
one-line summary of what was left out. No model is built: these run in about a second.

Layouts: moco-v3 ``main_moco.py``; barlowtwins ``main.py``/``resnet50.pth``; mae
``main_pretrain.py``; dino ``main_dino.py``; swav ``main_swav.py``; EndoViT ``pytorch_model.bin``;
SurgeNetXL, GastroNet-5M (Meta's DINOv2 layout); VISSL (SelfSupSurg); Endo-FM ``endo_fm.pth``.
"""

from __future__ import annotations

import argparse
import json

import pytest
import timm
import torch

from ssl4gie.errors import InputError
from ssl4gie.zoo.convert import (
    FORMATS,
    Converted,
    convert_checkpoint,
    convert_lightning,
    detect_architecture,
    detect_format,
    summarize_dropped,
)


def _tensors(*keys: str) -> dict[str, torch.Tensor]:
    return {key: torch.zeros(1) for key in keys}


_VISSL_MODEL = {
    "trunk": _tensors("_feature_blocks.conv1.weight", "_feature_blocks.layer1.0.bn1.bias"),
    "heads": _tensors("0.clf.0.weight"),
}
_ENDOFM_TEACHER = _tensors(
    "module.backbone.cls_token",
    "module.backbone.time_embed",
    "module.backbone.blocks.0.temporal_attn.qkv.weight",
    "module.backbone.blocks.0.attn.qkv.weight",
    "module.head.mlp.0.weight",
)

# id: (format, checkpoint, detected format or None where the layout is another's, timm keys,
# dropped source keys); architecture resnet18 unless the id says vit
LAYOUTS = {
    "mocov3-resnet": (
        "mocov3",
        {
            "epoch": 100,
            "arch": "resnet50",
            "state_dict": _tensors(
                "module.base_encoder.conv1.weight",
                "module.base_encoder.fc.0.weight",
                "module.momentum_encoder.conv1.weight",
                "module.predictor.0.weight",
            ),
        },
        "mocov3",
        ["conv1.weight"],
        [
            "module.base_encoder.fc.0.weight",
            "module.momentum_encoder.conv1.weight",
            "module.predictor.0.weight",
        ],
    ),
    "mocov3-vit": (
        "mocov3",
        {
            "state_dict": _tensors(
                "module.base_encoder.cls_token", "module.base_encoder.head.0.bias"
            )
        },
        "mocov3",
        ["cls_token"],
        ["module.base_encoder.head.0.bias"],
    ),
    "ssl4gie-mocov3-vit": (
        "ssl4gie-mocov3",
        _tensors("cls_token", "blocks.0.norm1.weight", "head.0.weight"),
        "dino",
        ["cls_token", "blocks.0.norm1.weight"],
        ["head.0.weight"],
    ),
    "barlowtwins-full": (
        "barlowtwins",
        {
            "epoch": 1000,
            "model": _tensors(
                "module.backbone.conv1.weight",
                "module.projector.0.weight",
                "module.bn.running_mean",
            ),
        },
        "barlowtwins",
        ["conv1.weight"],
        ["module.projector.0.weight", "module.bn.running_mean"],
    ),
    "barlowtwins-resnet50.pth": (
        "barlowtwins",
        _tensors("conv1.weight", "layer1.0.conv1.weight"),
        "torchvision",
        ["conv1.weight", "layer1.0.conv1.weight"],
        [],
    ),
    "ssl4gie-barlow": (
        "ssl4gie-barlow",
        _tensors("conv1.weight", "fc.weight", "fc.bias"),
        "torchvision",
        ["conv1.weight"],
        ["fc.weight", "fc.bias"],
    ),
    "mae-vit": (
        "mae",
        {
            "epoch": 799,
            "model": {
                **_tensors("cls_token", "decoder_embed.weight", "decoder_blocks.0.norm1.weight"),
                "mask_token": torch.zeros(1),
                "pos_embed": torch.zeros(1, 1 + 2 * 2, 8),  # a 2 x 2 grid: 32 px, not 224
                "patch_embed.proj.weight": torch.zeros(8, 3, 16, 16),
            },
        },
        "mae",
        ["cls_token", "pos_embed", "patch_embed.proj.weight"],
        ["decoder_embed.weight", "decoder_blocks.0.norm1.weight", "mask_token"],
    ),  # the given architecture's own size stands: only gastronet reads it from the weights
    "ssl4gie-mae-vit": (
        "ssl4gie-mae",
        {"model": _tensors("cls_token", "decoder_pred.bias")},
        "mae",
        ["cls_token"],
        ["decoder_pred.bias"],
    ),
    "endovit-vit": (
        "endovit",
        {
            "model": _tensors("cls_token", "decoder_pred.weight", "mask_token"),
            "args": argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75),
        },
        "mae",
        ["cls_token"],
        ["decoder_pred.weight", "mask_token"],
    ),
    "dino-resnet-ddp-teacher": (
        "dino",
        {
            "teacher": _tensors(
                "module.backbone.conv1.weight", "module.head.mlp.0.weight", "module.fc.weight"
            ),
            "student": _tensors("module.backbone.layer9.weight"),
        },
        "dino",
        ["conv1.weight"],
        ["module.head.mlp.0.weight", "module.fc.weight"],
    ),
    "dino-vit-backbone": (
        "dino",
        _tensors("cls_token", "blocks.0.norm1.weight"),
        "dino",
        ["cls_token", "blocks.0.norm1.weight"],
        [],
    ),
    "swav": (
        "swav",
        _tensors(
            "module.conv1.weight", "module.projection_head.0.weight", "module.prototypes.weight"
        ),
        "swav",
        ["conv1.weight"],
        ["module.projection_head.0.weight", "module.prototypes.weight"],
    ),
    "torchvision": (
        "torchvision",
        _tensors("conv1.weight", "fc.weight"),
        "torchvision",
        ["conv1.weight"],
        ["fc.weight"],
    ),
    "surgenet-vit": (
        "surgenet",
        _tensors("cls_token", "head.weight", "dino_head.mlp.0.weight", "ibot_head.mlp.0.weight"),
        None,
        ["cls_token"],
        ["head.weight", "dino_head.mlp.0.weight", "ibot_head.mlp.0.weight"],
    ),
    "surgenet-teacher-vit": (
        "surgenet",
        {"teacher": _tensors("backbone.cls_token", "dino_head.last_layer.weight_g")},
        None,
        ["cls_token"],
        ["dino_head.last_layer.weight_g"],
    ),
    "gastronet-student-backbone": (
        "gastronet",
        _tensors("student_backbone.conv1.weight", "student_backbone.fc.weight"),
        None,
        ["conv1.weight"],
        ["student_backbone.fc.weight"],
    ),
    "gastronet-ddp-teacher-vit": (
        "gastronet",
        {"teacher": _tensors("module.backbone.cls_token", "module.head.mlp.0.weight")},
        None,
        ["cls_token"],
        ["module.head.mlp.0.weight"],
    ),
    "selfsupsurg": (
        "selfsupsurg",
        {
            "classy_state_dict": {"base_model": {"model": _VISSL_MODEL, "meta": {}}},
            "phase_idx": 399,
        },
        "selfsupsurg",
        ["conv1.weight", "layer1.0.bn1.bias"],
        ["heads.0.clf.0.weight"],
    ),
    "endofm-teacher-vit": (
        "endofm",
        {"teacher": _ENDOFM_TEACHER, "student": dict(_ENDOFM_TEACHER), "epoch": 30},
        "endofm",
        ["cls_token", "blocks.0.attn.qkv.weight"],
        [
            "module.backbone.time_embed",
            "module.backbone.blocks.0.temporal_attn.qkv.weight",
            "module.head.mlp.0.weight",
        ],
    ),
    "endofm-backbone-vit": (
        "endofm",
        _tensors("cls_token", "time_embed", "blocks.1.temporal_norm1.weight"),
        "endofm",
        ["cls_token"],
        ["time_embed", "blocks.1.temporal_norm1.weight"],
    ),
}


def test_every_format_has_a_layout_here():
    assert {fmt for fmt, *_ in LAYOUTS.values()} == set(FORMATS)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_layout_gives_exactly_its_timm_keys_and_drops_exactly_the_rest(layout):
    fmt, checkpoint, _, kept, dropped = LAYOUTS[layout]
    architecture = "vit_small_patch16_224" if layout.endswith("vit") else "resnet18"
    converted = convert_checkpoint(checkpoint, fmt, architecture)
    assert list(converted.state_dict) == kept
    assert converted.dropped == dropped
    assert (converted.architecture, converted.model_args) == (architecture, {})
    assert converted.source_format == fmt


@pytest.mark.parametrize("layout", [name for name, case in LAYOUTS.items() if case[2]])
def test_a_layout_is_detected_as_its_format(layout):
    _, checkpoint, detected, kept, _ = LAYOUTS[layout]
    assert detect_format(checkpoint) == detected
    converted = convert_checkpoint(checkpoint, architecture="resnet18")
    assert (list(converted.state_dict), converted.source_format) == (kept, detected)


def test_detection_reads_every_wrapping_entry_and_needs_both_lightning_keys():
    conv = torch.zeros(1)
    hidden = {"model": {"head.weight": conv}, "state_dict": {"module.base_encoder.x": conv}}
    assert detect_format(hidden) == "mocov3"
    lightning = {"state_dict": {"backbone.conv1.weight": conv}, "hyper_parameters": {}}
    assert detect_format(lightning) == "lightning"
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format({"state_dict": {"backbone.conv1.weight": conv}})


def _meta_dinov2(grid: int, width: int = 384) -> dict[str, torch.Tensor]:
    """Meta's DINOv2 layout with registers, as a DINO-style teacher ``backbone.`` (values set so
    that the class token's position is told apart from the class token)."""
    return {
        "backbone.cls_token": torch.full((1, 1, width), 1.0),
        "backbone.pos_embed": torch.arange(1.0, 2.0 + grid * grid)
        .view(1, -1, 1)
        .expand(1, 1 + grid * grid, width)
        .clone(),
        "backbone.register_tokens": torch.full((1, 4, width), 3.0),
        "backbone.mask_token": torch.zeros(1, width),
        "backbone.patch_embed.proj.weight": torch.zeros(width, 3, 14, 14),
        "backbone.blocks.0.norm1.weight": torch.ones(width),
        "dino_head.mlp.0.weight": torch.zeros(1),
        "ibot_head.mlp.0.weight": torch.zeros(1),
    }


def test_gastronet_dinov2_goes_through_timms_filter_to_registers_at_its_size():
    teacher = _meta_dinov2(grid=4)
    converted = convert_checkpoint(
        {"teacher": teacher}, "gastronet", "vit_small_patch14_reg4_dinov2"
    )
    assert converted.model_args == {"img_size": 56}  # 4 x 14 px, not timm's default 518
    assert converted.dropped == ["dino_head.mlp.0.weight", "ibot_head.mlp.0.weight", "mask_token"]
    state = converted.state_dict
    assert sorted(state) == [
        "blocks.0.norm1.weight",
        "cls_token",
        "patch_embed.proj.weight",
        "pos_embed",
        "reg_token",
    ]
    assert torch.equal(state["reg_token"], teacher["backbone.register_tokens"])
    assert torch.equal(state["cls_token"], torch.full((1, 1, 384), 2.0))  # + position 0
    assert torch.equal(state["pos_embed"][0, :, 0], torch.arange(2.0, 18.0))  # without it


def _meta_state(name: str, **kwargs) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return timm.create_model(name, num_classes=0, **kwargs).state_dict()


ARCHITECTURES = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch8_224",
    "vit_large_patch16_224",
]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_architecture_is_read_from_the_shapes(name):
    assert detect_architecture(_meta_state(name)) == (name, {})


def test_a_vit_without_absolute_positions_is_not_guessed():
    swin = _meta_state("swin_tiny_patch4_window7_224")
    assert "patch_embed.proj.weight" in swin and "pos_embed" not in swin
    with pytest.raises(InputError, match="cannot tell the architecture"):
        detect_architecture(swin)


@pytest.mark.parametrize(
    ("tokens", "model_args"),
    [
        (1 + 4 * 4, {"img_size": 64}),
        (4 * 4, {"img_size": 64}),
        (1 + 14 * 14, {}),
        (2, {"img_size": 16}),
    ],
    ids=["class-token", "no-class-token", "224", "one-patch"],
)
def test_a_vit_input_size_is_read_from_its_position_embedding(tokens, model_args):
    state = {
        "patch_embed.proj.weight": torch.empty(192, 3, 16, 16, device="meta"),
        "pos_embed": torch.empty(1, tokens, 192, device="meta"),
        **{f"blocks.{i}.norm1.weight": torch.empty(192, device="meta") for i in range(12)},
    }
    assert detect_architecture(state) == ("vit_tiny_patch16_224", model_args)


def test_ones_own_state_dict_needs_only_its_architecture():
    state = _tensors("conv1.weight")
    first, second = Converted(state, "resnet18"), Converted(state, "resnet18")
    assert (first.model_args, first.dropped, first.source_format) == ({}, [], "")
    assert first.model_args is not second.model_args and first.dropped is not second.dropped


def test_a_lightning_checkpoint_of_an_exported_backbone_takes_its_config(tmp_path):
    folder = tmp_path / "exported"
    folder.mkdir()
    config = {"architecture": "resnet18", "model_args": {"num_classes": 0, "drop_rate": 0.1}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    checkpoint = {
        "state_dict": _tensors("backbone.conv1.weight", "projector.0.weight"),
        "hyper_parameters": {"backbone": str(folder), "backbone_kwargs": {"drop_path_rate": 0.2}},
    }
    converted = convert_lightning(checkpoint)
    assert converted.architecture == "resnet18"
    assert converted.model_args == {"drop_rate": 0.1, "drop_path_rate": 0.2}
    assert list(converted.state_dict) == ["conv1.weight"]
    assert converted.dropped == ["projector.0.weight"]


def test_a_lightning_checkpoint_of_a_zoo_backbone_takes_its_card():
    checkpoint = {
        "state_dict": _tensors("backbone.cls_token"),
        "hyper_parameters": {"backbone": "vitb16-dino-endofm"},
    }
    converted = convert_lightning(checkpoint)
    assert (converted.architecture, converted.model_args) == ("vit_base_patch16_224", {})


SUMMARIES = [
    ([], "nothing"),
    (["mask_token"], "mask_token.* (1)"),
    (
        [
            "module.backbone.blocks.0.temporal_fc.bias",
            "module.backbone.blocks.11.temporal_fc.weight",
            "model.decoder_blocks.3.mlp.fc1.weight",
            "module.prototypes.weight",
            "trunk.heads.0.weight",
            "backbone.weight",
        ],
        "temporal_fc.* (2), decoder_blocks.* (1), prototypes.* (1), heads.* (1), weight.* (1)",
    ),
]


@pytest.mark.parametrize(("dropped", "summary"), SUMMARIES, ids=["none", "one-part", "wrapped"])
def test_the_left_out_keys_are_summarised_by_layer(dropped, summary):
    assert summarize_dropped(dropped) == summary
