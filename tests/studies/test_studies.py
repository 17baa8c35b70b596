"""Every study end to end on synthetic data with timm's test models: cells, resume, failures,
and the report folder (tables and figures)."""

import csv
import json

import pytest

from ssl4gie.cli import main
from ssl4gie.studies import load_config, run_study
from ssl4gie.zoo import export_backbone
from ssl4gie.zoo.convert import Converted

pytestmark = pytest.mark.slow
SILENT = {"echo": lambda line: None}


def report(config) -> tuple[str, list[dict]]:
    folder = config.out_dir / "report"
    with open(folder / "results.csv") as handle:
        return (folder / "README.md").read_text(), list(csv.DictReader(handle))


def test_ssl4gie_table_resumes_and_renders(study_files):
    path = study_files(
        "ssl4gie-table",
        seeds=[0, 1],
        backbones={
            "resnet": {"backbone": "test_resnet"},
            "convnext": {"backbone": "test_convnext"},
        },
    )
    config = load_config(path)
    outcome = run_study(config, **SILENT)
    assert len(outcome.ran) == 4 and not outcome.failed and not outcome.skipped
    text, rows = report(config)
    assert len(rows) == 4 and {r["metric"] for r in rows} == {"test_f1"}
    assert "| resnet |" in text and "| convnext |" in text and "**" in text
    assert "paired t-test over 2 seeds" in text
    assert (config.out_dir / "report" / "comparison.png").stat().st_size > 1000
    assert not list(config.out_dir.glob("cells/*/checkpoints/*.ckpt"))  # deleted when done

    again = run_study(load_config(path), **SILENT)
    assert again.ran == [] and len(again.skipped) == 4

    # a study killed inside a cell: the cell has a folder but no result.json
    stopped = config.out_dir / "cells" / outcome.ran[-1]
    (stopped / "result.json").unlink()
    resumed = run_study(load_config(path), **SILENT)
    assert resumed.ran == [stopped.name] and len(resumed.skipped) == 3


def test_a_failed_cell_keeps_the_others(study_files, capsys):
    path = study_files(
        "ssl4gie-table",
        backbones={
            "good": {"backbone": "test_resnet"},
            "broken": {"backbone": "test_resnet", "backbone_kwargs": {"no_such_argument": 1}},
        },
    )
    assert main(["study", "ssl4gie-table", "--config", path]) == 1
    out = capsys.readouterr().out
    assert "1 cells run" in out and "1 failed" in out and "broken" in out
    config = load_config(path)
    assert "no_such_argument" in next(config.out_dir.glob("cells/*broken*/error.txt")).read_text()
    text, rows = report(config)
    assert [r["backbone"] for r in rows] == ["good"] and "| broken | – |" in text


def test_label_efficiency_over_nested_fractions(study_files):
    path = study_files(
        "label-efficiency",
        seeds=[0, 1],
        label_fractions=[0.25, None],
        backbones={"resnet": {"backbone": "test_resnet"}},
    )
    config = load_config(path)
    assert not run_study(config, **SILENT).failed
    text, rows = report(config)
    images = {r["fraction"]: int(r["train_images"]) for r in rows}
    assert images["0.25"] < images[""]  # all labels: fraction None, empty in the CSV
    assert "25% (n=" in text and "100% (n=" in text
    assert (config.out_dir / "report" / "label_efficiency.png").is_file()


@pytest.fixture
def exported_backbone(tmp_path):
    """An export folder of a test_resnet, standing in for ImageNet SSL weights."""
    import timm

    model = timm.create_model("test_resnet", num_classes=0)
    converted = Converted(model.state_dict(), "test_resnet", {}, [], "timm")
    return str(export_backbone(converted, tmp_path / "imagenet-ssl"))


def test_convergence_with_two_stage_pretraining(study_files, exported_backbone):
    simclr = str(study_files.folder / "simclr.yaml")
    path = study_files(
        "convergence",
        trainer={"max_epochs": 3},
        baseline="imagenet",
        backbones={
            "imagenet": {"backbone": exported_backbone},
            "two-stage": {"backbone": exported_backbone, "pretrain": {"config": simclr}},
        },
    )
    config = load_config(path)
    assert not run_study(config, **SILENT).failed
    export = config.out_dir / "pretrain" / "two-stage" / "backbone"
    assert (export / "model.safetensors").is_file()
    text, _ = report(config)
    assert "epochs to 95%" in text and "× faster" in text
    result = json.loads(next(config.out_dir.glob("cells/*two-stage*/result.json")).read_text())
    assert [epoch for epoch, _, _ in result["history"]] == [0, 1, 2]
    assert (config.out_dir / "report" / "convergence.png").is_file()


def test_linear_vs_finetune_reports_auroc(study_files):
    tasks = {
        "landmarks": {"config": str(study_files.folder / "landmarks.yaml"), "metric": "test_auroc"}
    }
    path = study_files(
        "linear-vs-finetune",
        tasks=tasks,
        modes=["linear", "finetune"],
        label_fractions=[0.5, 1.0],
        backbones={"resnet": {"backbone": "test_resnet"}},
    )
    config = load_config(path)
    assert not run_study(config, **SILENT).failed
    text, rows = report(config)
    assert len(rows) == 4 and {r["metric"] for r in rows} == {"test_auroc"}
    assert "| initialisation | linear 50% | linear 100% | finetune 50% | finetune 100% |" in text
    linear = json.loads(next(config.out_dir.glob("cells/*linear__all*/result.json")).read_text())
    assert linear["cell"]["mode"] == "linear"


def test_dvme_against_its_members(study_files):
    path = study_files(
        "dvme",
        modes=["linear"],
        backbones={
            "resnet": {"backbone": "test_resnet"},
            "convnext": {"backbone": "test_convnext"},
            "dvme": {"members": ["resnet", "convnext"]},
        },
    )
    config = load_config(path)
    assert not run_study(config, **SILENT).failed
    text, rows = report(config)
    assert [r["backbone"] for r in rows] == ["resnet", "convnext", "dvme"]
    assert "| dvme |" in text


def test_wild_vs_self_shifts_and_cka(study_files):
    simclr = str(study_files.folder / "simclr.yaml")
    path = study_files(
        "wild-vs-self",
        tasks={"polyps": {"config": str(study_files.folder / "polyps.yaml")}},
        trainer={"max_epochs": 1},
        shifts={"blur": [2, 5], "fov": [3]},
        cka=True,
        backbones={
            "wild": {"pretrain": {"config": simclr}},
            "self": {"pretrain": {"config": simclr, "data": "task"}},
        },
    )
    config = load_config(path)
    assert not run_study(config, **SILENT).failed
    assert (config.out_dir / "pretrain" / "self__polyps" / "backbone").is_dir()
    result = json.loads(next(config.out_dir.glob("cells/*self*/result.json")).read_text())
    assert set(result["shifts"]) == {"blur", "fov"} and set(result["shifts"]["blur"]) == {"2", "5"}
    assert len(result["cka"]) == 5 and all(0.0 <= v <= 1.0 + 1e-6 for v in result["cka"])
    text, _ = report(config)
    assert "| initialisation | clean | blur 2 | blur 5 | fov 3 |" in text
    assert "linear CKA per block" in text
    for png in ("robustness.png", "cka.png"):
        assert (config.out_dir / "report" / png).is_file()
