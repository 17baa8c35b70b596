"""The cells of a study grid and how one cell runs.

A cell fine-tunes one backbone on one task (mode, label fraction, seed) with the task config's
Trainer settings, tests the best validation checkpoint (SSL4GIE), and, when the study asks,
tests again under acquisition shifts and measures layer-wise CKA against the backbone before
fine-tuning. Its results go to ``cells/<id>/result.json``, written last and atomically: a cell
with that file is finished, any other is run again from scratch.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from ssl4gie._io import atomic_file
from ssl4gie.errors import InputError
from ssl4gie.studies.config import (
    StudyConfig,
    TaskSpec,
    accepted_arguments,
    instantiated,
    locate,
)

__all__ = ["Cell", "TaskRecipe", "compared_metric", "expand", "run_cell", "task_recipe"]

RESULT = "result.json"
# How a task class takes the study's mode: the argument, and its value for linear, finetune.
FREEZE_ARGUMENTS = {
    "mode": ("linear", "finetune"),  # ClassificationTask
    "freeze_backbones": (True, False),  # MetaEmbeddingClassifier
    "freeze_backbone": (True, False),  # TaskModule
}


@dataclass(frozen=True)
class Cell:
    """One fine-tuning run of the grid; ``fraction`` None means all training labels."""

    task: str
    backbone: str
    mode: str
    fraction: float | None
    seed: int

    @property
    def id(self) -> str:
        fraction = "all" if self.fraction is None else f"{self.fraction:g}"
        return f"{self.task}__{self.backbone}__{self.mode}__{fraction}__s{self.seed}"


def expand(config: StudyConfig) -> list[Cell]:
    """Every cell, tasks outermost and seeds innermost (a killed study resumes in order); a
    study with its own cells (:attr:`Study.cells <ssl4gie.studies.Study>`) gives those."""
    from ssl4gie.studies.reports import STUDIES

    if config.study in STUDIES and STUDIES[config.study].cells is not None:
        return STUDIES[config.study].cells(config)
    fractions = [None if f in (None, 1, 1.0) else float(f) for f in config.label_fractions]
    return [
        Cell(task, backbone, mode, fraction, seed)
        for task in config.tasks
        for backbone in config.backbones
        for mode in config.modes
        for fraction in dict.fromkeys(fractions)
        for seed in config.seeds
    ]


def compared_metric(spec: TaskSpec, monitor: str) -> str:
    """The test metric a task is compared by: ``spec.metric``, else the monitored one's test
    counterpart (``val_f1`` -> ``test_f1``)."""
    return spec.metric or "test_" + monitor.removeprefix("val_")


@dataclass
class TaskRecipe:
    """A fine-tune config resolved: classes, their arguments and the Trainer's."""

    model_class: type
    model_args: dict[str, Any]
    data_class: type
    data_args: dict[str, Any]
    trainer: dict[str, Any]


def _class_and_args(section: Any, what: str, path: str) -> tuple[type, dict[str, Any]]:
    if not isinstance(section, dict) or "class_path" not in section:
        raise InputError(f"{path}: '{what}' needs class_path and init_args")
    return locate(section["class_path"]), dict(section.get("init_args") or {})


def task_recipe(spec: TaskSpec) -> TaskRecipe:
    """Read ``spec.config`` (a shipped name or a path) and apply the spec's overrides."""
    from ssl4gie.cli.lightning import shipped_config

    path = shipped_config(spec.config)
    if not Path(path).is_file():
        raise InputError(f"fine-tune config {spec.config!r} is neither a file nor a shipped name")
    raw = yaml.safe_load(Path(path).read_text()) or {}
    model_class, model_args = _class_and_args(raw.get("model"), "model", path)
    data_class, data_args = _class_and_args(raw.get("data"), "data", path)
    return TaskRecipe(
        model_class,
        {**model_args, **spec.model},
        data_class,
        {**data_args, **spec.data},
        {**(raw.get("trainer") or {}), **spec.trainer},
    )


