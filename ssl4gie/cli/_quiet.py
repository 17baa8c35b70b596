"""The one home of the console filters of the ``ssl4gie`` command (``--verbose`` skips them).

Each filter is narrow: a message pattern, the category and the module (warnings) or logger
(Lightning's info lines) that emits it, so that any other warning, ours or a library's, still
shows. Each entry says why hiding it is safe. Every pattern is anchored at the message start.
"""

from __future__ import annotations

import logging
import re
import warnings

WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # (message pattern, category, module pattern of the line the warning names)
    # Lightning 2.5+ through torch 2.9's pytree: a deprecation inside Lightning itself, nothing
    # a user can change (Lightning-AI/pytorch-lightning, lightning/pytorch/utilities/_pytree.py).
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning,
     r"lightning\.pytorch\.utilities\._pytree"),
    # PretrainDataModule without a probe source has no validation loop by design; the method
    # keeps its validation_step for the probe (Lightning then skips the loop, as it says).
    (r"You defined a `validation_step` but have no `val_dataloader`", UserWarning,
     r"lightning\.pytorch\.trainer\.configuration_validator"),
    # Lightning keeps each module's train/eval mode at fit start; TaskModule sets its backbone's
    # mode itself (train, or eval when frozen: a linear probe), tested in tests/test_quiet.py.
    (r"Found \d+ module\(s\) in eval mode at the start of training", UserWarning,
     r"lightning\.pytorch\.loops\.fit_loop"),
    # torchmetrics' ROC (behind macro AUROC) when a class has no sample in a small val/test
    # split: AUROC is a logged extra, the tasks monitor F1/Dice/loss (torchmetrics roc.py).
    (r"No (positive|negative) samples in targets", UserWarning,
     r"torchmetrics\.utilities\.prints"),
)  # fmt: skip

LOG_NOTICES: tuple[tuple[str, str], ...] = (
    # (logger name, message pattern) of Lightning info lines that are advertising or restate
    # what the run already shows (device lines: the demo names its device; the stop reason:
    # the progress bar ends at max_epochs).
    ("lightning.pytorch.utilities.rank_zero", r"💡 Tip: "),  # litlogger / litmodels adverts
    ("lightning.fabric.utilities.rank_zero", r"💡 Tip: "),  # the same, when fabric's log is set
    # TaskModule.configure_callbacks replaces the Trainer's plain ModelCheckpoint by its best +
    # last one by design (Lightning adds a plain one whenever checkpointing is on); a user's
    # callback of any other type that a module replaces still shows
    (
        "lightning.pytorch.utilities.rank_zero",
        r"The following callbacks returned in `LightningModule\.configure_callbacks` will override"
        r" existing callbacks passed to Trainer: ModelCheckpoint$",
    ),
    ("lightning.pytorch.utilities.rank_zero", r"(GPU|TPU|HPU) available: "),
    ("lightning.pytorch.utilities.rank_zero", r"`Trainer\.fit` stopped: `max_(epochs|steps)="),
)


class _DropMessages(logging.Filter):
    """Drop log records whose message matches one of ``patterns`` (from its start)."""

    def __init__(self, patterns: list[str]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.match(record.getMessage()) is None


def quiet() -> None:
    """Install the filters for this process (and the processes it starts by fork)."""
    for message, category, module in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    by_logger: dict[str, list[str]] = {}
    for name, pattern in LOG_NOTICES:
        by_logger.setdefault(name, []).append(pattern)
    for name, patterns in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(patterns))
