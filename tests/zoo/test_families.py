"""The endoscopy and surgery encoder families: a stand-in of each release, built here from random
weights in the release's own key layout and container, converts to timm weights that give the
features of timm (or torchvision) holding the same weights; only heads, decoders and temporal
layers are left out; the card carries the release's preprocessing and licence.

Layouts: EndoViT egeozsoy/EndoViT ``pytorch_model.bin`` (MAE ``{"model", "args"}``); SurgeNetDINO
timm-native keys; GastroNet-5M torchvision ResNet-50 without ``fc`` and Meta's DINOv2 layout;
SelfSupSurg VISSL ``classy_state_dict``; Endo-FM ``teacher``/``student`` TimeSformer keys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import timm
import torch
import torchvision

import ssl4gie
from ssl4gie.cli import main
from ssl4gie.errors import InputError
from ssl4gie.zoo.cards import IMAGENET_MEAN, IMAGENET_STD, WeightsCard
from ssl4gie.zoo.convert import convert_file, summarize_dropped
from ssl4gie.zoo.export import build_backbone
from ssl4gie.zoo.hub import sha256_of

from .conftest import features

ENDOVIT_MEAN, ENDOVIT_STD = (0.3464, 0.2280, 0.2228), (0.2520, 0.2128, 0.2093)


def assert_same_features(converted: torch.Tensor, reference: torch.Tensor) -> None:
    """The issue's bar: max error < 1e-5, on features that are not all near zero."""
    assert reference.abs().max() > 0.1
    assert (converted - reference).abs().max().item() < 1e-5


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every parameter drawn afresh (fast, unlike timm's init of a ViT-B):
    norm scales around 1, everything else around 0."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.05
            scale = parameter.ndim == 1 and "norm" in name and name.endswith("weight")
            parameter.copy_(noise + 1 if scale else noise)
    return model.eval()


def _vit(name: str, **kwargs) -> torch.nn.Module:
    skip = {} if "dinov3" in name else {"weight_init": "skip"}  # timm's Eva has no weight_init
    model = timm.create_model(name, num_classes=0, dynamic_img_size=True, **skip, **kwargs)
    return _randomised(model)


def _extra(*keys: str) -> dict:
    return {key: torch.randn(4, 4) for key in keys}


def _save(path: Path, checkpoint) -> Path:
    torch.save(checkpoint, path)
    return path


# -- EndoViT -------------------------------------------------------------------------------------


def endovit(state: dict) -> dict:
    """egeozsoy/EndoViT pytorch_model.bin: MAE encoder + decoder under "model", args as a
    Namespace (the file's pickle imports argparse.Namespace, OrderedDict, FloatStorage)."""
    decoder = _extra(
        "decoder_embed.weight", "decoder_blocks.0.attn.qkv.weight", "decoder_pred.bias"
    )
    args = argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75, input_size=224)
    return {"model": {**state, **decoder, "mask_token": torch.zeros(1, 1, 8)}, "args": args}


@pytest.mark.parametrize("fmt", ["endovit", None], ids=["given", "detected"])
def test_endovit_converts_with_its_args_namespace(tmp_path, fmt):
    model = _vit("vit_tiny_patch16_224", img_size=64)
    path = _save(tmp_path / "pytorch_model.bin", endovit(model.state_dict()))
    converted = convert_file(path, fmt)
    assert sorted(converted.dropped) == [
        "decoder_blocks.0.attn.qkv.weight",
        "decoder_embed.weight",
        "decoder_pred.bias",
        "mask_token",
    ]
    assert_same_features(features(build_backbone(converted)), features(model))


@pytest.mark.slow
def test_endovit_release_converts_by_name_to_vit_b_with_its_normalisation(tmp_path, capsys):
    model = _vit("vit_base_patch16_224")
    path = _save(tmp_path / "pytorch_model.bin", endovit(model.state_dict()))
    out = tmp_path / "endovit"
    argv = ["zoo", "convert", "--format", "endovit", "--name", "vitb16-mae-endovit"]
    assert main([*argv, str(path), str(out)]) == 0
    assert "decoder_embed.* (1)" in capsys.readouterr().out
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True, dynamic_img_size=True)
    assert_same_features(features(loaded), features(model))
    config = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert tuple(config["mean"]) == ENDOVIT_MEAN and tuple(config["std"]) == ENDOVIT_STD


