"""Summaries and the paired significance test of the study tables (no SciPy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_std", "paired_t_test", "student_t_two_sided_p"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1``; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def student_t_two_sided_p(t: float, df: int) -> float:
    """``P(|T| >= |t|)`` for Student's t with integer ``df`` degrees of freedom.

    Closed form of the distribution function for integer ``df`` (Abramowitz & Stegun 26.7.3
    and 26.7.4) with ``theta = atan(|t| / sqrt(df))``: for odd ``df``,
    ``A = 2/pi * (theta + sin(theta) * sum_k c_k cos^(2k+1)(theta))`` with ``c_0 = 1`` and
    ``c_k = c_(k-1) * 2k / (2k + 1)`` up to ``cos^(df-2)``; for even ``df``,
    ``A = sin(theta) * sum_k d_k cos^(2k)(theta)`` with ``d_0 = 1``,
    ``d_k = d_(k-1) * (2k - 1) / (2k)`` up to ``cos^(df-2)``. Returns ``1 - A``.

    >>> round(student_t_two_sided_p(2.776445, 4), 4)
    0.05
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    if df % 2:
        series, term = 0.0, cos
        for k in range((df - 1) // 2):
            series += term
            term *= cos * cos * (2 * k + 2) / (2 * k + 3)
        inside = 2 / math.pi * (theta + sin * series) if df > 1 else 2 * theta / math.pi
    else:
        series, term = 0.0, 1.0
        for k in range(df // 2):
            series += term
            term *= cos * cos * (2 * k + 1) / (2 * k + 2)
        inside = sin * series
    return min(1.0, max(0.0, 1.0 - inside))


def paired_t_test(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired t-test of equal means: ``(t, p)`` over pairs ``(first[i], second[i])``
    (the same seed, hence the same label subset, for both initialisations).

    ``t = mean(d) / (std(d) / sqrt(n))`` for ``d = first - second``; ``p`` from Student's t with
    ``n - 1`` degrees of freedom. Identical pairs give ``(0, 1)``; a constant non-zero difference
    gives ``(inf, 0)``. Needs ``n >= 2``.
    """
    if len(first) != len(second) or len(first) < 2:
        raise ValueError(
            f"need two equally long samples of >= 2 pairs, got {len(first)}, {len(second)}"
        )
    differences = [a - b for a, b in zip(first, second, strict=True)]
    mean, std = mean_std(differences)
    if std == 0:
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (std / math.sqrt(len(differences)))
    return t, student_t_two_sided_p(t, len(differences) - 1)
