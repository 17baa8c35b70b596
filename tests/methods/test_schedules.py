"""The learning-rate and momentum schedules are pure functions of training progress."""

from __future__ import annotations

import itertools
import math

import pytest

from ssl4gie.methods.schedules import cosine_momentum, warmup_cosine


def test_warmup_starts_at_zero_and_reaches_one_linearly() -> None:
    assert warmup_cosine(0.0, 10, 100) == 0.0
    assert warmup_cosine(2.5, 10, 100) == pytest.approx(0.25)
    assert warmup_cosine(10.0, 10, 100) == pytest.approx(1.0)


def test_cosine_is_halfway_at_mid_decay_and_ends_at_min_ratio() -> None:
    assert warmup_cosine(55.0, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100.0, 10, 100) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(100.0, 10, 100, min_ratio=0.001) == pytest.approx(0.001)


def test_cosine_is_monotone_after_warmup() -> None:
    values = [warmup_cosine(10 + i * 0.9, 10, 100, 0.001) for i in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_moco_v3_formula_at_a_fractional_epoch() -> None:
    # moco-v3 main_moco.py: lr * 0.5 * (1 + cos(pi * (epoch - warmup) / (epochs - warmup)))
    epoch = 37.25
    expected = 0.5 * (1.0 + math.cos(math.pi * (epoch - 10) / (100 - 10)))
    assert warmup_cosine(epoch, 10, 100) == pytest.approx(expected)


def test_no_warmup_and_warmup_longer_than_training() -> None:
    assert warmup_cosine(0.0, 0, 10) == 1.0
    assert warmup_cosine(3.0, 10, 5) == pytest.approx(0.3)
    assert warmup_cosine(20.0, 10, 5) == 1.0


@pytest.mark.parametrize("base", [0.99, 0.996])
def test_momentum_rises_from_base_to_one(base: float) -> None:
    assert cosine_momentum(0.0, base) == pytest.approx(base)
    assert cosine_momentum(0.5, base) == pytest.approx(1 - (1 - base) / 2)
    assert cosine_momentum(1.0, base) == pytest.approx(1.0)
    assert cosine_momentum(1.5, base) == pytest.approx(1.0)
    values = [cosine_momentum(i / 50, base) for i in range(51)]
    assert all(a <= b for a, b in itertools.pairwise(values))