NORMALISATION = [  # (name, mean, std, input size): from each release's own code
    ("vitb16-mae-endovit", ENDOVIT_MEAN, ENDOVIT_STD, 224),  # EndoViT endovit_demo.py
    ("vitb16-dino-endofm", (0.45,) * 3, (0.225,) * 3, 224),  # Endo-FM utils/defaults.py
    ("vitb14-dinov2-surgenetxl", IMAGENET_MEAN, IMAGENET_STD, 336),  # "_size336_" file names
    ("vitb14-dinov2-gastronet", IMAGENET_MEAN, IMAGENET_STD, 336),
    ("resnet50-dino-selfsupsurg", IMAGENET_MEAN, IMAGENET_STD, 224),
]


@pytest.mark.parametrize(("name", "mean", "std", "size"), NORMALISATION)
def test_card_normalises_with_the_release_statistics(name, mean, std, size):
    image = torch.full((1, 3, 300, 400), 128, dtype=torch.uint8)  # flat grey, any size
    out = ssl4gie.load_transforms(name)(image)
    expected = [(128 / 255 - m) / s for m, s in zip(mean, std, strict=True)]
    assert out.shape == (1, 3, size, size)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(expected), atol=1e-5, rtol=0)


def test_endovit_is_pinned_and_resized_without_a_crop():
    card = ssl4gie.backbone_card("vitb16-mae-endovit")
    assert "/resolve/ec9828cfb28a04e4920a54ca4411ed6d6216e345/pytorch_model.bin" in card.url
    assert card.crop_pct == 1.0 and card.format == "endovit"


# -- SurgeNetXL DINOv1-v3 ------------------------------------------------------------------------

SURGENET = [  # (zoo name, timm architecture, size in the file name, head keys left in)
    ("vits16-dino-surgenetxl", "vit_small_patch16_224", 224, ("head.mlp.0.weight",)),
    ("vits14-dinov2-surgenetxl", "vit_small_patch14_dinov2", 336, ("dino_head.mlp.0.weight",)),
    ("vits16-dinov3-surgenetxl", "vit_small_patch16_dinov3", 336, ("ibot_head.last_layer.weight",)),
]


