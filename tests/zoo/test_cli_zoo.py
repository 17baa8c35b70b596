"""``ssl4gie zoo``: list, info, export, convert, publish (dry run, and for real with HF_TOKEN),
and the README's zoo table kept in sync with the registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch

from ssl4gie.cli import main
from ssl4gie.zoo.hub import commit_operations
from ssl4gie.zoo.readme import with_table

from .conftest import features, lightning_checkpoint

README = Path(__file__).parents[2] / "README.md"


def test_list_prints_a_table_of_the_zoo(capsys):
    assert main(["zoo", "list", "resnet50-*-in1k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "name",
        "architecture",
        "method",
        "data",
        "licence",
        "available",
        "source",
    ]
    row = next(line for line in lines if line.startswith("resnet50-barlow-in1k"))
    assert row.split()[1:5] == ["resnet50", "barlow", "ImageNet-1k", "mit"]
    assert len(lines) == 2 + 7


def test_info_and_a_mistyped_name(capsys):
    assert main(["zoo", "info", "vitb16-mae-in1k"]) == 0
    assert (
        "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth"
        in capsys.readouterr().out
    )
    assert main(["zoo", "info", "vitb16-mae-inik"]) == 2
    assert "did you mean 'vitb16-mae-in1k'" in capsys.readouterr().err


def test_export_then_publish_dry_run_lists_the_files(tmp_path, capsys):
    checkpoint, model = lightning_checkpoint("resnet18")
    torch.save(checkpoint, tmp_path / "last.ckpt")
    out = tmp_path / "resnet18-byol-hk"
    assert main(["zoo", "export", str(tmp_path / "last.ckpt"), str(out), "--name", out.name]) == 0
    assert "projector.* (1)" in capsys.readouterr().out
    assert torch.equal(
        features(timm.create_model(f"local-dir:{out}", pretrained=True)), features(model)
    )
    assert main(["zoo", "publish", str(out), "lab/resnet18-byol-hk", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    sent = [operation.path_in_repo for operation in commit_operations(out)]
    assert sent == ["README.md", "config.json", "model.safetensors"]
    assert all(name in printed for name in sent) and "would send 3 files" in printed
    assert main(["zoo", "export", str(tmp_path / "last.ckpt"), str(out)]) == 2  # not empty


def test_convert_names_its_format(tmp_path, capsys):
    model = timm.create_model("resnet18", num_classes=0).eval()
    torch.save(
        {"model": {f"module.backbone.{k}": v for k, v in model.state_dict().items()}},
        tmp_path / "bt.pth",
    )
    out = tmp_path / "bt"
    assert (
        main(["zoo", "convert", "--format", "barlowtwins", str(tmp_path / "bt.pth"), str(out)]) == 0
    )
    assert torch.equal(
        features(timm.create_model(f"local-dir:{out}", pretrained=True)), features(model)
    )
    assert main(["zoo", "convert", "--format", "barlow", str(tmp_path / "bt.pth"), str(out)]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_readme_zoo_table_matches_the_registry():
    text = README.read_text(encoding="utf-8")
    assert with_table(text) == text, "run: python -m ssl4gie.zoo.readme"


@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="publishing for real needs HF_TOKEN")
def test_publish_for_real(resnet18_export, monkeypatch, capsys):
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    api = HfApi(token=os.environ["HF_TOKEN"])
    repo_id = f"{api.whoami()['name']}/ssl4gie-test-{os.getpid()}"
    try:
        assert main(["zoo", "publish", str(resnet18_export[0]), repo_id, "--private"]) == 0
        assert "/commit/" in capsys.readouterr().out
        assert sorted(api.list_repo_files(repo_id)) == [
            "README.md",
            "config.json",
            "model.safetensors",
        ]
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def test_the_convert_help_and_the_docs_name_every_format():
    import re
    from pathlib import Path

    from ssl4gie.cli.zoo import build_parser
    from ssl4gie.zoo.convert import FORMATS

    convert = build_parser()._subparsers._group_actions[0].choices["convert"]
    (option,) = [action for action in convert._actions if "--format" in action.option_strings]
    in_help = re.findall(r"[a-z0-9-]+", option.help.replace(" or ", ", "))
    docs = (Path(__file__).parents[2] / "docs" / "publishing.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (`[a-z].*?`) \|", docs, flags=re.MULTILINE)  # not the header
    in_docs = [name for row in rows for name in re.findall(r"`([a-z0-9-]+)`", row)]
    assert sorted(in_help) == sorted(FORMATS) and sorted(in_docs) == sorted(FORMATS)
