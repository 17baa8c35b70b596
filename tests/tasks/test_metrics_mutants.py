"""Checks that kill the mutants ``nox -s mutants`` found surviving in ``ssl4gie/tasks/metrics.py``,
each against a hand-computed case."""

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.tasks.metrics import OverlapMetrics, overlap_scores


def _scores(predicted, target) -> dict[str, float]:
    return {k: v.item() for k, v in overlap_scores(predicted, target, num_classes=2).items()}


def test_one_missed_or_one_extra_pixel_scores_zero() -> None:
    empty, one = torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long)
    one[0, 0, 0] = 1
    zero = {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0}
    assert _scores(empty, one) == zero  # TP = FP = 0, FN = 1: precision 0 / 0 scores 0
    assert _scores(one, empty) == zero  # TP = FN = 0, FP = 1: recall 0 / 0 scores 0


@pytest.mark.parametrize(
    "predicted, target, message",
    [
        (
            torch.zeros(1, 2, 2, dtype=torch.long),
            torch.zeros(1, 2, 3, dtype=torch.long),
            "overlap metrics: predicted and target must both be [B, H, W], got (1, 2, 2) and "
            "(1, 2, 3)",
        ),
        (
            torch.zeros(1, 1, 2, 2, dtype=torch.long),
            torch.zeros(1, 1, 2, 2, dtype=torch.long),
            "overlap metrics: predicted and target must both be [B, H, W], got (1, 1, 2, 2) and "
            "(1, 1, 2, 2)",
        ),
    ],
)
def test_overlap_shapes_raise_one_line(predicted, target, message: str) -> None:
    with pytest.raises(InputError) as info:
        overlap_scores(predicted, target, num_classes=2)
    assert str(info.value) == message


def test_overlap_metrics_default_to_binary_and_refuse_one_class() -> None:
    # 2 predicted, 1 true, 1 shared: Dice 2/3 for the single foreground class
    target = torch.tensor([[[1, 0], [0, 0]]])
    predicted = torch.tensor([[[1, 1], [0, 0]]])
    metric = OverlapMetrics()
    metric.update(predicted, target)
    assert metric.compute()["dice"].item() == pytest.approx(2 / 3)
    with pytest.raises(InputError) as info:
        OverlapMetrics(num_classes=1)
    assert str(info.value) == "num_classes counts the background and must be >= 2, got 1"
