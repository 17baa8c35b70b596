"""The seed studies: what each requires of its config and the tables and figures it renders.

Every renderer takes the :class:`~ssl4gie.studies.report.Results` and the report folder,
writes its PNGs there and returns its Markdown sections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ssl4gie.studies import encoders
from ssl4gie.studies.config import StudyConfig
from ssl4gie.studies.report import (
    Results,
    best_of,
    formatted,
    fraction_label,
    markdown_table,
)
from ssl4gie.studies.stats import mean_std, paired_t_test
from ssl4gie.viz import save_bars, save_curves

__all__ = ["STUDIES", "Study"]

KALAPOS = "Kalapos & Gyires-Tóth 2022 (ECCV workshops), arXiv:2209.00314"
TRUONG = "Truong et al. 2021 (ML4H), arXiv:2108.10048"


@dataclass(frozen=True)
class Study:
    """A seed study: its paper, what its config must hold, and its report."""

    paper: str
    render: Callable[[Results, Path], list[str]]
    requirement: Callable[[StudyConfig], bool] = lambda config: True
    problem: str = ""
    problems: Callable[[StudyConfig], list[str]] | None = None  # further checks
    cells: Callable[[StudyConfig], list] | None = None  # its own cells (None: the grid)

    def requirements(self, config: StudyConfig) -> list[str]:
        """What ``config`` lacks for this study (empty: nothing)."""
        further = self.problems(config) if self.problems else []
        return ([] if self.requirement(config) else [self.problem]) + further


def _fractions(config: StudyConfig) -> list[float | None]:
    """The grid's label fractions, smallest first, all labels (None) last."""
    unique = dict.fromkeys(None if f in (None, 1, 1.0) else f for f in config.label_fractions)
    return sorted(unique, key=lambda f: 1.0 if f is None else f)


def _first_setting(config: StudyConfig) -> dict:
    return {"mode": config.modes[0], "fraction": _fractions(config)[-1]}


def _by_seed(results: Results, **axes) -> dict[int, float]:
    return {c["cell"]["seed"]: c["value"] for c in results.select(**axes) if c["value"] is not None}


def significance(results: Results, task: str, ranked: list[str], **setting) -> str:
    """The paired t-test between the two best initialisations of ``task`` over shared seeds."""
    if len(ranked) < 2:
        return f"- {task}: fewer than two initialisations finished; no test."
    first, second = (_by_seed(results, task=task, backbone=b, **setting) for b in ranked[:2])
    seeds = sorted(set(first) & set(second))
    if len(seeds) < 2:
        return f"- {task}: {ranked[0]} vs {ranked[1]}: fewer than two shared seeds; no test."
    t, p = paired_t_test([first[s] for s in seeds], [second[s] for s in seeds])
    return (
        f"- {task}: {ranked[0]} vs {ranked[1]}, paired t-test over {len(seeds)} seeds: "
        f"t = {t:.2f}, p = {p:.3g}{' (p < 0.05)' if p < 0.05 else ''}"
    )


def comparison(results: Results, folder: Path) -> list[str]:
    """Initialisations x tasks, the best per task in bold, and the test between the two best
    (SSL4GIE's main table; DVME against its single backbones)."""
    config, setting = results.config, _first_setting(results.config)
    summaries = {
        task: {b: results.summary(task=task, backbone=b, **setting) for b in config.backbones}
        for task in config.tasks
    }
    ranked = {task: best_of(summaries[task], results.metric(task)) for task in config.tasks}
    header = ["initialisation", *(f"{t} ({results.metric(t)})" for t in config.tasks)]
    rows = [
        [b, *(formatted(summaries[t][b], ranked[t][:1] == [b]) for t in config.tasks)]
        for b in config.backbones
    ]
    bars = {t: {b: s[:2] for b, s in summaries[t].items() if s} for t in config.tasks}
    if any(bars.values()):
        save_bars({t: b for t, b in bars.items() if b}, folder / "comparison.png", "test metric")
    tests = [significance(results, t, ranked[t], **setting) for t in config.tasks]
    return [
        f"## Test metric per initialisation ({setting['mode']}, "
        f"{fraction_label(setting['fraction'])} of the labels)",
        markdown_table(header, rows),
        "Best two per task:\n" + "\n".join(tests),
        "![comparison](comparison.png)",
    ]


def _curve_over_labels(results: Results, task: str, backbone: str, mode: str):
    points = []
    for fraction in _fractions(results.config):
        cells = results.select(task=task, backbone=backbone, mode=mode, fraction=fraction)
        values = [c["value"] for c in cells if c["value"] is not None]
        if values:
            images = sum(c["train_images"] for c in cells) / len(cells)
            points.append((images, mean_std(values)[0]))
    return [x for x, _ in points], [y for _, y in points]


