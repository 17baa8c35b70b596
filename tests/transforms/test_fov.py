import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.transforms import estimate_fov, fov_boxes

SIDE = 96


def circle(cx, cy, radius, side=SIDE):
    yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2


def endoscopy_frame(truth, generator):
    """Textured scene inside ``truth``, a dark lumen touching its rim, text in a border corner."""
    scene = 0.3 + 0.5 * torch.rand(3, SIDE, SIDE, generator=generator)
    image = scene * truth + 0.03 * torch.rand(3, SIDE, SIDE, generator=generator)
    ys, xs = truth.nonzero().float().mean(dim=0)
    lumen = circle(float(xs) + 20, float(ys), 9) & truth
    image[:, lumen] = 0.04
    image[:, 2:5, 2:20:2] = 1.0  # one line of burnt-in "text" in the border corner
    return image.clamp(0, 1)


CASES = [(48, 48, 40), (40, 52, 30), (48, 48, 60), (55, 45, 35)]  # the third is clipped


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_fov_mask_matches_synthetic_circles():
    generator = torch.Generator().manual_seed(0)
    truths = torch.stack([circle(*case) for case in CASES])
    images = torch.stack([endoscopy_frame(t, generator) for t in truths])
    masks = estimate_fov(images)
    assert masks.shape == (len(CASES), 1, SIDE, SIDE) and masks.dtype == torch.bool
    for mask, truth in zip(masks[:, 0], truths, strict=True):
        assert iou(mask, truth) > 0.95
        if not truth[:8, :24].any():  # the text lies on the black border
            assert not mask[2:5, 2:20].any()


def test_fov_accepts_uint8_and_gives_the_same_mask():
    images = torch.stack([endoscopy_frame(circle(48, 48, 40), torch.Generator().manual_seed(1))])
    as_uint8 = (images * 255).round().to(torch.uint8)
    assert iou(estimate_fov(as_uint8), estimate_fov(images)) > 0.99


def test_fov_boxes_bound_the_mask_and_default_to_the_whole_image():
    masks = torch.zeros(2, 1, 10, 12, dtype=torch.bool)
    masks[0, 0, 2:7, 3:9] = True
    boxes = fov_boxes(masks)
    torch.testing.assert_close(boxes, torch.tensor([[3.0, 2.0, 9.0, 7.0], [0.0, 0.0, 12.0, 10.0]]))


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"work_size": 4}])
def test_bad_fov_arguments_raise_input_error(kwargs):
    with pytest.raises(InputError):
        estimate_fov(torch.rand(1, 3, 16, 16), **kwargs)
