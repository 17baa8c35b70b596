"""Study configs: a YAML file -> :class:`StudyConfig`, every problem found before any training.

A study is a grid of fine-tuning cells: ``tasks x backbones x modes x label_fractions x seeds``.
Tasks are shipped fine-tune configs (``finetune/landmarks``) or paths, with overrides; backbones
are initialisations (a zoo, timm, hf-hub or folder name), optionally pretrained first by the
study itself (``pretrain``: the two-stage recipe, or wild- vs self-pretraining), or several
backbones fused by :class:`~ssl4gie.tasks.MetaEmbeddingClassifier` (``members``)::

    study: ssl4gie-table
    seeds: [0, 1, 2]
    trainer: {max_epochs: 50}
    backbones:
      barlow-hk: {backbone: resnet50-barlow-hk}
      random: {backbone: resnet50, pretrained: false}
    tasks:
      landmarks: {config: finetune/landmarks, data: {root: data/hyper-kvasir}}
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ssl4gie._io import read_yaml
from ssl4gie.errors import InputError, did_you_mean

__all__ = ["BackboneSpec", "PretrainSpec", "StudyConfig", "TaskSpec", "load_config"]

Mode = Literal["finetune", "linear"]
MODES = ("finetune", "linear")


@dataclass
class PretrainSpec:
    """SSL pretraining run by the study before fine-tuning.

    Args:
        config: a shipped pretrain config (``pretrain/barlow_twins_resnet50_hk``) or a path.
        model, trainer: overrides of the config's ``model.init_args`` and ``trainer``.
        data: overrides of the config's ``data``; or ``"task"``: pretrain on each task's own
            training images (self-pretraining, Jiang et al.), once per task.
    """

    config: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | Literal["task"] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackboneSpec:
    """One initialisation of the grid.

    Args:
        backbone: zoo / timm / ``hf-hub:`` name or export folder; with ``pretrain``, the
            starting weights of pretraining (None: the pretrain config's backbone).
        pretrained: as :class:`~ssl4gie.tasks.TaskModule` (None: yes for weights sources).
        backbone_kwargs: passed to ``create_backbone`` (e.g. ``{img_size: 64}``).
        model: extra task arguments for this backbone (e.g. ``{layer_decay: 0.75}`` for MAE).
        pretrain: pretrain with the study first (:class:`PretrainSpec`).
        members: names of other backbone entries fused by the meta-embedding classifier.
    """

    backbone: str | None = None
    pretrained: bool | None = None
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    pretrain: PretrainSpec | None = None
    members: list[str] = field(default_factory=list)


@dataclass
class TaskSpec:
    """One downstream task: a fine-tune config plus overrides.

    Args:
        config: a shipped fine-tune config (``finetune/polyp_segmentation_kvasir``) or a path.
        model, data, trainer: overrides of the config's ``init_args`` and ``trainer``.
        metric: the test metric the report compares (None: the task's monitor on the test set,
            e.g. ``test_f1``); ``test_kappa`` for graded labels, ``test_auroc`` otherwise in the
            linear-vs-finetune study.
    """

    config: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None


@dataclass
class StudyConfig:
    """A whole study (see the module docstring).

    Args:
        study: the study's name (:data:`ssl4gie.studies.STUDIES`), which picks its report.
        backbones, tasks: the initialisations and tasks, by name.
        out: the study folder (cells, results, report). Default ``runs/studies/<study>``.
        seeds: training seeds; each also draws the label-fraction subset (``label_seed``).
        label_fractions: fractions of the training labels; ``null`` or 1.0: all of them.
        modes: ``finetune`` and/or ``linear`` (frozen backbone).
        trainer: Trainer arguments for every cell (over the task configs' ``trainer``).
        shifts: acquisition shifts evaluated on the test set, ``{name: [severities]}``
            (:mod:`ssl4gie.transforms.shifts`).
        cka: linear CKA per block between the backbone before and after fine-tuning.
        baseline: the backbone entry the convergence speed-up is measured against.
        keep_checkpoints: keep each cell's best checkpoint (default: deleted when done).
        top_k: encoders study: fine-tune the k best encoders by probe per task (None: all).
    """

    study: str
    backbones: dict[str, BackboneSpec]
    tasks: dict[str, TaskSpec]
    out: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    label_fractions: list[float | None] = field(default_factory=lambda: [None])
    modes: list[str] = field(default_factory=lambda: ["finetune"])
    trainer: dict[str, Any] = field(default_factory=dict)
    shifts: dict[str, list[int]] = field(default_factory=dict)
    cka: bool = False
    baseline: str | None = None
    keep_checkpoints: bool = False
    top_k: int | None = None

    @property
    def out_dir(self) -> Path:
        return Path(self.out or Path("runs", "studies", self.study))


def _build(kind: type, data: Any, where: str, problems: list[str]) -> Any:
    """``kind(**data)`` for a config dataclass; unknown keys become problems."""
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping, got {data!r}")
        return None
    names = {f.name for f in dataclasses.fields(kind)}
    for key in sorted(set(data) - names):
        problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, names)}")
    values = {key: value for key, value in data.items() if key in names}
    try:
        return kind(**values)
    except TypeError as err:
        problems.append(f"{where}: {err}")
        return None


def parse_config(data: dict[str, Any], problems: list[str]) -> StudyConfig | None:
    """The typed config of a loaded YAML mapping; problems are appended to ``problems``."""
    config = _build(StudyConfig, data, "study config", problems)
    if config is None:
        return None
    backbones = {}
    for name, spec in (config.backbones or {}).items():
        backbone = _build(BackboneSpec, spec, f"backbones.{name}", problems)
        if backbone is not None and backbone.pretrain is not None:
            where = f"backbones.{name}.pretrain"
            backbone.pretrain = _build(PretrainSpec, backbone.pretrain, where, problems)
        backbones[name] = backbone
    tasks = {
        name: _build(TaskSpec, spec, f"tasks.{name}", problems)
        for name, spec in (config.tasks or {}).items()
    }
    config.backbones, config.tasks = backbones, tasks
    return config


def load_config(path: str | Path, study: str | None = None) -> StudyConfig:
    """Read and check a study YAML; raise :class:`InputError` listing every problem.

    ``study`` (the command's study name) fills in or must match the file's ``study`` key.
    """
    from ssl4gie.studies.check import check_config

    path = Path(path)
    if not path.is_file():
        raise InputError(f"study config {path} does not exist; see configs/studies/ for examples")
    data = read_yaml(path, "study config") or {}
    if not isinstance(data, dict):
        raise InputError(f"study config {path} holds a {type(data).__name__}, not a mapping")
    if study is not None and data.setdefault("study", study) != study:
        raise InputError(f"{path} is a {data['study']!r} config, not {study!r}")
    problems: list[str] = []
    config = parse_config(data, problems)
    if config is not None:
        problems += check_config(config)
    if problems:
        listing = "\n  - ".join(problems)
        raise InputError(f"{path}: {len(problems)} problem(s), nothing was run:\n  - {listing}")
    return config


def locate(class_path: str) -> type:
    """The class a ``class_path`` such as ``ssl4gie.tasks.ClassificationTask`` names."""
    module_name, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        raise InputError(f"cannot import class_path {class_path!r}") from None


def instantiated(value: Any) -> Any:
    """``value`` with every ``{class_path, init_args}`` mapping in it built, as LightningCLI
    builds nested objects of a config (e.g. a method's ``views``)."""
    if isinstance(value, dict) and "class_path" in value:
        args = {k: instantiated(v) for k, v in (value.get("init_args") or {}).items()}
        return locate(value["class_path"])(**args)
    if isinstance(value, dict):
        return {k: instantiated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [instantiated(v) for v in value]
    return value


def accepted_arguments(cls: type) -> set[str] | None:
    """Names ``cls(...)`` accepts, following ``**kwargs`` up the classes; None: anything."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names - {"self"}
    return None