@pytest.mark.parametrize(("name", "architecture", "size", "heads"), SURGENET)
def test_surgenet_release_converts_by_name_into_its_timm_architecture(
    tmp_path, name, architecture, size, heads
):
    card = ssl4gie.backbone_card(name)
    assert card.architecture == architecture and card.format == "surgenet"
    model = _vit(architecture, **card.model_args)
    path = _save(tmp_path / "release.pth", {**model.state_dict(), **_extra(*heads)})
    out = tmp_path / name
    assert (
        main(["zoo", "convert", "--format", "surgenet", "--name", name, str(path), str(out)]) == 0
    )
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True, dynamic_img_size=True)
    pixels = 56 if "patch14" in architecture else 64
    assert_same_features(features(loaded, pixels), features(model, pixels))
    config = json.loads((out / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [3, size, size]
    assert tuple(config["pretrained_cfg"]["mean"]) == IMAGENET_MEAN


def test_surgenet_loads_by_name_from_the_upstream_file(tmp_path):
    card = ssl4gie.backbone_card("vits14-dinov2-surgenetxl")
    model = _vit(card.architecture, **card.model_args)
    downloads = tmp_path / "ssl4gie" / "downloads"  # where load_backbone puts the upstream file
    downloads.mkdir(parents=True)
    _save(downloads / Path(card.url).name, {**model.state_dict(), **_extra("dino_head.w")})
    loaded = ssl4gie.load_backbone(card.name, cache_dir=tmp_path)
    assert_same_features(features(loaded, 56), features(model, 56))
    assert loaded.pretrained_cfg["input_size"] == (3, 336, 336)
    assert not (downloads / Path(card.url).name).exists()  # converted, then removed


def test_surgenet_refuses_keys_that_are_not_dino_heads(tmp_path):
    model = _vit("vit_small_patch14_dinov2", img_size=56)
    state = {**model.state_dict(), "projector.0.weight": torch.zeros(2)}
    path = _save(tmp_path / "release.pth", state)
    converted = convert_file(path, "surgenet", "vit_small_patch14_dinov2")
    converted.model_args = {"img_size": 56}
    with pytest.raises(InputError, match=r"unexpected \['projector.0.weight'\]"):
        build_backbone(converted)


def test_dinov3_weights_carry_the_dinov3_licence():
    for name in (
        "vits16-dinov3-surgenetxl",
        "vitb16-dinov3-surgenetxl",
        "vitl16-dinov3-surgenetxl",
    ):
        assert ssl4gie.backbone_card(name).license == "dinov3-license"


# -- GastroNet-5M --------------------------------------------------------------------------------


def _torchvision_resnet50() -> tuple[dict, torch.nn.Module]:
    """A torchvision ResNet-50 as GastroNet ships it (no fc), and the same net without fc."""
    reference = torchvision.models.resnet50().eval()
    for module in reference.modules():  # BatchNorm statistics are weights too
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    reference.fc = torch.nn.Identity()
    return state, reference


@pytest.mark.parametrize("prefix", ["", "student_backbone."], ids=["plain", "student_backbone"])
def test_gastronet_resnet50_gives_the_features_of_torchvision(tmp_path, prefix):
    state, reference = _torchvision_resnet50()
    path = _save(
        tmp_path / "RN50_GastroNet-5M_DINOv1.pth", {prefix + k: v for k, v in state.items()}
    )
    converted = convert_file(path, "gastronet")
    assert converted.architecture == "resnet50" and converted.dropped == []
    assert_same_features(features(build_backbone(converted)), features(reference))


def test_gastronet_conversion_by_name_checks_the_pinned_sha256(tmp_path, capsys):
    state, _ = _torchvision_resnet50()
    path = _save(tmp_path / "RN50_GastroNet-5M_DINOv1.pth", state)
    out = tmp_path / "out"
    argv = ["zoo", "convert", "--format", "gastronet", "--name", "resnet50-dino-gastronet"]
    assert main([*argv, str(path), str(out)]) == 2
    error = capsys.readouterr().err
    assert "5ae8e09cea634179e8caf95dbead1a86d7ce05d1e934c80c742b9ff5887f44dd" in error
    assert sha256_of(path) in error and not out.exists()
    card = ssl4gie.backbone_card("resnet50-dino-gastronet")
    own = WeightsCard.from_dict({**card.to_dict(), "name": "resnet50-dino-mine"})
    own = WeightsCard.from_dict({**own.to_dict(), "sha256": sha256_of(path)})
    ssl4gie.register_backbone(own)
    assert main([*argv[:-1], "resnet50-dino-mine", str(path), str(out)]) == 0


def test_gastronet_vit_s_dino_teacher_checkpoint(tmp_path):
    model = _vit("vit_small_patch16_224")
    teacher = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    teacher.update(_extra("head.mlp.0.weight", "head.last_layer.weight_g"))
    path = _save(tmp_path / "VITS_GastroNet-5M_DINOv1.pth", {"teacher": teacher, "epoch": 100})
    converted = convert_file(path, "gastronet")
    assert converted.architecture == "vit_small_patch16_224"
    assert sorted(converted.dropped) == ["head.last_layer.weight_g", "head.mlp.0.weight"]
    assert_same_features(features(build_backbone(converted)), features(model))


def meta_dinov2(state: dict) -> dict:
    """Meta's DINOv2 layout of a timm reg4 ViT: register_tokens, a mask_token, and a pos_embed
    whose first row is the class token's position (timm folds it into cls_token)."""
    pos_cls = torch.randn(1, 1, state["pos_embed"].shape[-1])
    meta = {k: v for k, v in state.items() if k not in ("reg_token", "cls_token", "pos_embed")}
    meta["register_tokens"] = state["reg_token"]
    meta["cls_token"] = state["cls_token"] - pos_cls
    meta["pos_embed"] = torch.cat([pos_cls, state["pos_embed"]], dim=1)
    meta["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    return meta


def test_gastronet_dinov2_meta_layout_converts_to_timm_registers(tmp_path):
    model = _vit("vit_small_patch14_reg4_dinov2", img_size=56)
    path = _save(tmp_path / "dinov2.pth", meta_dinov2(model.state_dict()))
    converted = convert_file(path, "gastronet", "vit_small_patch14_reg4_dinov2")
    assert converted.model_args == {"img_size": 56} and converted.dropped == ["mask_token"]
    assert_same_features(features(build_backbone(converted), 56), features(model, 56))


@pytest.mark.slow
def test_gastronet_dinov2_release_is_vit_b14_reg4_at_336(tmp_path):
    card = ssl4gie.backbone_card("vitb14-dinov2-gastronet")
    model = _vit(card.architecture, **card.model_args)
    path = _save(tmp_path / "dinov2.pth", {"teacher": meta_dinov2(model.state_dict())})
    converted = convert_file(path, "gastronet", card.architecture)
    assert converted.model_args == {"img_size": 336} and card.input_size == (3, 336, 336)
    assert_same_features(features(build_backbone(converted), 56), features(model, 56))


def test_gastronet_cards_are_gated_nd_and_pinned():
    names = ssl4gie.list_backbones("*-gastronet*")
    assert len(names) == 8
    for name in names:
        card = ssl4gie.backbone_card(name)
        assert card.license == "cc-by-nc-nd-4.0" and "Data Use Agreement" in card.access
        assert card.source_kind == "manual" and card.filename and len(card.sha256) == 64


# -- SelfSupSurg (VISSL) -------------------------------------------------------------------------


def vissl(trunk: dict) -> dict:
    """A VISSL checkpoint: the trunk under classy_state_dict/base_model/model, beside the heads,
    and the rest of the task state."""
    model = {
        "trunk": {f"_feature_blocks.{k}": v for k, v in trunk.items()},
        "heads": _extra("0.clf.0.weight", "0.clf.0.bias"),
    }
    classy = {
        "base_model": {"model": model, "meta": {"version": 1.0}},
        "optimizer": {"param_groups": [{"lr": 0.3}]},
        "phase_idx": 399,
        "train_phase_idx": 199,
        "num_updates": 100,
        "loss": {"queue": torch.randn(8, 4)},
    }
    return {"classy_state_dict": classy, "phase_idx": 399, "iteration": 100, "type": "consolidated"}


@pytest.mark.parametrize("fmt", ["selfsupsurg", None], ids=["given", "detected"])
def test_selfsupsurg_vissl_trunk_gives_the_features_of_torchvision(tmp_path, fmt):
    state, reference = _torchvision_resnet50()
    path = _save(tmp_path / "model_final_checkpoint_dino_surg.torch", vissl(state))
    converted = convert_file(path, fmt)
    assert converted.source_format == "selfsupsurg" and converted.architecture == "resnet50"
    assert sorted(converted.dropped) == ["heads.0.clf.0.bias", "heads.0.clf.0.weight"]
    assert_same_features(features(build_backbone(converted)), features(reference))


# -- Endo-FM -------------------------------------------------------------------------------------


def endofm(state: dict, depth: int, width: int) -> dict:
    """Endo-FM's endo_fm.pth: DINO teacher and student of a TimeSformer, ``module.backbone.``
    keys, the spatial ones named as timm's ViT, plus time_embed and per-block temporal layers."""
    temporal = {"time_embed": torch.randn(1, 8, width)}
    for block in range(depth):
        for layer in ("temporal_norm1.weight", "temporal_attn.qkv.weight", "temporal_fc.bias"):
            temporal[f"blocks.{block}.{layer}"] = torch.randn(width)
    backbone = {f"module.backbone.{k}": v for k, v in {**state, **temporal}.items()}
    teacher = {**backbone, **_extra("module.head.mlp.0.weight", "module.head.last_layer.weight_v")}
    args = argparse.Namespace(arch="vit_base", patch_size=16, num_frames=8)
    return {"teacher": teacher, "student": dict(teacher), "epoch": 30, "args": args}


@pytest.mark.parametrize("fmt", ["endofm", None], ids=["given", "detected"])
def test_endofm_keeps_the_spatial_trunk_of_the_teacher(tmp_path, fmt):
    model = _vit("vit_tiny_patch16_224", img_size=64)
    path = _save(tmp_path / "endo_fm.pth", endofm(model.state_dict(), 12, 192))
    converted = convert_file(path, fmt)
    assert converted.source_format == "endofm" and converted.architecture == "vit_tiny_patch16_224"
    assert summarize_dropped(converted.dropped) == (
        "time_embed.* (1), temporal_norm1.* (12), temporal_attn.* (12), temporal_fc.* (12), "
        "head.* (2)"
    )
    assert_same_features(features(build_backbone(converted)), features(model))


@pytest.mark.slow
def test_endofm_release_converts_by_name_to_vit_b16(tmp_path):
    model = _vit("vit_base_patch16_224")
    path = _save(tmp_path / "endo_fm.pth", endofm(model.state_dict(), 12, 768))
    out = tmp_path / "endofm"
    argv = ["zoo", "convert", "--format", "endofm", "--name", "vitb16-dino-endofm"]
    assert main([*argv, str(path), str(out)]) == 0
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True, dynamic_img_size=True)
    assert_same_features(features(loaded), features(model))
