"""The console filters of the ``ssl4gie`` command (``ssl4gie/cli/_quiet.py``) and ``--verbose``.

Each known library notice is raised here as its library raises it (same message, category and
module or logger) and must vanish; the same text from another module or category, and a
warning of ours, must still show. Two subprocess runs check the whole command.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ssl4gie.cli._quiet import LOG_NOTICES, WARNINGS, _DropMessages, quiet

# one real message per filter, as the library words it (lightning 2.6, torch 2.9, torchmetrics)
SAMPLES = {
    "lightning.pytorch.utilities._pytree": "`isinstance(treespec, LeafSpec)` is deprecated, use "
    "`isinstance(treespec, TreeSpec) and treespec.is_leaf()` instead.",
    "lightning.pytorch.trainer.configuration_validator": "You defined a `validation_step` but "
    "have no `val_dataloader`. Skipping val loop.",
    "lightning.pytorch.loops.fit_loop": "Found 94 module(s) in eval mode at the start of "
    "training. This may lead to unexpected behavior during training.",
    "torchmetrics.utilities.prints": "No positive samples in targets, true positive value "
    "should be meaningless. Returning zero tensor in true positive score",
}
LOG_SAMPLES = [
    "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]",
    "The following callbacks returned in `LightningModule.configure_callbacks` will override "
    "existing callbacks passed to Trainer: ModelCheckpoint",
    "GPU available: False, used: False",
    "`Trainer.fit` stopped: `max_epochs=8` reached.",
]


@pytest.fixture
def quiet_here():
    """``quiet()`` inside a warnings context; the logger filters removed afterwards."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        quiet()
        yield shown
    for name, _ in LOG_NOTICES:
        logger = logging.getLogger(name)
        for found in [f for f in logger.filters if isinstance(f, _DropMessages)]:
            logger.removeFilter(found)


def warn_from(module: str, message: str, category: type[Warning]) -> None:
    warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module=module)


def test_every_filter_has_a_sample():
    assert {module.replace("\\", "") for _, _, module in WARNINGS} == set(SAMPLES)
    assert all(any(re.match(p, s) for _, p in LOG_NOTICES) for s in LOG_SAMPLES)


def test_known_notices_are_hidden_and_others_show(quiet_here):
    categories = {module.replace("\\", ""): category for _, category, module in WARNINGS}
    for module, message in SAMPLES.items():
        warn_from(module, message, categories[module])
    assert quiet_here == []
    warn_from("ssl4gie.methods.base", SAMPLES["torchmetrics.utilities.prints"], UserWarning)
    warn_from("torchmetrics.utilities.prints", "No positive samples", DeprecationWarning)
    warn_from("torchmetrics.utilities.prints", "Some other metric problem", UserWarning)
    warn_from("ssl4gie.methods.base", "8 frame(s) this epoch were smaller", UserWarning)
    assert len(quiet_here) == 4  # other module, other category, other message, ours


def test_known_log_lines_are_dropped_and_others_kept(quiet_here, caplog):
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger=logger.name):
        for message in LOG_SAMPLES:
            logger.info(message)
        logger.info(LOG_SAMPLES[1].replace("ModelCheckpoint", "EarlyStopping"))
        logger.info("Restoring states from the checkpoint path at last.ckpt")
        logging.getLogger("some.other").info("GPU available: True")
    kept = [record.getMessage() for record in caplog.records]
    assert kept == [
        "The following callbacks returned in `LightningModule.configure_callbacks` will "
        "override existing callbacks passed to Trainer: EarlyStopping",
        "Restoring states from the checkpoint path at last.ckpt",
        "GPU available: True",
    ]


@pytest.mark.parametrize("frozen", [False, True])
def test_a_task_sets_its_backbones_mode_whatever_mode_it_was_loaded_in(monkeypatch, frozen):
    """Why hiding Lightning's 'Found N module(s) in eval mode' is safe: load_backbone hands out
    eval-mode models (zoo names, folders), and the task must fine-tune batch norm."""
    import timm

    from ssl4gie.tasks import ClassificationTask, base

    loaded = lambda name, pretrained=None, **kwargs: timm.create_model(  # noqa: E731
        "resnet18", num_classes=0, **kwargs
    ).eval()
    monkeypatch.setattr(base, "create_backbone", loaded)
    task = ClassificationTask(
        "some-zoo-name", num_classes=3, mode="linear" if frozen else "finetune"
    )
    modes = {module.training for module in task.backbone.modules()}
    assert modes == {not frozen} and task.head.training
    assert all(p.requires_grad != frozen for p in task.backbone.parameters())


LIBRARY_LINE = re.compile(r"(site|dist)-packages[/\\](?!ssl4gie)|💡|Warning: ")


def fast_dev_fit(tmp_path: Path, synthetic, *flags: str) -> subprocess.CompletedProcess:
    """``ssl4gie [flags] finetune fit`` of a ResNet-18 segmentation for one batch, in an
    empty working folder."""
    root = synthetic("kvasir-seg", n=40)
    work = tmp_path / "work"
    work.mkdir()
    argv = [*flags, "finetune", "fit", "--config", "finetune/polyp_segmentation_kvasir",
            "--model.init_args.backbone", "resnet18", "--data.init_args.root", str(root),
            "--data.init_args.size", "64", "--data.init_args.batch_size", "4",
            "--data.init_args.num_workers", "0", "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.precision", "32-true",
            "--trainer.fast_dev_run", "true"]  # fmt: skip
    command = [sys.executable, "-m", "ssl4gie.cli", *argv]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_cli_fit_is_quiet_and_a_fast_dev_run_writes_nothing(tmp_path, synthetic):
    result = fast_dev_fit(tmp_path, synthetic)
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if LIBRARY_LINE.search(line)] == []
    assert "validation metrics" in result.stdout
    assert list((tmp_path / "work").iterdir()) == []  # no runs/, convergence.json, pictures


@pytest.mark.slow
def test_cli_verbose_shows_the_library_notices(tmp_path, synthetic):
    result = fast_dev_fit(tmp_path, synthetic, "--verbose")
    printed = result.stdout + result.stderr
    assert "💡 Tip" in printed and "LeafSpec" in printed
