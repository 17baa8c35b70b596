"""Everything about a study config that can be checked without training, as a list of problems:
names of backbones, configs, classes, arguments, dataset folders, modes, fractions and shifts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl4gie.errors import InputError, did_you_mean
from ssl4gie.studies.config import MODES, BackboneSpec, StudyConfig, accepted_arguments

__all__ = ["check_config"]


def check_config(config: StudyConfig) -> list[str]:
    """All problems of ``config`` (empty: it can run)."""
    from ssl4gie.studies import STUDIES

    problems = []
    if config.study not in STUDIES:
        problems.append(
            f"unknown study {config.study!r}{did_you_mean(config.study, STUDIES)}; "
            f"choose one of: {', '.join(STUDIES)}"
        )
    if not config.backbones:
        problems.append("backbones: give at least one")
    if not config.tasks:
        problems.append("tasks: give at least one")
    for name, spec in config.backbones.items():
        if spec is not None:
            problems += [f"backbones.{name}: {p}" for p in _backbone_problems(spec, config)]
    for name, spec in config.tasks.items():
        if spec is not None:
            problems += [f"tasks.{name}: {p}" for p in _task_problems(spec)]
    problems += _override_problems(config)
    problems += _grid_problems(config)
    if config.study in STUDIES:
        problems += STUDIES[config.study].requirements(config)
    return problems


def _backbone_name_problem(name: str) -> str | None:
    from ssl4gie.backbones import check_backbone_name

    try:
        check_backbone_name(name)
    except InputError as err:
        return str(err).split(";")[0]
    return None


def _backbone_problems(spec: BackboneSpec, config: StudyConfig) -> list[str]:
    if spec.members:
        missing = [m for m in spec.members if m not in config.backbones]
        nested = [
            m
            for m in spec.members
            if m in config.backbones and config.backbones[m] and config.backbones[m].members
        ]
        problems = [f"member {m!r} is not a backbone entry" for m in missing]
        problems += [f"member {m!r} is itself a meta-embedding" for m in nested]
        return problems + (["give members or backbone, not both"] if spec.backbone else [])
    if spec.backbone is None and spec.pretrain is None:
        return ["give backbone (a zoo, timm or hf-hub: name, or a folder), pretrain or members"]
    problems = []
    if spec.backbone is not None:
        problem = _backbone_name_problem(spec.backbone)
        problems += [problem] if problem else []
    if spec.pretrain is not None:
        problems += [f"pretrain: {p}" for p in _pretrain_problems(spec)]
    return problems


def _pretrain_problems(spec: BackboneSpec) -> list[str]:
    import yaml

    from ssl4gie.cli.lightning import shipped_config
    from ssl4gie.methods import SSLMethod

    path = Path(shipped_config(spec.pretrain.config))
    if not path.is_file():
        return [f"config {spec.pretrain.config!r} is neither a file nor a shipped pretrain name"]
    raw = yaml.safe_load(path.read_text()) or {}
    problems = _class_problems(raw.get("model"), SSLMethod, spec.pretrain.model, "model")
    data = spec.pretrain.data
    if data != "task":
        if not isinstance(data, dict):
            return [*problems, f"data must be a mapping or 'task', got {data!r}"]
        merged = {**(raw.get("data") or {}), **data}
        problems += _source_problems(merged.get("sources") or [])
    return problems


def _source_problems(sources: list[Any]) -> list[str]:
    from ssl4gie.data.datamodules import Source, check_source

    problems = []
    for source in sources:
        try:
            check_source(Source(**source))
        except (InputError, TypeError) as err:
            problems.append(f"data source {source}: {err}")
    return problems or ([] if sources else ["data has no sources"])


def _class_problems(section: Any, base: type, overrides: dict, what: str) -> list[str]:
    from ssl4gie.studies.config import locate

    if not isinstance(section, dict) or "class_path" not in section:
        return [f"the config's {what} needs class_path and init_args"]
    try:
        cls = locate(section["class_path"])
    except InputError as err:
        return [str(err)]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return [f"{section['class_path']} is not a {base.__name__}"]
    accepted = accepted_arguments(cls)
    given = {**(section.get("init_args") or {}), **overrides}
    unknown = [] if accepted is None else sorted(set(given) - accepted)
    return [f"{cls.__name__} takes no argument {k!r}{did_you_mean(k, accepted)}" for k in unknown]


def _task_problems(spec) -> list[str]:
    from ssl4gie.data.datamodules import Source, TaskDataModule, check_source
    from ssl4gie.studies.cells import task_recipe
    from ssl4gie.tasks import TaskModule

    try:
        recipe = task_recipe(spec)
    except InputError as err:
        return [str(err)]
    model = {"class_path": f"{recipe.model_class.__module__}.{recipe.model_class.__name__}"}
    data = {"class_path": f"{recipe.data_class.__module__}.{recipe.data_class.__name__}"}
    problems = _class_problems(model, TaskModule, recipe.model_args, "model")
    problems += _class_problems(data, TaskDataModule, recipe.data_args, "data")
    args = recipe.data_args
    layout = args.get("layout") or getattr(recipe.data_class, "default_layout", "folder")
    try:
        check_source(Source(layout, str(args.get("root")), dict(args.get("options") or {})))
    except InputError as err:
        problems.append(str(err))
    return problems


def _override_problems(config: StudyConfig) -> list[str]:
    """Task arguments a backbone entry adds (``model``) that a task's class does not take."""
    from ssl4gie.studies.cells import task_recipe

    problems = []
    for task_name, task in config.tasks.items():
        try:
            accepted = accepted_arguments(task_recipe(task).model_class) if task else None
        except InputError:
            continue  # reported with the task
        for name, backbone in config.backbones.items():
            unknown = sorted(set(backbone.model) - accepted) if backbone and accepted else []
            problems += [
                f"backbones.{name}.model: the {task_name} task takes no argument "
                f"{key!r}{did_you_mean(key, accepted)}"
                for key in unknown
            ]
    return problems


def _grid_problems(config: StudyConfig) -> list[str]:
    problems = [
        f"modes: unknown mode {m!r}; choose from {', '.join(MODES)}"
        for m in config.modes
        if m not in MODES
    ]
    problems += [
        f"label_fractions: {f} is not in (0, 1]"
        for f in config.label_fractions
        if f is not None and not 0 < f <= 1
    ]
    if not config.seeds:
        problems.append("seeds: give at least one")
    problems += _shift_problems(config.shifts)
    if config.baseline is not None and config.baseline not in config.backbones:
        problems.append(
            f"baseline {config.baseline!r} is not a backbone entry"
            f"{did_you_mean(config.baseline, config.backbones)}"
        )
    return problems


def _shift_problems(shifts: dict[str, list[int]]) -> list[str]:
    if not shifts:
        return []
    from ssl4gie.transforms.shifts import SHIFTS, check_shift

    problems = []
    for name, severities in shifts.items():
        for severity in severities:
            try:
                check_shift(name, severity)
            except InputError as err:
                problems.append(f"shifts: {err}")
                if name not in SHIFTS:
                    break
    return problems