def label_efficiency(results: Results, folder: Path) -> list[str]:
    """The metric against the number of labelled training images (Kalapos & Gyires-Tóth)."""
    config, sections, panels = results.config, [], {}
    for task in config.tasks:
        for mode in config.modes:
            header = ["initialisation"]
            for fraction in _fractions(config):
                cells = results.select(task=task, mode=mode, fraction=fraction)
                n = round(sum(c["train_images"] for c in cells) / max(1, len(cells)))
                header.append(f"{fraction_label(fraction)} (n={n})")
            rows = [
                [
                    b,
                    *(
                        formatted(results.summary(task=task, backbone=b, mode=mode, fraction=f))
                        for f in _fractions(config)
                    ),
                ]
                for b in config.backbones
            ]
            sections += [
                f"## {task}, {mode}: {results.metric(task)} per label fraction",
                markdown_table(header, rows),
            ]
            panels[f"{task} ({mode})"] = {
                b: _curve_over_labels(results, task, b, mode) for b in config.backbones
            }
    save_curves(
        panels, folder / "label_efficiency.png", "labelled training images", "log", "test metric"
    )
    return [*sections, "![label efficiency](label_efficiency.png)"]


def _monitor(results: Results, task: str) -> str:
    """The validation metric ``task`` monitors (``val_dice``), from its first finished cell."""
    return next((c["monitor"] for c in results.select(task=task)), "")


def _epochs_to(cell: dict, percent: str = "95") -> float | None:
    where = cell["convergence"].get(percent)
    return None if where is None else where["epoch"] + 1


def _mean_history(cells: list[dict]) -> tuple[list[int], list[float]]:
    """Validation metric per epoch, averaged over the cells (seeds) that reached that epoch."""
    per_epoch: dict[int, list[float]] = {}
    for c in cells:
        for epoch, _, value in c["history"]:
            per_epoch.setdefault(epoch + 1, []).append(value)
    epochs = sorted(per_epoch)
    return epochs, [mean_std(per_epoch[e])[0] for e in epochs]


def convergence(results: Results, folder: Path) -> list[str]:
    """Validation metric per epoch and epochs to 95 % of the best (Kalapos & Gyires-Tóth)."""
    config, setting = results.config, _first_setting(results.config)
    baseline = config.baseline
    header = ["initialisation"]
    for task in config.tasks:
        header += [f"{task}: epochs to 95%"] + ([f"{task}: × faster"] if baseline else [])
    rows = []
    for b in config.backbones:
        row = [b]
        for task in config.tasks:
            summary = results.summary(_epochs_to, task=task, backbone=b, **setting)
            row.append(formatted(summary, digits=1))
            if baseline:
                reference = results.summary(_epochs_to, task=task, backbone=baseline, **setting)
                ratio = reference[0] / summary[0] if summary and reference else None
                row.append("–" if ratio is None else f"{ratio:.2f}")
        rows.append(row)
    panels = {
        f"{task}: {_monitor(results, task)}": {
            b: _mean_history(results.select(task=task, backbone=b, **setting))
            for b in config.backbones
        }
        for task in config.tasks
    }
    save_curves(panels, folder / "convergence.png", "epoch", ylabel="validation metric")
    note = f" Speed-up: epochs of `{baseline}` / epochs of the row." if baseline else ""
    return [
        "## Convergence: first epoch reaching 95 % of the run's best validation metric",
        "Mean ± std over seeds." + note,
        markdown_table(header, rows),
        "![convergence](convergence.png)",
    ]


def linear_vs_finetune(results: Results, folder: Path) -> list[str]:
    """Linear probe against fine-tuning per label fraction (Truong et al.)."""
    config, sections, panels = results.config, [], {}
    columns = [(m, f) for m in config.modes for f in _fractions(config)]
    for task in config.tasks:
        header = ["initialisation", *(f"{m} {fraction_label(f)}" for m, f in columns)]
        rows = [
            [
                b,
                *(
                    formatted(results.summary(task=task, backbone=b, mode=m, fraction=f))
                    for m, f in columns
                ),
            ]
            for b in config.backbones
        ]
        sections += [f"## {task}: {results.metric(task)}", markdown_table(header, rows)]
        panels[task] = {
            f"{b} {m}": _curve_over_labels(results, task, b, m)
            for b in config.backbones
            for m in config.modes
        }
    save_curves(
        panels, folder / "linear_vs_finetune.png", "labelled training images", "log", "test metric"
    )
    return [*sections, "![linear vs fine-tune](linear_vs_finetune.png)"]


