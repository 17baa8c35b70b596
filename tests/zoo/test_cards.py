"""Cards and the registry: every zoo name is a test parameter (principle 13 of STYLE.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import ssl4gie
from ssl4gie.errors import InputError
from ssl4gie.zoo.cards import WeightsCard, parse_name
from ssl4gie.zoo.convert import FORMATS
from ssl4gie.zoo.registry import builtin_names, list_backbones, load_index

ARCHITECTURES = {  # the timm names each arch part may stand for
    "resnet50": ("resnet50",),
    "vits16": ("vit_small_patch16_224", "vit_small_patch16_dinov3"),
    "vitb16": ("vit_base_patch16_224", "vit_base_patch16_dinov3"),
    "vitl16": ("vit_large_patch16_dinov3",),
    "vits14": ("vit_small_patch14_dinov2",),
    "vitb14": ("vit_base_patch14_dinov2", "vit_base_patch14_reg4_dinov2"),
    "vitl14": ("vit_large_patch14_dinov2",),
}
REQUIRED = [
    f"resnet50-{method}-{data}"
    for method in ("mocov3", "barlow", "dino", "byol", "simclr", "swav")
    for data in ("hk", "in1k")
]
REQUIRED += [f"vitb16-{m}-{d}" for m in ("mocov3", "mae", "dino") for d in ("hk", "in1k")]
REQUIRED += ["resnet50-supervised-in1k", "vitb16-supervised-in1k"]
SSL4GIE_RELEASES = ["resnet50-mocov3-hk", "resnet50-barlow-hk", "vitb16-mocov3-hk", "vitb16-mae-hk"]


def test_the_zoo_has_the_required_names():
    assert set(REQUIRED) <= set(list_backbones())


@pytest.mark.parametrize("name", builtin_names())
def test_card_is_valid_and_honest(name):
    card = ssl4gie.backbone_card(name)
    parts = parse_name(name)
    assert card.name == name and card.architecture in ARCHITECTURES[parts.arch]
    assert parts.method == card.method and card.license
    assert len(card.input_size) == 3 and len(card.mean) == 3 and len(card.std) == 3
    if card.available:
        assert card.hub_id or card.url or card.origin_url
        assert card.hub_id or card.format in FORMATS  # something can load it
    else:
        assert not (card.hub_id or card.url) and card.notes
    if card.url:
        assert card.url.startswith("https://") and card.format in FORMATS
    assert WeightsCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card


@pytest.mark.parametrize("name", SSL4GIE_RELEASES)
def test_ssl4gie_releases_cite_the_paper_and_their_licence(name):
    card = ssl4gie.backbone_card(name)
    assert card.available and card.source_kind == "manual"
    assert card.license == "cc-by-nc-sa-4.0" and "2401.06278" in card.paper
    assert card.format.startswith("ssl4gie-")


def test_names_follow_the_grammar():
    assert parse_name("vitb16-mae-hk") == ("vitb16", "mae", "hk")
    for bad in ("resnet50_mocov3_hk", "resnet50-mocov3", "ResNet50-mocov3-hk", "a-b-c-d"):
        with pytest.raises(InputError, match="arch"):
            parse_name(bad)


def test_a_mistyped_name_gets_did_you_mean():
    with pytest.raises(InputError, match="did you mean 'resnet50-barlow-hk'"):
        ssl4gie.backbone_card("resnet50-barlwo-hk")


def test_a_deprecated_alias_still_resolves_with_a_warning():
    with pytest.warns(FutureWarning, match="resnet50-barlow-hk"):
        assert ssl4gie.backbone_card("resnet50-barlowtwins-hk").name == "resnet50-barlow-hk"


def test_list_filters_by_pattern_and_availability():
    assert list_backbones("vitb16-*-hk") == ["vitb16-dino-hk", "vitb16-mae-hk", "vitb16-mocov3-hk"]
    assert "resnet50-byol-hk" not in list_backbones(available=True)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"license": ""}, "license"),
        ({"url": "https://x/y.pth"}, "format"),
        ({"hub_id": "a/b", "available": False}, "available"),
        ({"available": True}, "hub_id, a url or an origin_url"),
        ({"sha256": "abc", "available": False}, "sha256"),
        ({"revision": "main", "hub_id": "a/b"}, "revision"),
    ],
)
def test_an_impossible_card_is_refused(fields, problem):
    base = {"name": "resnet18-dino-colon", "architecture": "resnet18", "method": "dino"}
    with pytest.raises(InputError, match=problem):
        WeightsCard(**{"data": "colon", "license": "mit", "hub_id": None, **base, **fields})


def test_register_backbone_adds_a_name_once():
    card = WeightsCard("resnet18-dino-colon", "resnet18", "dino", "colon", license="mit")
    ssl4gie.register_backbone(card)
    assert ssl4gie.backbone_card("resnet18-dino-colon") is card
    with pytest.raises(InputError, match="taken"):
        ssl4gie.register_backbone(card)


def test_a_lab_index_registers_its_family(tmp_path):
    index = tmp_path / "zoo.toml"
    index.write_text(
        '[architectures.resnet18]\narchitecture = "resnet18"\n'
        '[aliases]\nresnet18-dino-colon1 = "resnet18-dino-colon"\n'
        '[backbones.resnet18-dino-colon]\nmethod = "dino"\nlicense = "cc-by-4.0"\n'
        'hub_id = "lab/resnet18-dino-colon"\navailable = true\n'
    )
    assert load_index(index) == ["resnet18-dino-colon"]
    card = ssl4gie.backbone_card("resnet18-dino-colon")
    assert card.architecture == "resnet18" and card.data == "colon"
    with pytest.warns(FutureWarning):
        ssl4gie.backbone_card("resnet18-dino-colon1")
    (tmp_path / "zoo.json").write_text(json.dumps({"backbones": {"x-y-z": {"license": "mit"}}}))
    with pytest.raises(InputError, match="no architecture"):
        load_index(tmp_path / "zoo.json")


def test_importing_ssl4gie_does_not_import_torch():
    code = "import ssl4gie, sys; ssl4gie.list_backbones(); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    assert set(ssl4gie.__all__) >= {"load_backbone", "load_transforms", "export_backbone"}
