"""Acquisition shifts: every shift changes the image more at each severity, keeps its shape, dtype
and the other keys; the field-of-view shift blacks out outside its circle; the loader wrapper
runs a Lightning test."""

import itertools
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from ssl4gie.errors import InputError
from ssl4gie.tasks import ClassificationTask
from ssl4gie.transforms import SHIFTS, ShiftedLoader, apply_shift

SIZE = 64


def scene(n=2, size=224) -> torch.Tensor:
    """uint8 ``[n, 3, size, size]``: smooth colour blobs plus fine texture (JPEG and blur have
    both low and high frequencies to act on); 224 px, the size of ImageNet-C's severities."""
    smooth = F.interpolate(torch.rand(n, 3, 6, 6), size=(size, size), mode="bicubic")
    texture = 0.15 * torch.rand(n, 3, size, size)
    return ((0.2 + 0.6 * smooth + texture).clamp(0, 1) * 255).round().to(torch.uint8)


def batch() -> dict:
    return {
        "image": scene(),
        "mask": torch.randint(0, 2, (2, 224, 224), dtype=torch.uint8),
        "label": torch.tensor([1, 4]),
    }


def mean_abs_change(original: torch.Tensor, shifted: torch.Tensor) -> float:
    return (shifted.float() - original.float()).abs().mean().item()


@pytest.mark.parametrize("name", list(SHIFTS))
def test_each_shift_grows_with_severity_and_keeps_the_rest(name):
    original = batch()
    changes = []
    for severity in range(1, 6):
        shifted = apply_shift(original, name, severity)
        assert shifted["image"].shape == original["image"].shape
        assert shifted["image"].dtype == torch.uint8
        assert shifted["mask"] is original["mask"] and shifted["label"] is original["label"]
        assert torch.equal(apply_shift(original, name, severity)["image"], shifted["image"])
        changes.append(mean_abs_change(original["image"], shifted["image"]))
    assert changes[0] > 0
    assert all(a < b for a, b in itertools.pairwise(changes)), changes


@pytest.mark.parametrize("name", list(SHIFTS))
def test_severity_zero_is_the_identity(name):
    original = batch()
    assert torch.equal(apply_shift(original, name, 0)["image"], original["image"])


def test_fov_blacks_out_outside_a_circle_around_the_window():
    """A bright window whose box is x 32..64, y 16..48 (a black panel on the left, as in many
    endoscopy frames): severity 5 keeps a circle of radius 0.5 * 32 / 2 = 8 around (48, 32)."""
    images = torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8)
    images[..., 16:48, 32:64] = 200
    shifted = apply_shift({"image": images}, "fov", 5)["image"]
    y, x = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    inside = (x - 48) ** 2 + (y - 32) ** 2 <= 8**2
    assert (shifted[..., ~inside] == 0).all()
    assert torch.equal(shifted[..., inside], images[..., inside])
    assert inside.sum() == pytest.approx(math.pi * 8**2, rel=0.1)


def test_bad_names_severities_and_images_fail_with_one_line():
    with pytest.raises(InputError, match=r"unknown shift 'blurr' \(did you mean 'blur'\?\).*"):
        apply_shift(batch(), "blurr", 1)
    with pytest.raises(InputError, match="white_balance, blur, jpeg, resolution, fov"):
        ShiftedLoader([], "noise", 1)
    with pytest.raises(InputError, match=r"integer in 0..5 \(0: none\), got 6"):
        apply_shift(batch(), "blur", 6)
    with pytest.raises(InputError, match="uint8 images"):
        apply_shift({"image": torch.rand(2, 3, 8, 8)}, "blur", 1)


def test_shifted_loader_runs_a_lightning_test(landmarks_datamodule, tmp_path):
    datamodule = landmarks_datamodule
    datamodule.setup()
    loader = ShiftedLoader(datamodule.test_dataloader(), "jpeg", 4)
    assert len(loader) == len(datamodule.test_dataloader())
    first, plain = next(iter(loader)), next(iter(datamodule.test_dataloader()))
    assert not torch.equal(first["image"], plain["image"])
    assert torch.equal(first["label"], plain["label"])
    trainer = L.Trainer(
        accelerator="cpu",
        limit_test_batches=2,
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
    )
    results = trainer.test(ClassificationTask("resnet18", num_classes=6), loader, verbose=False)
    assert 0 <= results[0]["test_accuracy"] <= 1
