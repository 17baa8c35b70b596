"""The ``encoders`` study, "which encoder for my data?": probes for all, fine-tuning for the best.

    ssl4gie study encoders --config configs/studies/encoders.yaml

Two kinds of cells on the study runner (:mod:`.runner`), both resumable:

- **probe** cells (every encoder, every classification task, every seed): the frozen encoder's
  pooled features of the task's training and test images, extracted once per encoder and task
  (once per seed for a random initialisation) and cached in ``<out>/features/``, then the
  weighted kNN vote (Wu et al. 2018; DINO: k = 20, T = 0.07) and a logistic-regression linear
  probe (:mod:`ssl4gie.analysis.probe`): bank = the training part, queries = the test part;
  top-1 accuracy. Each encoder's images are normalised with its own mean and std (its card, or
  timm's ``pretrained_cfg``).
- **fine-tune** cells (:func:`~ssl4gie.studies.cells.run_cell`, the task's own protocol) for the
  ``top_k`` encoders of each task, once all probe cells are done: ranked by linear-probe
  accuracy on a classification task; on another task (segmentation, detection, depth) by the
  mean linear-probe rank over the study's classification tasks (all encoders when it has none).

The report ranks the encoders of each task by the fine-tuned metric (mean ± std over seeds),
the encoders not fine-tuned after them by their probe rank, with wall time per cell.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ssl4gie._io import atomic_file
from ssl4gie.studies.cells import RESULT, Cell, model_arguments, normalised_batches, task_recipe
from ssl4gie.studies.config import StudyConfig, TaskSpec
from ssl4gie.studies.report import Results, best_of, formatted, markdown_table
from ssl4gie.studies.stats import mean_std

__all__ = [
    "cached_features",
    "encoder_cells",
    "encoder_problems",
    "encoder_row",
    "extract_features",
    "is_probed",
    "probe_order",
    "render_encoders",
    "run_probe_cell",
    "task_ranking",
]

PROBE = "probe"
KNN, LINEAR = "test_knn_accuracy", "test_linear_accuracy"
PAPER = "kNN (Wu et al. 2018, DINO's k = 20, T = 0.07) and linear probes, then fine-tuning"


def is_probed(spec: TaskSpec) -> bool:
    """True for a task whose images carry one class label (a classification data module)."""
    from ssl4gie.data.datamodules import ClassificationDataModule

    return issubclass(task_recipe(spec).data_class, ClassificationDataModule)


def _fraction(config: StudyConfig) -> float | None:
    fraction = config.label_fractions[0]
    return None if fraction in (None, 1, 1.0) else float(fraction)


def _probe_cells(config: StudyConfig) -> list[Cell]:
    fraction = _fraction(config)
    return [
        Cell(task, backbone, PROBE, fraction, seed)
        for task, spec in config.tasks.items()
        if is_probed(spec)
        for backbone in config.backbones
        for seed in config.seeds
    ]


def probe_order(config: StudyConfig, probes: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The encoders of each task, best first: by mean linear-probe accuracy over seeds on a
    classification task; elsewhere by the mean rank over the probed tasks (config order when
    there are none). Ties keep the config's order. ``probes``: finished probe results."""
    accuracy: dict[tuple[str, str], list[float]] = {}
    for c in probes:
        accuracy.setdefault((c["cell"]["task"], c["cell"]["backbone"]), []).append(
            c["metrics"][LINEAR]
        )
    probed = [task for task in config.tasks if any(key[0] == task for key in accuracy)]
    order = {}
    for task in probed:
        means = {b: mean_std(accuracy.get((task, b), [-1.0]))[0] for b in config.backbones}
        order[task] = sorted(config.backbones, key=lambda b, means=means: -means[b])
    mean_rank = {
        b: sum(order[t].index(b) for t in probed) / max(1, len(probed)) for b in config.backbones
    }
    overall = sorted(config.backbones, key=mean_rank.__getitem__)
    return {task: order.get(task, overall) for task in config.tasks}


def encoder_cells(config: StudyConfig) -> list[Cell]:
    """The probe cells, then (once every probe cell has run: finished, or failed with
    ``error.txt``) the fine-tune cells of each task's ``top_k`` encoders, leaving out those
    whose probe failed; seeds innermost, so the list only grows as the study runs."""
    from ssl4gie.studies.runner import ERROR

    probes = _probe_cells(config)
    folders = [config.out_dir / "cells" / cell.id for cell in probes]
    if not all((f / RESULT).is_file() or (f / ERROR).is_file() for f in folders):
        return probes
    finished = [json.loads((f / RESULT).read_text()) for f in folders if (f / RESULT).is_file()]
    order = probe_order(config, finished)
    probed = {c["cell"]["task"] for c in finished}
    failed = {(c.task, c.backbone) for c in probes} - {
        (c["cell"]["task"], c["cell"]["backbone"]) for c in finished
    }
    chosen = {
        task: [b for b in order[task] if task not in probed or (task, b) not in failed]
        for task in config.tasks
    }
    return probes + [
        Cell(task, backbone, "finetune", _fraction(config), seed)
        for task in config.tasks
        for backbone in chosen[task][: config.top_k]
        for seed in config.seeds
    ]


