"""Pictures for people: grids of images (views, reconstructions, predictions) saved as PNG.

Rendering uses matplotlib's non-interactive Agg backend, so it works on servers without a
display; files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ssl4gie._io import atomic_file
from ssl4gie.transforms.ops import IMAGENET_MEAN, IMAGENET_STD


def denormalise(
    views: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Undo mean/std normalisation: float ``[..., 3, H, W]`` -> float in [0, 1]."""
    mean_t = torch.tensor(mean, device=views.device).view(3, 1, 1)
    std_t = torch.tensor(std, device=views.device).view(3, 1, 1)
    return (views.float() * std_t + mean_t).clamp(0, 1)


def _as_hwc(image: torch.Tensor):
    """uint8 or [0, 1] float ``[3, H, W]`` (or ``[H, W]``) -> numpy ``[H, W, 3]`` / ``[H, W]``."""
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        image = image.float() / 255
    return image.permute(1, 2, 0).numpy() if image.ndim == 3 else image.numpy()


def save_grid(
    rows: Sequence[Sequence[torch.Tensor]],
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    cell_inches: float = 1.6,
) -> Path:
    """Save a grid of images (one list per row; sizes may differ) as a PNG.

    Args:
        rows: ``rows[r][c]`` is uint8 or float-in-[0, 1] ``[3, H, W]``, or ``[H, W]`` (shown
            in gray, e.g. masks and depth).
        path: the PNG to write.
        titles: one title per column, shown above the first row.

    Returns:
        the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    figure, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            axis = axes[r][c]
            axis.axis("off")
            if c < len(row):
                axis.imshow(_as_hwc(row[c]), cmap="gray" if row[c].ndim == 2 else None)
            if r == 0 and titles is not None and c < len(titles):
                axis.set_title(titles[c], fontsize=8)
    return _save_figure(figure, path)


def save_curves(
    panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | os.PathLike,
    xlabel: str = "epoch",
    xscale: str = "linear",
    ylabel: str | None = None,
) -> Path:
    """Save line plots, one panel per key of ``panels``, one line per ``name: (x, y)`` in it
    (``xscale="log"`` for label counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for axis, (title, lines) in zip(axes[0], panels.items(), strict=True):
        for name, (x, y) in lines.items():
            axis.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=name)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel(xlabel)
        axis.set_xscale(xscale)
        if ylabel:
            axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        if len(lines) > 1:
            axis.legend(fontsize=8)
    return _save_figure(figure, path)


def save_bars(
    panels: dict[str, dict[str, tuple[float, float]]], path: str | os.PathLike, ylabel: str = ""
) -> Path:
    """Save bar charts, one panel per key of ``panels``, one bar ``name: (mean, std)`` each with
    its standard deviation as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widest = max(len(bars) for bars in panels.values())
    size = (max(3.0, 0.5 * widest + 1.5) * len(panels), 3.4)
    figure, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for axis, (title, bars) in zip(axes[0], panels.items(), strict=True):
        names = list(bars)
        axis.bar(range(len(names)), [bars[n][0] for n in names],
                 yerr=[bars[n][1] for n in names], capsize=3, color="tab:blue")  # fmt: skip
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3, axis="y")
    return _save_figure(figure, path)


def _save_figure(figure, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return path
