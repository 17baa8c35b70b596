"""Each task's metrics fed a perfect output (Dice 1, mAP 1, RMSE 0) and a known wrong one, through
the task's own ``update_metrics``, so that a flipped logit sign, another box format or swapped
metric arguments change the numbers; and the aligned depth errors with unequal residuals against
a least-squares fit written with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl4gie.tasks import ClassificationTask, DepthTask, DetectionTask, SegmentationTask
from ssl4gie.tasks.metrics import AlignedDepthMetrics

pytestmark = pytest.mark.usefixtures("one_thread")  # seeded by conftest._seed


def _computed(task, output, batch) -> dict[str, float]:
    metrics = task.configure_metrics()
    task.update_metrics(metrics, output, batch)
    return {key: float(value) for key, value in metrics.compute().items()}


# --------------------------------------------------------------------------------- depth errors


def _aligned_errors_by_numpy(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Per-image least squares ``s d + t`` over pixels with target > 0 (MiDaS eq. 4), then the
    errors of the docstring, averaged over images."""
    rows = []
    for d, gt in zip(prediction, target, strict=True):
        valid = gt > 0
        design = np.stack([d[valid], np.ones(valid.sum())], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(design, gt[valid], rcond=None)
        aligned, truth = scale * d[valid] + shift, gt[valid]
        error = aligned - truth
        ratio = np.maximum(aligned / truth, truth / aligned)
        rows.append(
            {
                "rmse": np.sqrt(np.mean(error**2)),
                "abs_rel": np.mean(np.abs(error) / truth),
                "median_rel": np.median(np.abs(error) / truth),
                "mae": np.mean(np.abs(error)),
                "delta1": np.mean(ratio < 1.25),
            }
        )
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def _depth_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 6x7 images in mm with unequal residuals and invalid pixels, predicted at another
    scale (x 0.1) and offset, so that RMSE, MAE and the aligned scale all differ."""
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(2, 6, 7, generator=generator, dtype=torch.float64) * 80 + 20
    target[0, 0, :3] = 0  # invalid
    target[1, 5, 5:] = 0
    noise = torch.randn(2, 6, 7, generator=generator, dtype=torch.float64) ** 3 * 8
    return (0.1 * (target + noise) - 4).float(), target.float()


def test_aligned_depth_errors_with_unequal_residuals_equal_numpy():
    prediction, target = _depth_case()
    metric = AlignedDepthMetrics()
    metric.update(prediction, target)
    got = {key: float(value) for key, value in metric.compute().items()}
    expected = _aligned_errors_by_numpy(prediction.double().numpy(), target.double().numpy())
    assert got == pytest.approx(expected, rel=1e-4)
    assert got["rmse"] > 1.2 * got["mae"]  # unequal residuals: RMSE is not the MAE


def test_depth_task_scores_a_perfect_and_a_wrong_prediction():
    task = DepthTask("resnet18")
    prediction, target = _depth_case()
    batch = {"depth": target[:, None]}
    perfect = _computed(task, 3 * target - 2, batch)  # any scale and offset is perfect
    assert perfect["rmse"] == pytest.approx(0, abs=1e-3) and perfect["delta1"] == 1.0
    wrong = _computed(task, prediction, batch)
    expected = _aligned_errors_by_numpy(prediction.double().numpy(), target.double().numpy())
    assert wrong == pytest.approx(expected, rel=1e-4)  # in the target's mm, not the output's


# --------------------------------------------------------------------------------- segmentation


def _masks() -> torch.Tensor:
    mask = torch.zeros(2, 8, 8, dtype=torch.long)
    mask[0, 2:5, 1:6] = 1
    mask[1, 4:, 4:] = 1
    return mask


def test_binary_segmentation_positive_logits_are_the_foreground():
    task = SegmentationTask("resnet18").eval()
    mask = _masks()
    logits = (mask.float() * 2 - 1)[:, None] * 5  # +5 on the polyp, -5 elsewhere: [B, 1, H, W]
    assert _computed(task, logits, {"mask": mask})["dice"] == 1.0
    assert _computed(task, -logits, {"mask": mask})["dice"] == 0.0
    full = [m.repeat_interleave(2, 0).repeat_interleave(2, 1) for m in mask]  # 16 x 16 originals
    batch = {"mask": mask, "full_mask": full}
    assert _computed(task, logits, batch)["dice"] == pytest.approx(1.0)
    assert _computed(task, -logits, batch)["dice"] == 0.0


def test_multiclass_segmentation_takes_the_largest_logit():
    task = SegmentationTask("resnet18", num_classes=3).eval()
    mask = _masks()
    mask[1, :2, :2] = 2
    logits = torch.nn.functional.one_hot(mask, 3).permute(0, 3, 1, 2).float() * 4  # [B, 3, H, W]
    scores = _computed(task, logits, {"mask": mask})
    assert scores["dice"] == 1.0 and scores["iou"] == 1.0
    assert _computed(task, -logits, {"mask": mask})["dice"] < 0.5


# ------------------------------------------------------------------------------------ detection


def test_detection_map_is_1_for_the_true_boxes_and_uses_xyxy():
    task = DetectionTask("resnet18", rois_per_image=32)
    boxes = [torch.tensor([[10.0, 10.0, 30.0, 30.0]]), torch.tensor([[5.0, 20.0, 25.0, 60.0]])]
    batch = {"boxes": boxes}

    def detections(found):  # the second image's box scored higher
        return [
            {
                "boxes": b,
                "scores": torch.full((len(b),), score),
                "labels": torch.ones(len(b)).long(),
            }
            for b, score in zip(found, (0.6, 0.9), strict=True)
        ]

    perfect = _computed(task, detections(boxes), batch)
    assert perfect["map"] == pytest.approx(1.0) and perfect["map_75"] == pytest.approx(1.0)
    # each box 10 px taller at the bottom: as xyxy, IoU 400/600 and 800/1000 (0.67 and 0.8);
    # read as xywh they would be 900/1200 and 800/1000 (0.75 and 0.8)
    taller = [b + torch.tensor([0.0, 0.0, 0.0, 10.0]) for b in boxes]
    wrong = _computed(task, detections(taller), batch)
    assert wrong["map_50"] == pytest.approx(1.0)
    # at IoU 0.75 the first-ranked box is right, the second wrong: COCO's 101-point AP 51 / 101
    assert wrong["map_75"] == pytest.approx(51 / 101, abs=1e-4)


# ------------------------------------------------------------------------------- classification


def test_classification_scores_perfect_and_wrong_probabilities():
    task = ClassificationTask("resnet18", num_classes=3)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    probs = torch.nn.functional.one_hot(labels, 3).float() * 0.8 + 0.2 / 3
    perfect = _computed(task, probs, {"label": labels})
    assert perfect["accuracy"] == 1.0 and perfect["f1"] == 1.0 and perfect["auroc"] == 1.0
    shifted = probs.roll(1, dims=1)  # every image scored as the next class
    assert _computed(task, shifted, {"label": labels})["accuracy"] == 0.0
