"""Bad input to the tasks fails with one InputError line; images without polyps are handled."""

import lightning as L
import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.tasks import ClassificationTask, DepthTask, DetectionTask, SegmentationTask


def images(n=2, size=32):
    return torch.randint(0, 255, (n, 3, size, size), dtype=torch.uint8)


def test_num_classes_must_match_the_datamodule(landmarks_datamodule, tmp_path):
    datamodule = landmarks_datamodule
    model = ClassificationTask("resnet18", num_classes=5)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, default_root_dir=tmp_path)
    with pytest.raises(InputError, match="num_classes is 5 but the datamodule has 6 classes"):
        trainer.fit(model, datamodule=datamodule)


def test_labels_and_mask_values_outside_the_classes():
    classify = ClassificationTask("resnet18", num_classes=6)
    with pytest.raises(InputError, match=r"label values must be class ids in 0..5, found 0..7"):
        classify.on_after_batch_transfer({"image": images(), "label": torch.tensor([0, 7])}, 0)
    segment = SegmentationTask("resnet18", num_classes=2)
    mask = torch.zeros(2, 32, 32, dtype=torch.uint8)
    mask[0, 0, 0] = 255  # a 0/255 mask not converted to class ids
    with pytest.raises(InputError, match=r"mask values must be class ids in 0..1, found 0..255"):
        segment.on_after_batch_transfer({"image": images(), "mask": mask}, 0)


@pytest.mark.parametrize("task", [SegmentationTask, DepthTask, DetectionTask])
def test_dense_tasks_need_a_feature_pyramid(task):
    with pytest.raises(InputError, match=r"strides \[16, 16.*need strides \[4, 8, 16, 32\]"):
        task("mixer_s16_224")


def test_bad_choices_fail_at_construction():
    with pytest.raises(InputError, match="unknown mode"):
        ClassificationTask("resnet18", mode="probe")
    with pytest.raises(InputError, match="decoder must be one of"):
        SegmentationTask("resnet18", decoder="pspnet")
    with pytest.raises(InputError, match="layer_decay"):
        ClassificationTask("resnet18", layer_decay=1.5)


def test_images_without_polyps_train_and_score():
    """Empty targets are negatives: finite loss in training, their detections are false
    positives for the mAP (and an all-empty batch gives mAP -1, torchmetrics' 'no data')."""
    model = DetectionTask("resnet18", rois_per_image=16)
    boxes = [torch.zeros(0, 4), torch.tensor([[4.0, 4.0, 20.0, 20.0]])]
    batch = model.on_after_batch_transfer({"image": images(), "boxes": boxes}, 0)
    loss, _ = model.loss_and_output(batch)
    assert torch.isfinite(loss)
    model.eval()
    batch = model.on_after_batch_transfer({"image": images(), "boxes": boxes}, 0)
    _, detections = model.loss_and_output(batch)
    model.val_metrics.update(detections, model.targets(batch))
    assert torch.isfinite(model.val_metrics.compute()["val_map"])
