"""Learning-rate and momentum schedules as pure functions of training progress.

As in facebookresearch/moco-v3 ``main_moco.py`` (``adjust_learning_rate``,
``adjust_moco_momentum``), the schedules take a *fractional* epoch (``epoch + i / iters``) and
are evaluated at every optimiser step. :class:`~ssl4gie.methods.base.SSLMethod` applies
:func:`warmup_cosine` through a ``LambdaLR`` stepped per optimiser step and
:func:`cosine_momentum` after every optimiser step.
"""

from __future__ import annotations

import math

__all__ = ["cosine_momentum", "warmup_cosine"]


def warmup_cosine(
    epoch: float, warmup_epochs: float, max_epochs: float, min_ratio: float = 0.0
) -> float:
    """Learning-rate multiplier: linear warm-up from 0, then a half cosine down to ``min_ratio``.

    ``epoch / warmup_epochs`` during the warm-up (moco-v3 and BYOL start at 0), then
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * (epoch - warmup) / (max_epochs - warmup))) / 2``,
    which reaches ``min_ratio`` at ``max_epochs``. Barlow Twins ends at ``min_ratio = 0.001``;
    MoCo v3, BYOL and SimCLR at 0. A warm-up at least as long as training is cut at the end.

    >>> warmup_cosine(0.0, 10, 100), warmup_cosine(5.0, 10, 100), warmup_cosine(10.0, 10, 100)
    (0.0, 0.5, 1.0)
    >>> warmup_cosine(100.0, 10, 100, min_ratio=0.001)
    0.001
    """
    if epoch < warmup_epochs:
        return epoch / warmup_epochs
    if max_epochs <= warmup_epochs:
        return 1.0
    progress = min(1.0, (epoch - warmup_epochs) / (max_epochs - warmup_epochs))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_momentum(progress: float, base: float) -> float:
    """EMA momentum rising from ``base`` to 1 along a half cosine over training.

    ``tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2`` with ``progress = k / K`` the fraction
    of optimiser steps done [Grill et al. 2020, Sec. 3.2 "tau_base = 0.996"; moco-v3
    ``--moco-m-cos`` with ``--moco-m 0.99``].

    >>> cosine_momentum(0.0, 0.99), cosine_momentum(1.0, 0.99)
    (0.99, 1.0)
    """
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