def encoder_problems(config: StudyConfig) -> list[str]:
    """What an ``encoders`` config must hold beyond any study's."""
    problems = []
    if list(config.modes) != ["finetune"]:
        problems.append("encoders runs probes and fine-tuning itself; drop modes")
    if len(config.label_fractions) != 1:
        problems.append("encoders compares at one label fraction; give one label_fractions entry")
    if config.top_k is not None and (not isinstance(config.top_k, int) or config.top_k < 1):
        problems.append(f"top_k must be a whole number >= 1 (or null: all), got {config.top_k!r}")
    members = [name for name, spec in config.backbones.items() if spec and spec.members]
    problems += [
        f"backbones.{name}: encoders compares single encoders, not members" for name in members
    ]
    return problems


def _features_path(config: StudyConfig, cell: Cell, seeded: bool) -> Path:
    name = f"{cell.task}__{cell.backbone}" + (f"__s{cell.seed}" if seeded else "")
    return config.out_dir / "features" / f"{name}.pt"


def extract_features(backbone: torch.nn.Module, data, parts=("train", "test")) -> dict[str, Any]:
    """Pooled features of ``data.parts[part]`` (a set-up task data module), in order, with the
    backbone's normalisation: ``{part: {"index": [N], "features": [N, D], "labels": [N]}}``
    plus ``mean`` and ``std``."""
    from torch.utils.data import DataLoader

    from ssl4gie.data.datamodules import collate_samples
    from ssl4gie.tasks.base import backbone_mean_std

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = backbone.eval().to(device)
    mean, std = backbone_mean_std(backbone)
    targets = torch.as_tensor(data.dataset.targets)
    out: dict[str, Any] = {"mean": list(mean), "std": list(std)}
    for part in parts:
        subset = data.parts[part]
        loader = DataLoader(
            subset, batch_size=data.batch_size, num_workers=data.num_workers,
            collate_fn=collate_samples,
        )  # fmt: skip
        with torch.inference_mode():
            features = [
                backbone(x.to(device)).float().cpu() for x in normalised_batches(loader, mean, std)
            ]
        index = torch.as_tensor(subset.indices)
        out[part] = {"index": index, "features": torch.cat(features), "labels": targets[index]}
    return out


def cached_features(cell: Cell, config: StudyConfig, source: str) -> dict[str, Any]:
    """The features of the cell's task (all training labels) by its encoder: read from
    ``<out>/features/`` or extracted (seeded by ``cell.seed`` first) and written there."""
    import lightning as L

    from ssl4gie.backbones import create_backbone, is_weights_source

    recipe = task_recipe(config.tasks[cell.task])
    _, args = model_arguments(recipe, config, cell.backbone, source, "linear")
    pretrained = args.get("pretrained")
    seeded = pretrained is False or (pretrained is None and not is_weights_source(source))
    path = _features_path(config, cell, seeded)
    if path.is_file():
        return torch.load(path, weights_only=True)
    started = time.perf_counter()
    L.seed_everything(cell.seed, verbose=False)
    backbone = create_backbone(source, pretrained=pretrained, **(args.get("backbone_kwargs") or {}))
    data = recipe.data_class(**recipe.data_args)
    data.setup()
    features = extract_features(backbone, data) | {"seconds": time.perf_counter() - started}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as handle:
        torch.save(features, handle)
    return features


