"""The README's main job (``ssl4gie demo``), shrunk to a minute."""

import csv

import ssl4gie
from ssl4gie.cli import main
from ssl4gie.cli.demo import DEMO_NAME, PRESETS, make_data


def test_demo_smoke_runs_every_step_and_reports_measured_numbers(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.startswith(("classif", "segm"))]
    assert {(task, init) for task, init, *_ in rows} == {
        (task, init) for task in ("classification", "segmentation")
        for init in ("pretrained", "random")
    }  # fmt: skip
    assert all(0.0 <= float(value) <= 1.0 for *_, value in rows)
    for png in ("views", "pretrain_loss", "finetune_curves", "segmentation_predictions"):
        assert (out / f"{png}.png").stat().st_size > 1000
    with open(out / "logs" / "pretrain" / "metrics.csv", newline="") as handle:
        assert any(row.get("train/loss_step") for row in csv.DictReader(handle))
    assert DEMO_NAME in ssl4gie.list_backbones()  # exported and registered by name
    assert ssl4gie.load_backbone(DEMO_NAME).num_features == 512


def test_demo_reuses_its_data(tmp_path):
    roots = make_data(tmp_path, PRESETS["smoke"], seed=0)
    stamp = (roots["kvasir-seg"] / "kavsir_bboxes.json").stat().st_mtime_ns
    assert make_data(tmp_path, PRESETS["smoke"], seed=0) == roots
    assert (roots["kvasir-seg"] / "kavsir_bboxes.json").stat().st_mtime_ns == stamp


def test_demo_rejects_two_sizes(capsys):
    assert main(["demo", "--smoke", "--full"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
