import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassificationAugment,
    DepthAugment,
    DetectionAugment,
    SegmentationAugment,
)
from ssl4gie.transforms.finetune import clean_boxes

SIDE = 32
NO_COLOUR = {"jitter": (0.0, 0.0, 0.0, 0.0), "blur_p": 0.0}
TASKS = [ClassificationAugment, SegmentationAugment, DetectionAugment, DepthAugment]


def denormalise(image):
    return image * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(
        1, 3, 1, 1
    )


def blocky_masks(batch):
    """Random masks made of 4x4 blocks, so nearest and bilinear resampling mostly agree."""
    blocks = torch.rand(batch, 1, SIDE // 4, SIDE // 4) > 0.5
    return torch.nn.functional.interpolate(blocks.float(), scale_factor=4.0)[:, 0].to(torch.uint8)


@pytest.mark.parametrize("task", TASKS)
def test_image_comes_back_float_normalised_and_eval_mode_only_normalises(task):
    images = (torch.rand(4, 3, SIDE, SIDE) * 255).to(torch.uint8)
    augment = task(blur_kernel=9)
    trained = augment({"image": images, "index": torch.arange(4)})
    assert trained["image"].shape == (4, 3, SIDE, SIDE) and trained["image"].dtype == torch.float32
    assert torch.equal(trained["index"], torch.arange(4))
    evaluated = augment.eval()({"image": images})["image"]
    torch.testing.assert_close(denormalise(evaluated), images.float() / 255)


def test_segmentation_mask_follows_the_image():
    masks = blocky_masks(8)
    images = (masks * 255).unsqueeze(1).expand(8, 3, SIDE, SIDE)
    out = SegmentationAugment(**NO_COLOUR)({"image": images, "mask": masks})
    assert out["mask"].dtype == torch.uint8 and set(out["mask"].unique().tolist()) <= {0, 1}
    image_says = denormalise(out["image"]).mean(dim=1) > 0.5
    agreement = (image_says == out["mask"].bool()).float().mean()
    assert agreement > 0.97
    assert not torch.equal(out["mask"], masks)  # the affine map really moved it


def test_depth_follows_the_image_and_keeps_its_values():
    ramp = torch.linspace(0.1, 1.0, SIDE * SIDE).view(1, 1, SIDE, SIDE).expand(8, 1, SIDE, SIDE)
    images = ramp.expand(8, 3, SIDE, SIDE)
    out = DepthAugment(jitter=(0.4, 0.5, 0.25, 0.0))({"image": images, "depth": ramp * 50})
    flips_only = DepthAugment(**NO_COLOUR)
    torch.manual_seed(0)
    aligned = flips_only({"image": images, "depth": ramp * 50})
    torch.testing.assert_close(denormalise(aligned["image"])[:, :1] * 50, aligned["depth"])
    sorted_depth = out["depth"].flatten(1).sort(dim=1).values  # flips permute, never recolour
    torch.testing.assert_close(sorted_depth, (ramp * 50).flatten(1).sort(dim=1).values)


def test_detection_boxes_follow_the_image():
    boxes = [torch.tensor([[4.0, 6.0, 12.0, 22.0]]), torch.tensor([[16.0, 2.0, 30.0, 10.0]])] * 4
    images = torch.zeros(8, 3, SIDE, SIDE)
    for image, (box,) in zip(images, boxes, strict=True):
        x0, y0, x1, y1 = box.int().tolist()
        image[:, y0:y1, x0:x1] = 1.0
    out = DetectionAugment(**NO_COLOUR)({"image": images, "boxes": boxes})
    for image, (box,) in zip(denormalise(out["image"]), out["boxes"], strict=True):
        ys, xs = (image.mean(dim=0) > 0.5).nonzero(as_tuple=True)
        seen = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        torch.testing.assert_close(box, seen, atol=1.0, rtol=0)


def test_boxes_are_clipped_and_degenerate_ones_dropped():
    padded = torch.tensor(
        [[[-5.0, -5.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [5.0, 5.0, 5.5, 20.0]]]
    )
    (kept,) = clean_boxes(padded, [3], torch.Size([SIDE, SIDE]), min_size=1.0)
    torch.testing.assert_close(kept, torch.tensor([[0.0, 0.0, 10.0, 10.0]]))


def test_images_without_boxes_and_padding_are_handled():
    boxes = [torch.zeros(0, 4), torch.tensor([[1.0, 1.0, 9.0, 9.0], [2.0, 2.0, 6.0, 6.0]])]
    out = DetectionAugment(blur_kernel=9)({"image": torch.rand(2, 3, SIDE, SIDE), "boxes": boxes})
    assert [len(b) for b in out["boxes"]] == [0, 2]


def test_same_seed_gives_the_same_augmentation():
    batch = {"image": torch.rand(4, 3, SIDE, SIDE), "mask": blocky_masks(4)}
    augment = SegmentationAugment(blur_kernel=9)
    torch.manual_seed(7)
    first = augment(batch)
    torch.manual_seed(7)
    second = augment(batch)
    assert torch.equal(first["image"], second["image"]) and torch.equal(
        first["mask"], second["mask"]
    )


@pytest.mark.parametrize("kwargs", [{"blur_p": 1.5}, {"flip_p": -0.1}, {"blur_kernel": 4}])
def test_bad_arguments_raise_input_error(kwargs):
    with pytest.raises(InputError):
        ClassificationAugment(**kwargs)
