import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.transforms import estimate_fov, fov_boxes, scene_mask

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
@pytest.mark.parametrize("function", [estimate_fov, scene_mask])
def test_bad_fov_arguments_raise_input_error(kwargs, function):
    with pytest.raises(InputError):
        function(torch.rand(1, 3, 16, 16), **kwargs)


# --- scene mask: the field of view minus burnt-in overlays -------------------------------------

TEAL = torch.tensor([18, 163, 134]) / 255  # the ScopeGuide box colour in HyperKvasir frames


def smooth_field(generator, side=SIDE, cells=8):
    """Low-frequency texture in [0, 1] ``[side, side]`` (bilinear upsampling of random cells)."""
    coarse = torch.rand(1, 1, cells, cells, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear")[0, 0]


def mucosa(colour, generator, grain=0.02):
    """A smooth shaded scene of ``colour`` with fine noise of amplitude ``grain``: [3, S, S]."""
    shade = 0.75 + 0.4 * smooth_field(generator)
    noise = grain * torch.rand(3, SIDE, SIDE, generator=generator)
    return (torch.tensor(colour).view(3, 1, 1) * shade + noise).clamp(0, 1)


def overlay_frame(generator):
    """A reddish scene in a circle, a teal UI box over the lower-left rim (with a dark scope
    curve drawn in it) and two lines of white text over the upper-left rim.

    Returns the image and the bool truths ``[S, S]`` of the box, the text strokes and the window.
    """
    window = circle(48, 48, 46)
    image = mucosa((0.85, 0.45, 0.35), generator) * window
    box = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    box[66:92, 2:32] = True
    image[:, box] = TEAL.view(3, 1)
    image[:, 74:86, 16] = 0.05  # the scope's course, a dark curve inside the box
    image[:, 80, 10:17] = 0.05
    text = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    for row in (22, 28):  # two lines of glyphs (1-px strokes, 1-px gaps) in the left 20 %
        text[row : row + 3, 6:18:2] = True
        text[row, 6:18] = True
    image[:, text] = 1.0
    return image, box, text, window


def test_scene_mask_removes_a_ui_box_and_text_and_keeps_the_scene():
    generator = torch.Generator().manual_seed(0)
    frames = [overlay_frame(generator) for _ in range(3)]
    images = torch.stack([frame[0] for frame in frames])
    masks, fovs = scene_mask(images), estimate_fov(images)
    assert masks.shape == (3, 1, SIDE, SIDE) and masks.dtype == torch.bool
    assert not (masks & ~fovs).any()  # the scene lies in the field of view
    centre = circle(48, 48, 24)
    for mask, fov, (_, box, text, window) in zip(masks[:, 0], fovs[:, 0], frames, strict=True):
        assert fov[box].all() and fov[text].all()  # the plain FOV keeps the overlays
        assert mask[box].float().mean() == 0  # the box, its drawing included, is gone
        assert mask[text].float().mean() <= 0.1  # and the text strokes
        assert mask[centre].all()  # the scene centre stays
        scene = window & ~box & ~circle(12, 25, 12)  # what is neither overlay nor near the text
        assert mask[scene].float().mean() >= 0.9


def test_scene_mask_keeps_green_textured_mucosa_blue_dye_and_red_mucosa():
    generator = torch.Generator().manual_seed(1)
    window = circle(48, 48, 46)
    green = mucosa((0.3, 0.65, 0.45), generator, grain=0.25)  # textured, green dominant
    red = mucosa((0.85, 0.45, 0.35), generator)  # smooth pink-red mucosa
    dyed = red.clone()
    dye = circle(60, 55, 18)
    dyed[:, dye] = torch.tensor([0.24, 0.45, 0.67]).view(3, 1)  # flat indigo carmine pool
    images = torch.stack([green, red, dyed]) * window
    masks = scene_mask(images)[:, 0]
    for mask in masks:
        assert mask[window].float().mean() >= 0.95
        assert mask[circle(48, 48, 30)].all()
    assert masks[2][dye].all()


def test_scene_mask_accepts_uint8_and_has_no_host_sync():
    image, *_ = overlay_frame(torch.Generator().manual_seed(2))
    as_uint8 = (image[None] * 255).round().to(torch.uint8)
    assert iou(scene_mask(as_uint8), scene_mask(image[None])) > 0.99
    # meta tensors have no values: any .item(), bool() or branch on a value would raise
    meta = scene_mask(torch.empty(2, 3, 70, 90, device="meta"))
    assert meta.shape == (2, 1, 70, 90) and meta.dtype == torch.bool
