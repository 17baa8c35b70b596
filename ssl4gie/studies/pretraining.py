"""Pretraining inside a study: the backbone a cell fine-tunes, pretrained first where asked.

- two-stage (Kalapos & Gyires-Tóth): ``backbone`` names ImageNet SSL weights and ``pretrain``
  continues SSL for a few epochs on the target domain (``pretrain.data``);
- wild vs self (Jiang et al.): ``pretrain.data`` is a large uncurated set ("wild") or ``"task"``,
  each task's own training images ("self", the split's training part only: no test image is
  seen by pretraining).

The encoder is exported (:func:`ssl4gie.zoo.export_backbone`) to
``pretrain/<backbone>[__<task>]/backbone`` and reused by every cell and by a resumed study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch.utils.data import Subset

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.errors import InputError
from ssl4gie.studies.config import BackboneSpec, PretrainSpec, StudyConfig, instantiated, locate

__all__ = ["TrainingPart", "backbone_source", "pretrain_folder"]


class TrainingPart(PretrainDataModule):
    """A :class:`PretrainDataModule` over the images at ``indices`` of its single source: the
    training part of a labelled task's split, for self-pretraining."""

    def __init__(self, indices: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.indices = list(indices)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            super().setup(stage)
            self.train_set = Subset(self.train_set, self.indices)


def pretrain_folder(out_dir: Path, name: str, spec: PretrainSpec, task: str) -> Path:
    """Where the pretraining of backbone entry ``name`` (for ``task`` if self-pretraining) lives."""
    return out_dir / "pretrain" / (f"{name}__{task}" if spec.data == "task" else name)


def backbone_source(config: StudyConfig, name: str, task: str) -> str | list[str]:
    """What the cells of backbone entry ``name`` on ``task`` fine-tune: a backbone name or export
    folder, or (meta-embedding) the list of its members' sources."""
    spec = config.backbones[name]
    if spec.members:
        return [_single_source(config, member, task) for member in spec.members]
    return _single_source(config, name, task)


def _single_source(config: StudyConfig, name: str, task: str) -> str:
    spec = config.backbones[name]
    if spec.pretrain is None:
        return spec.backbone
    export = pretrain_folder(config.out_dir, name, spec.pretrain, task) / "backbone"
    if not export.is_dir():
        pretrain(spec, config, task, export)
    return str(export)


def _data_module(spec: PretrainSpec, data_args: dict[str, Any], config: StudyConfig, task: str):
    from ssl4gie.studies.cells import task_recipe

    if spec.data != "task":
        args = {**data_args, **spec.data}
        args["sources"] = [Source(**source) for source in args.get("sources") or []]
        if args.get("probe"):
            args["probe"] = Source(**args["probe"])
        return PretrainDataModule(**args)
    recipe = task_recipe(config.tasks[task])
    labelled = recipe.data_class(**recipe.data_args)
    labelled.setup()
    args = {**data_args, "sources": [labelled.source], "probe": None}
    return TrainingPart(labelled.parts["train"].indices, **args)


def pretrain(spec: BackboneSpec, config: StudyConfig, task: str, export: Path) -> None:
    """Run the SSL pretraining of ``spec`` and export its encoder to ``export``."""
    import lightning as L

    from ssl4gie.cli.lightning import shipped_config
    from ssl4gie.zoo import export_backbone

    path = Path(shipped_config(spec.pretrain.config))
    if not path.is_file():
        raise InputError(f"pretrain config {spec.pretrain.config!r} is not a file or shipped name")
    raw = yaml.safe_load(path.read_text()) or {}
    method_class = locate(raw["model"]["class_path"])
    method_args = {**(raw["model"].get("init_args") or {}), **spec.pretrain.model}
    if spec.backbone is not None:
        method_args["backbone"] = spec.backbone
    if spec.backbone_kwargs:
        method_args["backbone_kwargs"] = spec.backbone_kwargs
    L.seed_everything(raw.get("seed_everything", 0), workers=True, verbose=False)
    method = method_class(**instantiated(method_args))
    data = _data_module(spec.pretrain, dict(raw.get("data") or {}), config, task)
    folder = export.parent
    settings = {"enable_model_summary": False, **(raw.get("trainer") or {})}
    settings |= {**spec.pretrain.trainer, "logger": False, "enable_checkpointing": False}
    trainer = L.Trainer(**settings, default_root_dir=folder)
    trainer.fit(method, datamodule=data)
    checkpoint = folder / "last.ckpt"
    trainer.save_checkpoint(checkpoint)
    export_backbone(checkpoint, export)
    checkpoint.unlink()