def _rows(part: dict[str, Any], indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The features and labels of ``part`` at dataset ``indices``."""
    where = {int(index): row for row, index in enumerate(part["index"])}
    rows = torch.as_tensor([where[i] for i in indices], dtype=torch.long)
    return part["features"][rows], part["labels"][rows]


def run_probe_cell(cell: Cell, config: StudyConfig, source: str, cell_dir: Path) -> dict:
    """kNN and linear-probe test accuracy of the cell's frozen encoder; write and return its
    result (the shape of a fine-tune cell's, with ``normalisation``)."""
    from ssl4gie.analysis.probe import knn_predict, linear_probe_predict

    if cell_dir.exists():
        shutil.rmtree(cell_dir)
    started = time.perf_counter()
    features = cached_features(cell, config, source)
    recipe = task_recipe(config.tasks[cell.task])
    data = recipe.data_class(
        **{**recipe.data_args, "label_fraction": cell.fraction, "label_seed": cell.seed}
    )
    data.setup()
    bank, bank_labels = _rows(features["train"], data.parts["train"].indices)
    queries, labels = features["test"]["features"], features["test"]["labels"]
    classes = data.num_classes
    metrics = {
        KNN: (knn_predict(bank, bank_labels, queries, classes) == labels).float().mean().item(),
        LINEAR: (linear_probe_predict(bank, bank_labels, queries, classes) == labels)
        .float()
        .mean()
        .item(),
    }
    result = {
        "cell": asdict(cell),
        "metrics": metrics,
        "monitor": "val_linear_accuracy",
        "history": [],
        "convergence": {},
        "train_images": len(bank_labels),
        "shifts": {},
        "cka": [],
        "normalisation": {"mean": features["mean"], "std": features["std"]},
        "feature_seconds": features["seconds"],
        "seconds": time.perf_counter() - started,
    }
    cell_dir.mkdir(parents=True)
    with atomic_file(cell_dir / RESULT) as handle:
        json.dump(result, handle, indent=1)
    return result


def _seconds(cells: list[dict]) -> str:
    return f"{mean_std([c['seconds'] for c in cells])[0]:.1f}" if cells else "–"


def _normalisation(cells: list[dict]) -> str:
    """``"m1, m2, m3 / s1, s2, s3"``: the mean and std the encoder's images were normalised by."""
    if not cells:
        return "–"
    norm = cells[0]["normalisation"]
    return " / ".join(", ".join(f"{v:.3f}" for v in norm[key]) for key in ("mean", "std"))


def task_ranking(results: Results, task: str, order: list[str]) -> list[str]:
    """The encoders of ``task`` best first: the fine-tuned ones by their test metric, then the
    others in probe order."""
    summaries = {b: results.summary(task=task, backbone=b, mode="finetune") for b in order}
    tuned = best_of(summaries, results.metric(task) or "")
    return tuned + [b for b in order if b not in tuned]


def _probe_value(name: str):
    return lambda cell: cell["metrics"][name]


def encoder_row(results: Results, task: str, backbone: str) -> dict[str, Any]:
    """One encoder on one task: summaries (mean, std, n) of ``knn``, ``linear`` and
    ``finetune``, mean wall time per cell and the normalisation (from any task's probe)."""
    axes = {"task": task, "backbone": backbone}
    probes = results.select(mode=PROBE, **axes)
    tuned = results.select(mode="finetune", **axes)
    return {
        "knn": results.summary(_probe_value(KNN), mode=PROBE, **axes),
        "linear": results.summary(_probe_value(LINEAR), mode=PROBE, **axes),
        "finetune": results.summary(mode="finetune", **axes),
        "probe_seconds": _seconds(probes),
        "finetune_seconds": _seconds(tuned),
        "normalisation": _normalisation(results.select(mode=PROBE, backbone=backbone)),
    }


def _flat(task: str, rank: int, backbone: str, row: dict[str, Any]) -> dict[str, Any]:
    """A ``ranking.csv`` row."""
    flat: dict[str, Any] = {"task": task, "rank": rank, "encoder": backbone}
    for name in ("knn", "linear", "finetune"):
        mean, std, n = row[name] or (None, None, 0)
        flat |= {f"{name}_mean": mean, f"{name}_std": std, f"{name}_seeds": n}
    return flat | {key: row[key] for key in ("probe_seconds", "finetune_seconds")}


def render_encoders(results: Results, folder: Path) -> list[str]:
    """One ranked table per task (kNN, linear probe, fine-tuned metric, wall time per cell,
    normalisation), the mean rank over tasks, ``ranking.csv`` and ``encoders.png``."""
    from ssl4gie.viz import save_bars

    config = results.config
    order = probe_order(config, results.select(mode=PROBE))
    sections, panels, flat, ranks = [], {}, [], {}
    for task in config.tasks:
        metric = next((c["metric"] for c in results.select(task=task, mode="finetune")), "")
        names = {"knn": "kNN accuracy", "linear": "linear-probe accuracy", "finetune": metric}
        table = []
        for rank, backbone in enumerate(task_ranking(results, task, order[task]), 1):
            row = encoder_row(results, task, backbone)
            best = rank == 1 and row["finetune"] is not None
            table.append([
                rank, backbone, formatted(row["knn"]), formatted(row["linear"]),
                formatted(row["finetune"], best), row["probe_seconds"], row["finetune_seconds"],
                row["normalisation"],
            ])  # fmt: skip
            flat.append(_flat(task, rank, backbone, row))
            ranks.setdefault(backbone, []).append(rank)
            for key, name in names.items():
                if row[key] is not None:
                    panels.setdefault(f"{task}: {name}", {})[backbone] = row[key][:2]
        header = ["rank", "encoder", "kNN acc", "linear acc", f"fine-tuned {metric or '–'}",
                  "s / probe cell", "s / fine-tune cell", "normalisation mean / std"]  # fmt: skip
        sections += [f"## {task}", markdown_table(header, table)]
    _write_csv(flat, folder / "ranking.csv")
    if panels:
        save_bars(panels, folder / "encoders.png", "test value")
    mean_rank = {b: sum(r) / len(r) for b, r in ranks.items()}
    overall = [[b, f"{mean_rank[b]:.2f}", *ranks[b]] for b in sorted(ranks, key=mean_rank.get)]
    return [
        f"Probes: {PAPER} of the top {config.top_k or 'all'} per task. Ranked by the fine-tuned "
        "test metric, then (not fine-tuned) by linear-probe accuracy; probe values are "
        "deterministic for fixed weights (std 0). Table: `ranking.csv`.",
        *sections,
        "## Mean rank over tasks",
        markdown_table(["encoder", "mean rank", *config.tasks], overall),
        "![encoders](encoders.png)",
    ]


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with atomic_file(path) as handle:
        handle.write(buffer.getvalue())
