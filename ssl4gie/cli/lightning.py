"""``ssl4gie pretrain`` and ``ssl4gie finetune``: LightningCLI in subclass mode.

Every plain LightningCLI flag works (``--trainer.devices 8 --trainer.strategy ddp
--trainer.precision bf16-mixed --trainer.num_nodes 2``, ``--print_config``, ``--ckpt_path``).
Defaults added here: a rich progress bar (unless ``--trainer.enable_progress_bar false``), a
learning-rate monitor, checkpoints with
``last.ckpt`` for resume, and CSV + TensorBoard loggers under ``runs/``.

``--ckpt_path last`` resumes the newest run of that kind under ``runs/``; ``--ckpt_path best``
tests the best checkpoint of the newest fine-tuning run.

``--config`` takes a YAML path, or the name of a shipped config such as
``pretrain/barlow_twins_resnet50_hk`` (the files under ``ssl4gie/configs/``, also reachable as
``configs/`` in a clone).
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path
from typing import Any

from ssl4gie.errors import InputError

CONFIGS = Path(__file__).parents[1] / "configs"


def shipped_config(value: str) -> str:
    """``value`` if it is a file, else the shipped config it names, else ``value`` unchanged."""
    if Path(value).is_file():
        return value
    name = value.removeprefix("configs/").removesuffix(".yaml")
    candidate = CONFIGS / f"{name}.yaml"
    return str(candidate) if candidate.is_file() else value


def _resolve_configs(argv: list[str]) -> list[str]:
    """Replace shipped config names after ``--config`` (or ``--config=``) by their paths."""
    resolved = list(argv)
    for i, arg in enumerate(resolved):
        if arg == "--config" and i + 1 < len(resolved):
            resolved[i + 1] = shipped_config(resolved[i + 1])
        elif arg.startswith("--config="):
            resolved[i] = "--config=" + shipped_config(arg.split("=", 1)[1])
    return resolved


def _config_files(argv: list[str]) -> list[str]:
    """The values given to ``--config`` (or ``-c``, ``--config=``), in order."""
    files = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    return files + [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--config", "-c")]


def _check_config_files(files: list[str]) -> None:
    """Raise :class:`InputError` naming the file (and line) of a missing or unreadable config.

    jsonargparse would print its usage and a YAML error about ``<unicode string>``.
    """
    from ssl4gie._io import read_yaml

    for file in files:
        if not Path(file).is_file():
            raise InputError(
                f"--config {file}: no such file or shipped config; give a YAML path or a name "
                f"such as pretrain/barlow_twins_resnet50_hk (the files under {CONFIGS})"
            )
        content = read_yaml(file, "--config")
        if content is not None and not isinstance(content, dict):
            raise InputError(
                f"--config {file} holds a {type(content).__name__}, not a mapping of options "
                "(trainer:, model:, data:); see the shipped configs"
            )


_NOISE = re.compile(
    r"Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value"
    r"|- Expected a <class 'NoneType'>"
)


def _parse_error(err: argparse.ArgumentError, files: list[str], kind: str) -> InputError:
    """jsonargparse's many-line message -> one line: the option, what is wrong, where to fix.

    ``Parser key "model": ... Problem with given class_path ...: Option 'lamb' is not accepted``
    becomes ``--model: Problem with given class_path ...: Option 'lamb' is not accepted; ...``.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    keys = re.findall(r'Parser key "([^"]+)"', str(err))
    detail = " ".join(
        line.removeprefix("- ")
        for line in lines
        if not _NOISE.match(line) and not line.startswith("Parser key")
    )
    detail = detail if len(detail) <= 200 else detail[:197] + "..."
    option = f"--{'.init_args.'.join(keys)}: " if keys else ""
    where = f"in {' or '.join(files)} or on the command line" if files else "on the command line"
    return InputError(
        f"{option}{detail}; fix it {where} ('ssl4gie {kind} fit --help' lists the options)"
    )


CHECKPOINT_PATTERNS = {"last": "last.ckpt", "best": "best-*.ckpt"}


def _resolve_checkpoint(argv: list[str], kind: str) -> list[str]:
    """``--ckpt_path last|best`` -> that checkpoint of the newest run of ``kind`` under ``runs/``.

    Every run logs into a new ``runs/<kind>/version_N`` folder, where Lightning's own ``last``
    would not look, and a new process has no ``best`` (the best checkpoint of the run that
    just fitted): ``last`` is the newest ``*/checkpoints/last.ckpt``, ``best`` the newest
    ``*/checkpoints/best-*.ckpt`` (what a task keeps). With no such file (e.g.
    ``--trainer.logger false``) Lightning's own rule applies.
    """
    resolved = list(argv)
    for i, arg in enumerate(resolved):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else None
        if arg == "--ckpt_path" and i + 1 < len(argv):
            value = argv[i + 1]
        if value not in CHECKPOINT_PATTERNS:
            continue
        found = sorted(Path("runs", kind).glob(f"*/checkpoints/{CHECKPOINT_PATTERNS[value]}"),
                       key=lambda path: path.stat().st_mtime)  # fmt: skip
        if found:
            position = i if "=" in arg else i + 1
            resolved[position] = ("--ckpt_path=" if "=" in arg else "") + str(found[-1])
    return resolved


