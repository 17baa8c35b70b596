"""``ssl4gie pretrain``: every shipped config through the real command, DDP, kill and resume.

Each config runs in a subprocess as a user would run it, shrunk with command-line overrides to
synthetic data and a tiny backbone, so a config that drifts from the code fails here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import ssl4gie

CONFIGS = Path(ssl4gie.__file__).parent / "configs"
CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
       "--trainer.precision", "32-true"]  # fmt: skip
MULTI_CROP = {"class_path": "ssl4gie.transforms.MultiCrop",
              "init_args": {"global_size": 32, "local_size": 16, "num_local": 2}}  # fmt: skip
ONE_CROP = {"class_path": "ssl4gie.transforms.MaskedViewCrop", "init_args": {"size": 32}}
TWO_VIEWS = {"class_path": "ssl4gie.transforms.TwoViews", "init_args": {"size": 32}}
TINY = {  # per method class: the smallest heads its arguments allow, and 32 px views
    "MoCoV3": {"mlp_dim": 32, "dim": 16, "views": TWO_VIEWS},
    "BYOL": {"mlp_dim": 32, "dim": 16, "views": TWO_VIEWS},
    "SimCLR": {"mlp_dim": 32, "dim": 16, "views": TWO_VIEWS},
    "BarlowTwins": {"projector_dims": [32, 32], "views": TWO_VIEWS},
    "DINO": {"out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16, "views": MULTI_CROP},
    "SwAV": {"hidden_dim": 32, "dim": 16, "num_prototypes": 16, "views": MULTI_CROP},
    "MAE": {"decoder_width": 32, "decoder_depth": 1, "decoder_heads": 2, "views": ONE_CROP},
    "MaskedImageModeling": {"mask_patch_size": 16, "views": ONE_CROP},
}


def ssl4gie_command(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ssl4gie.cli", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def shrink(config: Path, data_root: Path) -> list[str]:
    """Overrides that make ``config`` run in seconds on synthetic data and a CPU."""
    model = yaml.safe_load(config.read_text())["model"]
    arguments = model["init_args"]
    transformer = arguments["backbone"].startswith(("vit", "swin"))
    tiny = {
        "backbone": "vit_tiny_patch16_224" if transformer else "resnet18",
        "backbone_kwargs": {"img_size": 32} if transformer else None,
        **TINY[model["class_path"].rsplit(".", 1)[1]],
    }
    overrides = []
    for key, value in tiny.items():
        overrides += [
            f"--model.init_args.{key}",
            value if isinstance(value, str) else json.dumps(value),
        ]
    sources = [{"layout": "hyperkvasir-unlabeled", "root": str(data_root), "options": {}}]
    data = ["--data.max_size", "48", "--data.batch_size", "4", "--data.num_workers", "0"]
    return [*overrides, "--data.sources", json.dumps(sources), *data]


PRETRAIN_CONFIGS = sorted(CONFIGS.glob("pretrain/*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("config", PRETRAIN_CONFIGS, ids=lambda path: path.stem)
def test_every_pretrain_config_runs(config, synthetic, tmp_path):
    root = synthetic("hyperkvasir-unlabeled", n=16)
    result = ssl4gie_command(  # --verbose: the quiet console hides the line that proves 2 steps
        "--verbose", "pretrain", "fit", "--config", f"pretrain/{config.stem}", *CPU,
        "--trainer.fast_dev_run", "2", *shrink(config, root), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "`Trainer.fit` stopped: `max_steps=2` reached" in result.stdout + result.stderr


BARLOW = CONFIGS / "pretrain" / "barlow_twins_resnet50_hk.yaml"


def pretrain_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "fit", "--config", str(BARLOW), *shrink(BARLOW, root),
            "--trainer.default_root_dir", str(out), "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", *extra]  # fmt: skip


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_cpu_ddp_pretrains_then_finetunes_from_its_checkpoint(synthetic, tmp_path):
    root = synthetic("hyperkvasir-unlabeled", n=16)
    argv = pretrain_argv(root, tmp_path / "run", "--trainer.accelerator", "cpu",
                         "--trainer.devices", "2", "--trainer.strategy", "ddp",
                         "--trainer.precision", "32-true", "--trainer.max_steps", "2")  # fmt: skip
    result = ssl4gie_command(*argv, cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stdout + result.stderr
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["global_step"] == 2
    model = ssl4gie.load_backbone(checkpoint)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, model.num_features)

    labeled = synthetic("hyperkvasir-labeled", n=120)
    finetune = ssl4gie_command(
        "finetune", "fit", "--config", "finetune/landmarks", "--trainer.accelerator", "cpu",
        "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.precision", "32-true",
        "--trainer.max_steps", "2", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path / "ft"), "--model.init_args.backbone",
        str(checkpoint), "--data.init_args.root", str(labeled), "--data.init_args.size", "32",
        "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
        cwd=tmp_path, timeout=400,
    )  # fmt: skip
    assert finetune.returncode == 0, finetune.stderr[-3000:]
    assert "validation metrics" in finetune.stdout  # printed once, by rank 0
    assert finetune.stdout.count("validation metrics") == 1


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_step_count(synthetic, tmp_path):
    """SIGKILL after the first checkpoint, restart with --ckpt_path last (default loggers, so
    the restart logs into a new version folder): the same step count as an unbroken run."""
    root = synthetic("hyperkvasir-unlabeled", n=16)  # 4 steps per epoch at batch 4
    argv = ["pretrain", "fit", "--config", str(BARLOW), *shrink(BARLOW, root), *CPU,
            "--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "ssl4gie.cli", *argv], cwd=killed,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    first = killed / "runs" / "pretrain" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not first.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 0 < torch.load(first, weights_only=True)["global_step"] < 16

    resumed = ssl4gie_command(*argv, "--ckpt_path", "last", cwd=killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    restored = f"Restoring states from the checkpoint path at {first.relative_to(killed)}"
    assert restored in resumed.stdout + resumed.stderr  # resumed, not restarted from scratch
    whole.mkdir()
    assert ssl4gie_command(*argv, cwd=whole).returncode == 0
    steps = [
        torch.load(folder / "runs/pretrain" / version / "checkpoints/last.ckpt",
                   weights_only=True)["global_step"]
        for folder, version in ((killed, "version_1"), (whole, "version_0"))
    ]  # fmt: skip
    assert steps == [16, 16]


def test_bad_input_is_one_line_and_exit_2(synthetic, tmp_path):
    root = synthetic("hyperkvasir-unlabeled", n=16)
    base = ["pretrain", "fit", "--config", "pretrain/barlow_twins_resnet50_hk", *CPU]
    cases = {
        "--model.init_args.backbone=resnet50-barlow-hkk": "did you mean 'resnet50-barlow-hk'",
        "--data.sources=[{layout: folder, root: /no/such/folder}]": "does not exist",
        "--data.batch_size=many": "Expected a <class 'int'>",
        "--model.init_args.bakbone=resnet18": "Option 'bakbone' is not accepted",
    }
    data = ["--data.sources", f"[{{layout: hyperkvasir-unlabeled, root: {root}}}]"]
    for override, message in cases.items():
        extra = [override] if override.startswith("--data.sources") else [*data, override]
        result = ssl4gie_command(*base, *extra, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, (override, result.stderr[-2000:])
        assert message in result.stderr, (override, result.stderr[-2000:])
        assert "Traceback" not in result.stderr


FINETUNE_CONFIGS = sorted(CONFIGS.glob("finetune/*.yaml"))
FINETUNE_DATA = {  # the synthetic layout (and frame count) each task's config reads
    "ClassificationDataModule": ("hyperkvasir-labeled", 120),
    "SegmentationDataModule": (None, 40),  # the config's own layout
    "DetectionDataModule": ("kvasir-seg", 40),
    "DepthDataModule": ("c3vd", 88),  # 22 videos: the config's val/test videos exist
}
TINY_TASK = {"DetectionTask": {"rois_per_image": 16}}


def shrink_finetune(config: Path, synthetic) -> list[str]:
    spec = yaml.safe_load(config.read_text())
    data_class = spec["data"]["class_path"].rsplit(".", 1)[1]
    layout, n = FINETUNE_DATA[data_class]
    root = synthetic(layout or spec["data"]["init_args"]["layout"], n=n)
    model_class = spec["model"]["class_path"].rsplit(".", 1)[1]
    overrides = {"backbone": "resnet18", **TINY_TASK.get(model_class, {})}
    argv = []
    for key, value in overrides.items():
        argv += [f"--model.init_args.{key}", str(value)]
    return [*argv, "--data.init_args.root", str(root), "--data.init_args.size", "64",
            "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("config", FINETUNE_CONFIGS, ids=lambda path: path.stem)
def test_every_finetune_config_runs(config, synthetic, tmp_path):
    result = ssl4gie_command(
        "finetune", "fit", "--config", f"finetune/{config.stem}", *CPU,
        "--trainer.fast_dev_run", "1", *shrink_finetune(config, synthetic), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation metrics" in result.stdout
