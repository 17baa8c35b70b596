"""The README's main job (``ssl4gie demo``), shrunk to a minute, run as a user runs it."""

import csv
import re
import subprocess
import sys

import ssl4gie
from ssl4gie.cli import main
from ssl4gie.cli.demo import DEMO_NAME, PRESETS, Cell, make_data, publish_locally, reading

LIBRARY_LINE = re.compile(r"(site|dist)-packages[/\\](?!ssl4gie)|💡|Warning: ")


def test_demo_smoke_runs_every_step_quietly_and_reports_measured_numbers(tmp_path):
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "ssl4gie.cli", "demo", "--smoke", "--out", str(out)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if LIBRARY_LINE.search(line)] == []  # no library notice
    assert [line[:5] for line in lines if re.match(r"\[\d/4\] ", line)] == [
        "[1/4]", "[2/4]", "[3/4]", "[4/4]"
    ]  # fmt: skip
    rows = [line.split() for line in lines if re.match(r" *\d+% ", line)]
    assert [row[0] for row in rows] == ["100%", "50%"]
    for _, pretrained, _, _, random, _, _, difference in rows:
        assert 0.0 <= float(pretrained) <= 1.0 and 0.0 <= float(random) <= 1.0
        assert abs(float(pretrained) - float(random) - float(difference)) < 2e-3
    assert any(line.startswith("One seed per cell") for line in lines)
    for png in ("views", "pretrain_loss", "finetune_curves", "segmentation_predictions"):
        assert (out / f"{png}.png").stat().st_size > 1000
    with open(out / "logs" / "pretrain" / "metrics.csv", newline="") as handle:
        assert any(row.get("train/loss_step") for row in csv.DictReader(handle))
    name = publish_locally(out, out / "pretrain" / "last.ckpt", PRESETS["smoke"])
    assert name == DEMO_NAME and DEMO_NAME in ssl4gie.list_backbones()
    assert ssl4gie.load_backbone(DEMO_NAME).num_features == 512


def test_reading_says_gain_loss_and_no_gain_by_the_seeds_spread():
    results = {
        0.1: {"pretrained": Cell((0.60, 0.64)), "random": Cell((0.40, 0.44))},
        0.3: {"pretrained": Cell((0.5, 0.5)), "random": Cell((0.9, 0.94))},
        1.0: {"pretrained": Cell((0.70, 0.74)), "random": Cell((0.71, 0.77))},
    }
    # differences 0.20 (spread 0.02 + 0.02), -0.42 (0 + 0.02), -0.02 (0.02 + 0.03)
    assert reading(results) == (
        "Pretraining helps with 10% of the labels (+0.200 Dice); random initialisation does "
        "better with 30% of the labels (-0.420 Dice); no gain here with 100% of the labels "
        "(-0.020 Dice) (a difference within the seeds' spread is no gain)."
    )
    same = {1.0: {"pretrained": Cell((0.7, 0.8)), "random": Cell((0.7, 0.8))}}
    assert reading(same).startswith("No gain here with 100% of the labels (+0.000 Dice)")


def test_reading_refuses_to_judge_one_seed():
    one = {0.1: {"pretrained": Cell((0.9,)), "random": Cell((0.1,))}}
    assert reading(one).startswith("One seed per cell")


def test_a_task_keeps_no_checkpoint_when_the_trainer_has_checkpointing_off(tmp_path):
    """The demo's fine-tunes report their final weights: no best/last checkpoint per epoch."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ssl4gie.tasks import SegmentationTask

    task = SegmentationTask("resnet18", decoder="fpn")
    for enabled, expected in ((False, []), (True, [ModelCheckpoint])):
        task.trainer = L.Trainer(
            enable_checkpointing=enabled, logger=False, default_root_dir=tmp_path
        )
        assert [type(callback) for callback in task.configure_callbacks()] == expected


def test_demo_reuses_its_data(tmp_path):
    roots = make_data(tmp_path, PRESETS["smoke"], seed=0)
    stamp = (roots["kvasir-seg"] / "kavsir_bboxes.json").stat().st_mtime_ns
    assert make_data(tmp_path, PRESETS["smoke"], seed=0) == roots
    assert (roots["kvasir-seg"] / "kavsir_bboxes.json").stat().st_mtime_ns == stamp


def test_demo_rejects_two_sizes(capsys):
    assert main(["demo", "--smoke", "--full"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