def model_arguments(
    recipe: TaskRecipe, config: StudyConfig, name: str, source: str | list[str], mode: str
) -> tuple[type, dict[str, Any]]:
    """The task class and arguments for backbone entry ``name`` (``source``: its resolved
    backbone, or the members' for a meta-embedding) in ``mode``."""
    from ssl4gie.tasks import MetaEmbeddingClassifier

    spec = config.backbones[name]
    args = {**recipe.model_args, **spec.model}
    model_class = recipe.model_class
    if isinstance(source, list):
        model_class = MetaEmbeddingClassifier
        args = {k: v for k, v in args.items() if k not in ("backbone", "pretrained")}
        args["backbones"] = source
        args["backbone_kwargs"] = [config.backbones[m].backbone_kwargs for m in spec.members]
    else:
        args["backbone"] = source
        if spec.pretrained is not None:
            args["pretrained"] = spec.pretrained
        if spec.backbone_kwargs:
            args["backbone_kwargs"] = spec.backbone_kwargs
    accepted = accepted_arguments(model_class) or set(FREEZE_ARGUMENTS)
    argument = next(name for name in FREEZE_ARGUMENTS if name in accepted)
    args[argument] = FREEZE_ARGUMENTS[argument][mode == "finetune"]
    return model_class, args


def trainer_for(cell_dir: Path, settings: dict[str, Any]):
    """A Trainer writing its CSV log and checkpoints into ``cell_dir``."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    settings = {"enable_model_summary": False, **settings}
    return L.Trainer(
        **settings, default_root_dir=cell_dir, logger=CSVLogger(cell_dir, name="", version="")
    )


def normalised_batches(loader, mean, std) -> Iterator:
    """The images of ``loader``'s batches as normalised float ``[B, 3, H, W]``."""
    import torch

    from ssl4gie.transforms.views import to_unit_float

    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    for batch in loader:
        yield (to_unit_float(batch["image"]) - mean) / std


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def shifted_metrics(trainer, model, data, shifts: dict[str, list[int]]) -> dict[str, dict]:
    """Test metrics under each acquisition shift and severity: ``{shift: {severity: metrics}}``."""
    from ssl4gie.transforms.shifts import ShiftedLoader

    results: dict[str, dict] = {}
    for name, severities in shifts.items():
        for severity in severities:
            loader = ShiftedLoader(data.test_dataloader(), name, severity)
            metrics = trainer.test(model, loader, verbose=False)[0]
            results.setdefault(name, {})[str(severity)] = _scalars(metrics)
    return results


def feature_reuse(initial, model, data) -> list[float]:
    """Linear CKA per block between ``initial`` (the backbone before fine-tuning) and the
    fine-tuned ``model.backbone`` on the test images."""
    from ssl4gie.analysis import layerwise_cka

    batches = normalised_batches(data.test_dataloader(), model.mean, model.std)
    return layerwise_cka(initial, model.backbone, batches)


def run_cell(cell: Cell, config: StudyConfig, source: str | list[str], cell_dir: Path) -> dict:
    """Fine-tune, test, and evaluate the cell; write and return its result."""
    import lightning as L

    if cell_dir.exists():  # an earlier run was stopped inside this cell: start it again
        shutil.rmtree(cell_dir)
    started = time.perf_counter()
    recipe = task_recipe(config.tasks[cell.task])
    L.seed_everything(cell.seed, workers=True, verbose=False)
    data_args = {**recipe.data_args, "label_fraction": cell.fraction, "label_seed": cell.seed}
    data = recipe.data_class(**data_args)
    model_class, model_args = model_arguments(recipe, config, cell.backbone, source, cell.mode)
    model = model_class(**instantiated(model_args))
    initial = copy.deepcopy(model.backbone) if config.cka else None
    trainer = trainer_for(cell_dir, {**recipe.trainer, **config.trainer})
    trainer.fit(model, datamodule=data)
    metrics = _scalars(trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0])
    result = {
        "cell": asdict(cell),
        "metrics": metrics,
        "monitor": model.monitor,
        "history": [list(entry) for entry in model.history],
        "convergence": model.convergence,
        "train_images": len(data.parts["train"]),
        "shifts": shifted_metrics(trainer, model, data, config.shifts),
        "cka": [] if initial is None else feature_reuse(initial, model, data),
        "seconds": time.perf_counter() - started,
    }
    if not config.keep_checkpoints:
        shutil.rmtree(cell_dir / "checkpoints", ignore_errors=True)
    with atomic_file(cell_dir / RESULT) as handle:
        json.dump(result, handle, indent=1)
    return result
