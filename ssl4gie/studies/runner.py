"""Run a study's grid: resumable, one cell's failure does not stop the others, then the report."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ssl4gie._io import atomic_file
from ssl4gie.errors import InputError
from ssl4gie.studies.cells import RESULT, Cell, compared_metric, expand, run_cell
from ssl4gie.studies.config import StudyConfig
from ssl4gie.studies.encoders import PROBE, run_probe_cell
from ssl4gie.studies.pretraining import backbone_source
from ssl4gie.studies.report import collect, write_report

__all__ = ["StudyOutcome", "render_report", "run_study"]

log = logging.getLogger(__name__)
ERROR = "error.txt"


@dataclass
class StudyOutcome:
    """What a run did: cells run, skipped (finished before) and failed, and the report."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # cell id -> one-line reason
    report: Path | None = None


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise InputError(f"--shard takes i/n such as 0/4, got {shard!r}") from None
    if not 0 <= index < count:
        raise InputError(f"--shard i/n needs 0 <= i < n, got {shard!r}")
    return index, count


def run_study(config: StudyConfig, shard: str = "0/1", echo=print) -> StudyOutcome:
    """Run every unfinished cell of this shard (cell ``k`` belongs to shard ``k mod n``), then
    render the report from all finished cells. ``echo`` gets one line per cell. A study whose
    cells depend on finished ones (encoders: fine-tuning after the probes) grows its list; it
    runs until the list stops growing."""
    index, count = parse_shard(shard)
    outcome, seen = StudyOutcome(), set()
    while cells := [cell for cell in expand(config)[index::count] if cell.id not in seen]:
        seen.update(cell.id for cell in cells)
        _run_cells(cells, config, outcome, echo)
    outcome.report = render_report(config)
    return outcome


def _run_cells(cells: list[Cell], config: StudyConfig, outcome: StudyOutcome, echo) -> None:
    for number, cell in enumerate(cells, 1):
        cell_dir = config.out_dir / "cells" / cell.id
        if (cell_dir / RESULT).is_file():
            outcome.skipped.append(cell.id)
            continue
        where = f"[{number}/{len(cells)}] {cell.id}"
        echo(where)
        result, failure = _run_one(cell, config, cell_dir)
        if failure is None:
            outcome.ran.append(cell.id)
            metric = compared_metric(config.tasks[cell.task], result["monitor"])
            value = result["metrics"].get(metric, float("nan"))
            echo(f"{where} done in {result['seconds']:.0f} s: {metric} {value:.4f}")
        else:
            outcome.failed[cell.id] = failure
            echo(f"{where} failed: {failure} (see {cell_dir / ERROR})")


def _run_one(cell: Cell, config: StudyConfig, cell_dir: Path) -> tuple[dict | None, str | None]:
    """Run one cell: ``(result, None)``, or on an exception ``(None, one line)`` with the
    traceback written to ``error.txt``."""
    try:
        source = backbone_source(config, cell.backbone, cell.task)
        run = run_probe_cell if cell.mode == PROBE else run_cell
        return run(cell, config, source, cell_dir), None
    except Exception as err:  # one failed cell must not lose the others
        cell_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(cell_dir / ERROR) as handle:
            handle.write(traceback.format_exc())
        log.warning("study cell %s failed: %s", cell.id, err)
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def render_report(config: StudyConfig) -> Path:
    """Write the report folder from the finished cells; return its ``README.md``."""
    from ssl4gie.studies.reports import STUDIES

    results = collect(config)
    folder = config.out_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    sections = STUDIES[config.study].render(results, folder) if results.cells else []
    return write_report(results, sections, folder)
