"""The scene mask on real frames: HyperKvasir's green ScopeGuide box and burnt-in text go, the
scene stays (Kvasir-SEG, CVC-ClinicDB and C3VD frames)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2.functional import resize

from ssl4gie.transforms import MaskedViewCrop, estimate_fov, scene_mask
from ssl4gie.viz import denormalise

pytestmark = pytest.mark.realdata


def frames(folder: Path, pattern: str) -> list[torch.Tensor]:
    paths = sorted(folder.glob(pattern))
    assert paths, f"no {pattern} in {folder}"
    return [
        torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths
    ]


def teal(images: torch.Tensor) -> torch.Tensor:
    """The ScopeGuide box colour (about RGB 18, 163, 134) in uint8 ``[B, 3, H, W]``, by a plain
    colour rule: bool ``[B, H, W]``."""
    red, green, blue = images.float().unbind(dim=1)
    return (green > 1.5 * red) & (green > 1.1 * blue) & (green > 100)


def green_box(images: torch.Tensor) -> torch.Tensor:
    """Ground truth: the teal pixels in the lower-left quadrant of uint8 ``[B, 3, H, W]``."""
    box = teal(images)
    height, width = box.shape[-2:]
    box[:, : height // 2] = False
    box[:, :, width // 2 :] = False
    return box


def central_disc(height: int, width: int, radius: float = 0.25) -> torch.Tensor:
    """The scene centre: a disc of ``radius`` times the shorter side around the frame centre."""
    rows, cols = torch.meshgrid(
        torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij"
    )
    return (cols - width / 2) ** 2 + (rows - height / 2) ** 2 <= (radius * min(height, width)) ** 2


def test_scene_mask_excludes_the_green_box_and_keeps_the_centre_of_hyperkvasir_frames(realdata):
    images = torch.stack(frames(realdata / "hyperkvasir/unlabeled-images/images", "*.jpg"))
    masks, fovs = scene_mask(images)[:, 0], estimate_fov(images)[:, 0]
    boxes, centre = green_box(images), central_disc(*images.shape[-2:])
    for mask, fov, box in zip(masks, fovs, boxes, strict=True):
        assert box.sum() > 20_000  # every frame shows the box (about 214 x 170 px)
        assert fov[box].float().mean() > 0.9  # the plain field of view keeps it
        assert mask[box].float().mean() <= 0.02
        assert mask[centre].float().mean() >= 0.98
        assert mask[fov].float().mean() >= 0.75  # box and text are about 17 % of the window


def test_scene_mask_keeps_the_centre_of_kvasir_seg_frames(realdata):
    for image in frames(realdata / "kvasir-seg/images", "*.jpg"):  # sizes differ
        mask = scene_mask(image[None])[0, 0]
        assert mask[central_disc(*image.shape[-2:])].float().mean() >= 0.98


@pytest.mark.slow  # decodes 20 + 10 frames, C3VD's at 1350 x 1080
@pytest.mark.parametrize(
    ("folder", "pattern"),
    [("cvc-clinicdb-sequence/images", "*.jpg"), ("c3vd/cecum_t1_a", "*_color.png")],
)
def test_scene_mask_keeps_most_of_frames_without_overlays(realdata, folder, pattern):
    images = torch.stack(frames(realdata / folder, pattern))
    masks, fovs = scene_mask(images), estimate_fov(images)
    kept = (masks & fovs).flatten(1).sum(1) / fovs.flatten(1).sum(1)
    centre = central_disc(*images.shape[-2:])
    assert masks[:, 0][:, centre].all()
    assert kept.min() >= 0.9 and kept.mean() >= 0.95  # specular highlights in the rim go


def test_fov_views_of_hyperkvasir_frames_show_no_green_box(realdata):
    images = torch.stack(frames(realdata / "hyperkvasir/unlabeled-images/images", "*.jpg"))
    images = resize(images, [288, 360], antialias=True)  # as a datamodule loads them
    recipe = MaskedViewCrop.mae(size=64, crop_scale=(0.5, 1.0))
    plain = recipe(images, generator=torch.Generator().manual_seed(0))[0]
    recipe.fov = True
    view, scene = recipe(images, generator=torch.Generator().manual_seed(0))
    shown = [teal((denormalise(v) * 255).round().to(torch.uint8)).sum() for v in (plain, view)]
    assert shown[0] > 500  # plain views show the box
    assert shown[1] <= 0.01 * shown[0]
    assert not scene.all()
