"""Results of a study's finished cells: rows, summaries, Markdown tables and the report files."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ssl4gie._io import atomic_file
from ssl4gie.studies.cells import RESULT, compared_metric, expand
from ssl4gie.studies.config import StudyConfig
from ssl4gie.studies.stats import mean_std

__all__ = ["Results", "collect", "lower_is_better", "markdown_table", "write_report"]

LOWER_IS_BETTER = ("rmse", "mae", "rel", "loss", "error")


def lower_is_better(metric: str) -> bool:
    """Error metrics (RMSE, MAE, relative errors, losses) rank ascending, scores descending."""
    return any(word in metric for word in LOWER_IS_BETTER)


class Results:
    """The finished cells of a study, with the metric each task is compared by.

    Each entry of ``self.cells`` is a cell's ``result.json`` plus ``"metric"`` (the compared
    metric's name) and ``"value"`` (its test value).
    """

    def __init__(self, config: StudyConfig, cells: list[dict[str, Any]]) -> None:
        self.config = config
        self.cells = cells

    def select(self, **axes: Any) -> list[dict[str, Any]]:
        """The cells whose ``cell`` axes equal ``axes`` (e.g. ``task="landmarks"``)."""
        return [c for c in self.cells if all(c["cell"][k] == v for k, v in axes.items())]

    def summary(
        self, key: Callable[[dict], float | None] = lambda c: c["value"], **axes: Any
    ) -> tuple[float, float, int] | None:
        """Mean, standard deviation over seeds and count of ``key`` over the selected cells."""
        values = [v for v in map(key, self.select(**axes)) if v is not None]
        return (*mean_std(values), len(values)) if values else None

    def metric(self, task: str) -> str:
        """The metric ``task`` is compared by (the first finished cell's)."""
        return next((c["metric"] for c in self.select(task=task)), "")

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per cell for CSV: the axes, the compared value, every test metric."""
        rows = []
        for c in self.cells:
            row = {**c["cell"], "metric": c["metric"], "value": c["value"]}
            row |= {"train_images": c["train_images"], "seconds": round(c["seconds"], 2)}
            rows.append(row | {f"test/{k}": v for k, v in sorted(c["metrics"].items())})
        return rows


def collect(config: StudyConfig) -> Results:
    """Read the ``result.json`` of every finished cell of the current grid."""
    cells = []
    for cell in expand(config):
        path = config.out_dir / "cells" / cell.id / RESULT
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        result["metric"] = compared_metric(config.tasks[cell.task], result["monitor"])
        result["value"] = result["metrics"].get(result["metric"])
        cells.append(result)
    return Results(config, cells)


def formatted(summary: tuple[float, float, int] | None, bold: bool = False, digits: int = 3) -> str:
    """``"0.812 ± 0.010"`` (``"0.812"`` for one seed), bold for the best, ``"–"`` when missing."""
    if summary is None:
        return "–"
    mean, std, n = summary
    text = f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"
    return f"**{text}**" if bold else text


def best_of(summaries: dict[str, tuple | None], metric: str) -> list[str]:
    """Keys of ``summaries`` ranked best first by mean (missing ones left out)."""
    present = {k: s for k, s in summaries.items() if s is not None}
    return sorted(present, key=lambda k: present[k][0], reverse=not lower_is_better(metric))


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def fraction_label(fraction: float | None) -> str:
    return "100%" if fraction is None else f"{100 * fraction:g}%"


def write_report(results: Results, sections: list[str], folder: Path) -> Path:
    """Write ``README.md`` (title, the study's sections, the cell list), ``results.csv`` and
    ``results.json`` into ``folder``; return the README's path."""
    config = results.config
    rows = results.rows()
    with atomic_file(folder / "results.json") as handle:
        json.dump(results.cells, handle, indent=1)
    buffer = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_file(folder / "results.csv") as handle:
        handle.write(buffer.getvalue())
    total = len(expand(config))
    seconds = sum(c["seconds"] for c in results.cells)
    head = [
        f"# Study `{config.study}`",
        f"{len(results.cells)} of {total} cells finished ({seconds / 60:.1f} min of training); "
        f"seeds {config.seeds}; every value is the test metric of the best validation "
        "checkpoint, mean ± standard deviation over seeds. Raw numbers: `results.csv`.",
    ]
    path = folder / "README.md"
    with atomic_file(path) as handle:
        handle.write("\n\n".join([*head, *sections]) + "\n")
    return path


def group_by(cells: Iterable[dict], *axes: str) -> dict[tuple, list[dict]]:
    """Cells grouped by the values of ``axes``, in first-seen order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        groups[tuple(c["cell"][a] for a in axes)].append(c)
    return groups
