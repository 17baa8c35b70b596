"""Checks that kill the mutants ``nox -s mutants`` found surviving in ``ssl4gie/tasks/metrics.py``,
each against a hand-computed case."""

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.tasks.metrics import OverlapMetrics, aligned_depth_scores, overlap_scores


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


def test_depth_scores_below_one_millimetre() -> None:
    # a perfect prediction of depths below 1: every ratio is 1, delta1 = 1
    target = torch.tensor([[[0.2, 0.4, 0.6, 0.8]]])
    perfect = aligned_depth_scores(target.clone(), target)
    assert perfect["delta1"].item() == 1.0 and perfect["rmse"].item() == pytest.approx(0, abs=1e-6)
    # target 0.2, 0.8, 0.2, 0.8 against 0, 1, 1, 0: zero covariance, so the fit is the constant
    # 0.5; errors 0.3 everywhere, relative 1.5 and 0.375; ratios 2.5 and 1.6, none < 1.25
    target = torch.tensor([[[0.2, 0.8, 0.2, 0.8]]])
    scores = aligned_depth_scores(torch.tensor([[[0.0, 1.0, 1.0, 0.0]]]), target)
    expected = {"rmse": 0.3, "abs_rel": 0.9375, "median_rel": 0.9375, "mae": 0.3, "delta1": 0.0}
    assert {k: v.item() for k, v in scores.items()} == pytest.approx(expected, abs=1e-5)


def test_delta1_counts_ratios_strictly_below_1_25() -> None:
    # a constant prediction has no unique fit, so it stays as is: ratios 1.25 (exact) and 1
    scores = aligned_depth_scores(torch.full((1, 1, 2), 1.25), torch.tensor([[[1.0, 1.25]]]))
    assert scores["delta1"].item() == 0.5


def test_depth_scores_skip_images_without_valid_pixels() -> None:
    scores = aligned_depth_scores(torch.rand(2, 2, 2), torch.zeros(2, 2, 2))
    assert all(value.shape == (0,) for value in scores.values())