def _shift_value(cell: dict, shift: str, severity: int) -> float | None:
    return cell["shifts"].get(shift, {}).get(str(severity), {}).get(cell["metric"])


def robustness(results: Results, folder: Path) -> list[str]:
    """The metric under acquisition shifts and layer-wise CKA feature reuse (Jiang et al.)."""
    config, setting, sections = results.config, _first_setting(results.config), []
    shifts = [(name, s) for name, severities in config.shifts.items() for s in severities]
    for task in config.tasks:
        header = ["initialisation", "clean", *(f"{n} {s}" for n, s in shifts)]
        rows = []
        for b in config.backbones:
            axes = {"task": task, "backbone": b, **setting}
            cells = [formatted(results.summary(**axes))]
            cells += [
                formatted(results.summary(lambda c, n=n, s=s: _shift_value(c, n, s), **axes))
                for n, s in shifts
            ]
            rows.append([b, *cells])
        sections += [
            f"## {task}: {results.metric(task)} under acquisition shifts",
            markdown_table(header, rows),
        ]
    if config.shifts:
        panels = {
            f"{task}: {results.metric(task)} under {name}": {
                b: _severity_curve(results, task, b, name, setting) for b in config.backbones
            }
            for task in config.tasks
            for name in config.shifts
        }
        save_curves(panels, folder / "robustness.png", "severity (0 = clean)")
        sections.append("![robustness](robustness.png)")
    if config.cka:
        sections += _cka_sections(results, folder, setting)
    return sections


def _severity_curve(results: Results, task: str, backbone: str, shift: str, setting: dict):
    axes = {"task": task, "backbone": backbone, **setting}
    clean = results.summary(**axes)
    points = [(0, clean[0])] if clean else []
    for severity in results.config.shifts[shift]:
        summary = results.summary(lambda c, s=severity: _shift_value(c, shift, s), **axes)
        points += [(severity, summary[0])] if summary else []
    return [x for x, _ in points], [y for _, y in points]


def _cka_sections(results: Results, folder: Path, setting: dict) -> list[str]:
    config, panels, sections = results.config, {}, []
    for task in config.tasks:
        lines = {}
        for b in config.backbones:
            curves = [c["cka"] for c in results.select(task=task, backbone=b, **setting)]
            if curves:
                means = [mean_std(block)[0] for block in zip(*curves, strict=True)]
                lines[b] = (list(range(1, len(means) + 1)), means)
        panels[task] = lines
        blocks = max((len(x) for x, _ in lines.values()), default=0)
        rows = [[b, *(f"{v:.2f}" for v in y)] for b, (_, y) in lines.items()]
        sections += [
            f"## {task}: linear CKA per block, before vs after fine-tuning",
            markdown_table(["initialisation", *range(1, blocks + 1)], rows),
        ]
    save_curves(panels, folder / "cka.png", "block", ylabel="linear CKA")
    return [
        *sections,
        "High CKA: the block's features are reused; low: fine-tuning rewrote them.",
        "![cka](cka.png)",
    ]


STUDIES: dict[str, Study] = {
    "ssl4gie-table": Study("Sanderson & Matuszewski 2024, arXiv:2401.06278", comparison),
    "label-efficiency": Study(
        KALAPOS,
        label_efficiency,
        lambda c: len(_fractions(c)) >= 2,
        "label-efficiency needs at least two label_fractions",
    ),
    "convergence": Study(KALAPOS, convergence),
    "linear-vs-finetune": Study(
        TRUONG,
        linear_vs_finetune,
        lambda c: set(c.modes) == {"linear", "finetune"},
        "linear-vs-finetune needs modes: [linear, finetune]",
    ),
    "dvme": Study(
        TRUONG,
        comparison,
        lambda c: any(b is not None and b.members for b in c.backbones.values()),
        "dvme needs a backbone entry with members (the meta-embedding of other entries)",
    ),
    "wild-vs-self": Study(
        "Jiang & Veeraraghavan 2024 (MIDL), wild- vs self-pretraining",
        robustness,
        lambda c: bool(c.shifts) or c.cka,
        "wild-vs-self needs shifts and/or cka: true",
    ),
    "encoders": Study(
        encoders.PAPER,
        encoders.render_encoders,
        problems=encoders.encoder_problems,
        cells=encoders.encoder_cells,
    ),
}
"""Study name -> :class:`Study`: the name of ``ssl4gie study <name>`` and of a config's
``study`` key, which picks what the config must hold and the report it gets."""
