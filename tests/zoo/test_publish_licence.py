"""Publishing is licence-aware: weights whose card forbids sharing them (no-derivatives, a
data-use agreement, an unknown licence) are refused, naming the licence, unless the user states a
permission, which the model card sent then records."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

import ssl4gie
from ssl4gie.cli import main
from ssl4gie.zoo.cards import WeightsCard, publish_refusal
from ssl4gie.zoo.convert import convert_file
from ssl4gie.zoo.export import export_backbone
from ssl4gie.zoo.hub import commit_operations

from .conftest import lightning_checkpoint


def _card(**fields) -> WeightsCard:
    return WeightsCard(
        name="resnet18-dino-x", architecture="resnet18", method="dino", data="x", **fields
    )


@pytest.mark.parametrize(
    ("licence", "access", "refused"),
    [
        ("mit", None, False),
        ("apache-2.0", None, False),
        ("cc-by-nc-sa-4.0", None, False),
        ("cc-by-nc-nd-4.0", None, True),
        ("cc-by-nd-4.0", None, True),
        ("dinov3-license", None, True),
        ("unknown", None, True),
        ("cc-by-4.0", "gated: a data-use agreement", True),
    ],
)
def test_which_licences_may_be_published_again(licence, access, refused):
    reason = publish_refusal(_card(license=licence, access=access))
    assert (reason is not None) == refused
    if refused:
        assert (access or licence) in reason


def test_own_weights_without_a_licence_may_be_published():
    assert publish_refusal(None, own_weights=True) is None
    assert publish_refusal(_card(license="unknown"), own_weights=True) is None
    assert publish_refusal(None) is not None
    assert "cc-by-nc-nd-4.0" in publish_refusal(_card(license="cc-by-nc-nd-4.0"), own_weights=True)


@pytest.fixture(scope="module")
def gastronet_export(tmp_path_factory):
    """Converted GastroNet-5M ResNet-50 weights (a stand-in) under the zoo's card."""
    tmp_path = tmp_path_factory.mktemp("gastronet")
    state = {k: v for k, v in torchvision.models.resnet50().state_dict().items() if "fc." not in k}
    torch.save(state, tmp_path / "RN50_GastroNet-5M_DINOv1.pth")
    converted = convert_file(tmp_path / "RN50_GastroNet-5M_DINOv1.pth", "gastronet")
    card = ssl4gie.backbone_card("resnet50-dino-gastronet")
    return export_backbone(converted, tmp_path / "resnet50-dino-gastronet", card=card)


def test_publishing_converted_nd_weights_is_refused(gastronet_export, capsys):
    argv = ["zoo", "publish", str(gastronet_export), "lab/gastronet", "--dry-run"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "Data Use Agreement" in error and "--i-have-permission" in error
    assert len(error.strip().splitlines()) == 1


def test_permission_is_recorded_in_the_model_card_sent(gastronet_export, capsys):
    reason = "written permission of the GastroNet-5M consortium, 2026-12-01"
    argv = ["zoo", "publish", str(gastronet_export), "lab/gastronet", "--dry-run"]
    assert main([*argv, "--i-have-permission", reason]) == 0
    assert "would send 3 files" in capsys.readouterr().out
    sent = {op.path_in_repo: op for op in commit_operations(gastronet_export, reason)}
    readme = sent["README.md"].path_or_fileobj.decode()
    assert "## Permission to publish" in readme and reason in readme
    assert "cc-by-nc-nd-4.0" in readme  # the card's licence stays in the metadata
    assert reason not in (gastronet_export / "README.md").read_text()  # the folder is unchanged


def test_a_converted_release_without_a_card_is_refused(tmp_path, capsys):
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "release.pth")
    out = tmp_path / "out"
    assert (
        main(["zoo", "convert", "--format", "torchvision", str(tmp_path / "release.pth"), str(out)])
        == 0
    )
    capsys.readouterr()
    assert main(["zoo", "publish", str(out), "lab/x", "--dry-run"]) == 2
    assert "no card" in capsys.readouterr().err


def test_own_pretraining_publishes_without_permission(tmp_path):
    checkpoint, _ = lightning_checkpoint("resnet18")
    torch.save(checkpoint, tmp_path / "last.ckpt")
    out = export_backbone(tmp_path / "last.ckpt", tmp_path / "mine", name="resnet18-byol-colon")
    assert main(["zoo", "publish", str(out), "lab/mine", "--dry-run"]) == 0