def _check_checkpoint(argv: list[str]) -> None:
    """Raise :class:`InputError` for a ``--ckpt_path`` that names no file (not a keyword or URL)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else None
        if arg == "--ckpt_path" and i + 1 < len(argv):
            value = argv[i + 1]
        keyword = value in (*CHECKPOINT_PATTERNS, "hpc", "registry", "null")
        if value and not keyword and "://" not in value and not Path(value).is_file():
            raise InputError(
                f"--ckpt_path {value}: no such checkpoint; give a .ckpt file, or 'last' to resume "
                "the newest run under runs/"
            )


def trainer_defaults() -> dict[str, Any]:
    """Checkpoints with ``last.ckpt`` for resume, whatever else a config sets."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return {"callbacks": [ModelCheckpoint(save_last=True)]}


def default_loggers(kind: str) -> list:
    """CSV and TensorBoard loggers writing into one ``runs/<kind>/version_N`` folder."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from ssl4gie._io import check_writable

    check_writable(Path("runs", kind), "the log and checkpoint folder")
    csv = CSVLogger("runs", name=kind)
    return [csv, TensorBoardLogger("runs", name=kind, version=csv.version)]


def run(kind: str, argv: list[str]) -> int:
    """Run LightningCLI for ``kind`` (``pretrain`` or ``finetune``); return the exit code.

    ``argv`` goes to LightningCLI as ``args`` while ``sys.argv`` stays whole, so that DDP's
    launcher re-runs the full ``ssl4gie <kind> ...`` command in its child processes.
    """
    from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar
    from lightning.pytorch.cli import LightningCLI

    class CLI(LightningCLI):
        def instantiate_trainer(self, **kwargs: Any):
            """Add the rich progress bar and the learning-rate monitor where the run has a
            progress bar and a logger (``--trainer.enable_progress_bar/logger false``)."""
            trainer = self._get(self.config_init, "trainer", default={})
            if trainer.get("logger") is None:  # not set by the user: CSV + TensorBoard
                kwargs["logger"] = default_loggers(kind)
            extra = [RichProgressBar()] if trainer.get("enable_progress_bar") is not False else []
            if trainer.get("logger") is not False:
                extra.append(LearningRateMonitor(logging_interval="step"))
            if trainer.get("fast_dev_run"):  # no file: Lightning 2.6's save_last writes one
                self.trainer_defaults["callbacks"] = []
            self.trainer_defaults["callbacks"] = [*self.trainer_defaults["callbacks"], *extra]
            return super().instantiate_trainer(**kwargs)

        def after_fit(self) -> None:
            if kind == "finetune" and self.trainer.is_global_zero:
                print_metrics(self.trainer.callback_metrics, self.trainer.checkpoint_callback)

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")

    if kind == "pretrain":
        from ssl4gie.data.datamodules import PretrainDataModule as data_class
        from ssl4gie.methods import SSLMethod as model_class
    else:
        from ssl4gie.data.datamodules import TaskDataModule as data_class
        from ssl4gie.tasks import TaskModule as model_class
    args = _resolve_checkpoint(_resolve_configs(argv), kind)
    files = _config_files(args)
    _check_config_files(files)
    _check_checkpoint(args)
    try:
        CLI(
            model_class,
            data_class,
            subclass_mode_model=True,
            subclass_mode_data=kind == "finetune",
            args=args,
            trainer_defaults=trainer_defaults(),
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"prog": f"ssl4gie {kind}", "exit_on_error": False},
        )
    except argparse.ArgumentError as err:
        raise _parse_error(err, files, kind) from None
    except Exception as err:
        cause = _input_error_in(err)
        if cause is None:
            raise
        raise cause from None
    return 0


def _input_error_in(err: BaseException) -> InputError | None:
    """The InputError that caused ``err``, if any: jsonargparse wraps errors raised while it
    instantiates classes, which would hide our one-line message in a traceback."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, InputError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def print_metrics(metrics: dict[str, Any], checkpoint) -> None:
    """The validation metrics at the end of a fine-tune, as a small table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="validation metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(metrics.items()):
        if name.startswith("val_"):
            table.add_row(name, f"{float(value):.4f}")
    best = getattr(checkpoint, "best_model_path", "")
    if best:
        table.caption = f"best checkpoint: {best}"
    Console().print(table)


def pretrain(argv: list[str]) -> int:
    return run("pretrain", argv)


def finetune(argv: list[str]) -> int:
    return run("finetune", argv)
