"""Task metrics against hand-computed cases."""

import pytest
import torch
import torch.nn.functional as F

from ssl4gie.tasks.base import convergence_points
from ssl4gie.tasks.classification import ClassificationTask, class_weights, knn_scores
from ssl4gie.tasks.metrics import AlignedDepthMetrics, OverlapMetrics, overlap_scores


def masks(*cells):
    """A 1x4x4 mask with ones at the given (row, column) cells."""
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    for row, col in cells:
        mask[0, row, col] = 1
    return mask


def scores(predicted, target, num_classes=2):
    return {
        k: v.squeeze().tolist() for k, v in overlap_scores(predicted, target, num_classes).items()
    }


def test_overlap_perfect_empty_disjoint():
    polyp = masks((0, 0), (0, 1), (1, 0))
    assert scores(polyp, polyp) == {"dice": 1, "iou": 1, "precision": 1, "recall": 1}
    empty = masks()
    assert scores(empty, empty) == {"dice": 1, "iou": 1, "precision": 1, "recall": 1}
    assert scores(masks((3, 3)), polyp) == {"dice": 0, "iou": 0, "precision": 0, "recall": 0}
    assert scores(empty, polyp) == {"dice": 0, "iou": 0, "precision": 0, "recall": 0}
    assert scores(polyp, empty) == {"dice": 0, "iou": 0, "precision": 0, "recall": 0}


def test_overlap_partial():
    """4 predicted, 6 true, 2 shared: Dice 4/10, IoU 2/8, precision 2/4, recall 2/6."""
    predicted = masks((0, 0), (0, 1), (3, 2), (3, 3))
    target = masks((0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1))
    result = scores(predicted, target)
    expected = {"dice": 0.4, "iou": 0.25, "precision": 0.5, "recall": 1 / 3}
    assert result == pytest.approx(expected)


def test_overlap_metric_averages_images_and_foreground_classes():
    target = torch.tensor([[[0, 1], [2, 2]]])
    predicted = torch.tensor([[[0, 1], [2, 0]]])  # class 1 perfect, class 2: 1 of 2 found
    metric = OverlapMetrics(num_classes=3)
    metric.update(predicted, target)
    metric.update(target, target)  # a perfect second image
    result = metric.compute()
    assert result["dice"].item() == pytest.approx((1 + 2 / 3 + 1 + 1) / 4)
    assert result["recall"].item() == pytest.approx((1 + 0.5 + 1 + 1) / 4)


def test_depth_metrics_after_alignment():
    """Target 1, 2, 3, 4 and prediction 0, 0, 1, 1: the fit is 2 d + 1.5, so the aligned
    prediction is 1.5, 1.5, 3.5, 3.5; errors are +-0.5."""
    target = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 0.0]]])  # the 0 is an invalid pixel
    prediction = torch.tensor([[[0.0, 0.0, 1.0, 1.0, 9.0]]])
    metric = AlignedDepthMetrics()
    metric.update(prediction, target)
    result = {k: v.item() for k, v in metric.compute().items()}
    relative = [0.5, 0.25, 0.5 / 3, 0.125]
    expected = {
        "rmse": 0.5,
        "mae": 0.5,
        "abs_rel": sum(relative) / 4,
        "median_rel": (0.25 + 0.5 / 3) / 2,
        "delta1": 0.5,  # 3.5 / 3 and 4 / 3.5 are below 1.25; 1.5 / 1 and 2 / 1.5 are not
    }
    assert result == pytest.approx(expected, rel=1e-5)


def test_depth_metrics_exact_for_an_affine_prediction():
    target = torch.rand(2, 1, 8, 8) * 90 + 10
    metric = AlignedDepthMetrics()
    metric.update((target - 3) / 2.5, target)
    result = metric.compute()
    assert result["rmse"].item() == pytest.approx(0, abs=1e-3)
    assert result["delta1"].item() == 1.0


def test_classification_metrics_on_a_small_confusion_matrix():
    """true 0 0 1 1 2 2, predicted 0 1 1 1 2 0: per-class F1 1/2, 4/5, 2/3; kappa
    (4/6 - 1/3) / (1 - 1/3) = 1/2; quadratic kappa 1 - (1.25 / 6) / (10.5 / 36) = 2/7."""
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    probs = F.one_hot(torch.tensor([0, 1, 1, 1, 2, 0]), 3).float()
    for quadratic, kappa in ((False, 0.5), (True, 2 / 7)):
        task = ClassificationTask("resnet18", num_classes=3, quadratic_kappa=quadratic)
        task.val_metrics.update(probs, target)
        result = {k: v.item() for k, v in task.val_metrics.compute().items()}
        assert result["val_kappa"] == pytest.approx(kappa, rel=1e-5)
    assert result["val_accuracy"] == pytest.approx(4 / 6)
    assert result["val_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert result["val_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert result["val_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_class_weights_and_knn_votes():
    assert class_weights(torch.tensor([1, 3, 0])).tolist() == pytest.approx([4 / 3, 4 / 9, 4 / 3])
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    votes = knn_scores(bank, labels, torch.tensor([[1.0, 0.05], [0.1, 1.0]]), 2, k=2)
    assert votes.argmax(dim=1).tolist() == [0, 1]
    assert torch.allclose(votes.sum(dim=1), torch.ones(2))


def test_convergence_points():
    assert convergence_points([0.2, 0.5, 0.9, 1.0], "max") == {0.9: 2, 0.95: 3, 0.99: 3}
    assert convergence_points([4.0, 2.0, 1.05, 1.0], "min") == {0.9: 2, 0.95: 2, 0.99: 3}
