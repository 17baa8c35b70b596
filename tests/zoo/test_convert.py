"""Converters: checkpoints in each released key layout, built from random weights, convert to
timm state dicts that give the same features; anything but heads is a strict error."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from ssl4gie.errors import InputError
from ssl4gie.zoo.convert import convert_file, detect_format, read_checkpoint
from ssl4gie.zoo.export import build_backbone

from .conftest import RunsCode, features, lightning_checkpoint, tiny_vit


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + key: value for key, value in state.items()}


def _extra(*keys: str) -> dict:
    return {key: torch.randn(4, 4) for key in keys}


def mocov3(state, head):  # moco-v3 main_moco.py: DDP-wrapped MoCo with both encoders
    base = _prefixed(
        {**state, **_extra(f"{head}.0.weight", f"{head}.1.weight")}, "module.base_encoder."
    )
    other = {**_prefixed(state, "module.momentum_encoder."), **_extra("module.predictor.0.weight")}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.6, "params": [0, 1]}]}
    return {
        "epoch": 100,
        "arch": "resnet50",
        "state_dict": {**base, **other},
        "optimizer": optimizer,
    }


def barlowtwins_full(state, _):  # barlowtwins main.py checkpoint.pth
    model = {**_prefixed(state, "module.backbone."), **_extra("module.projector.0.weight")}
    model["module.bn.running_mean"] = torch.zeros(8)
    return {"epoch": 1000, "model": model}


def mae(state, _):  # mae main_pretrain.py: {"model": encoder + decoder}
    decoder = _extra("decoder_embed.weight", "decoder_blocks.0.norm1.weight", "decoder_pred.weight")
    return {"model": {**state, **decoder, "mask_token": torch.zeros(1, 1, 4)}, "epoch": 799}


def dino_full(state, _):  # dino main_dino.py: teacher without DDP, student with it
    teacher = {
        **_prefixed(state, "backbone."),
        **_extra("head.mlp.0.weight", "head.last_layer.weight_g"),
    }
    return {"teacher": teacher, "student": _prefixed(teacher, "module."), "epoch": 400}


def swav(state, _):  # swav: DDP state dict with projection head and prototypes
    return _prefixed(
        {**state, **_extra("projection_head.0.weight", "prototypes.weight")}, "module."
    )


def plain(state, _):  # backbone-only releases (Barlow resnet50.pth, DINO *_pretrain.pth)
    return dict(state)


def plain_with_head(state, head):  # SSL4GIE MoCo v3 saved without the DDP prefix
    return {**state, **_extra(f"{head}.0.weight")}


def _resnet18():
    return timm.create_model("resnet18", num_classes=0).eval()


CASES = [
    ("mocov3", mocov3, _resnet18, "fc"),
    ("mocov3", mocov3, tiny_vit, "head"),
    ("ssl4gie-mocov3", mocov3, _resnet18, "fc"),
    ("ssl4gie-mocov3", plain_with_head, tiny_vit, "head"),
    ("barlowtwins", plain, _resnet18, ""),
    ("barlowtwins", barlowtwins_full, _resnet18, ""),
    ("ssl4gie-barlow", plain, _resnet18, ""),
    ("mae", mae, tiny_vit, ""),
    ("ssl4gie-mae", mae, tiny_vit, ""),
    ("dino", plain, _resnet18, ""),
    ("dino", dino_full, tiny_vit, ""),
    ("swav", swav, _resnet18, ""),
]


@pytest.mark.parametrize(("fmt", "layout", "make_model", "head"), CASES)
@pytest.mark.parametrize("given", [True, False], ids=["given", "detected"])
def test_released_layout_converts_to_identical_features(
    tmp_path, fmt, layout, make_model, head, given
):
    model = make_model()
    path = tmp_path / "release.pth"
    torch.save(layout(model.state_dict(), head), path)
    converted = convert_file(path, fmt if given else None)
    assert converted.architecture == model.default_cfg["architecture"]
    assert torch.equal(features(build_backbone(converted)), features(model))
    kept = set(converted.state_dict)
    assert not any(key.startswith(("fc.", "head.", "decoder", "mask_token")) for key in kept)


def test_torchvision_resnet_gives_the_features_of_torchvision(tmp_path):
    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18-tv.pth")
    converted = convert_file(tmp_path / "resnet18-tv.pth", "torchvision")
    assert converted.dropped == ["fc.weight", "fc.bias"]
    reference.fc = torch.nn.Identity()
    torch.testing.assert_close(features(build_backbone(converted)), features(reference))


def test_lightning_checkpoint_keeps_only_the_backbone(tmp_path):
    checkpoint, model = lightning_checkpoint("vit_tiny_patch16_224", img_size=32)
    torch.save(checkpoint, tmp_path / "last.ckpt")
    converted = convert_file(tmp_path / "last.ckpt")
    assert converted.source_format == "lightning" and converted.model_args == {"img_size": 32}
    assert sorted(converted.dropped) == ["momentum_encoder.0.conv1.weight", "projector.0.weight"]
    assert torch.equal(features(build_backbone(converted), 32), features(model, 32))


def test_a_real_trainer_checkpoint_loads(tmp_path):
    import lightning

    from ssl4gie.backbones import create_backbone

    class Tiny(lightning.LightningModule):
        def __init__(self, backbone: str = "resnet18", backbone_kwargs: dict | None = None):
            super().__init__()
            self.save_hyperparameters()
            self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
            self.projector = torch.nn.Linear(self.backbone.num_features, 4)

    module = Tiny()
    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "tiny.ckpt")
    converted = convert_file(tmp_path / "tiny.ckpt")
    assert converted.dropped == ["projector.weight", "projector.bias"]
    assert torch.equal(features(build_backbone(converted)), features(module.backbone))


def test_a_key_outside_heads_is_an_error(tmp_path):
    state = {**_resnet18().state_dict(), "layer5.0.conv1.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(InputError, match=r"unexpected \['layer5.0.conv1.weight'\]"):
        build_backbone(convert_file(tmp_path / "odd.pth", "torchvision"))
    del state["layer5.0.conv1.weight"], state["layer4.1.bn2.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(InputError, match=r"missing \['layer4.1.bn2.weight'\]"):
        build_backbone(convert_file(tmp_path / "short.pth", "torchvision", architecture="resnet18"))


def test_a_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(InputError, match="needs full unpickling"):
        read_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_unknown_format_and_layout_are_explained(tmp_path):
    with pytest.raises(InputError, match="did you mean 'mocov3'"):
        convert_file(_saved(tmp_path, {"a": torch.zeros(1)}), "moco3")
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format({"weights": torch.zeros(1)})
    with pytest.raises(InputError, match="architecture"):
        convert_file(_saved(tmp_path, {"layer1.0.conv1.weight": torch.zeros(1)}), "torchvision")


def _saved(tmp_path, obj):
    torch.save(obj, tmp_path / "x.pth")
    return tmp_path / "x.pth"
