"""Aspect-true pretraining input: frames fitted to a canvas with their region, views cropped
inside the region with torchvision's RandomResizedCrop statistics, both decode paths alike."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from torchvision.transforms import RandomResizedCrop

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.data.decode import fit_to_canvas, read_image, resize_image
from ssl4gie.errors import InputError
from ssl4gie.transforms.ops import _Draw, sample_crop_boxes
from ssl4gie.transforms.views import MaskedViewCrop

KVASIR_LARGE = "cju0qoxqj9q6s0835b43399p4.jpg"  # the 1348x1070 Kvasir-SEG frame


def test_fit_to_canvas_keeps_the_aspect_and_never_enlarges():
    frame = torch.randint(0, 256, (3, 576, 720), dtype=torch.uint8)
    canvas, region = fit_to_canvas(frame, 512)
    assert canvas.shape == (3, 512, 512)
    assert region.tolist() == [0.0, 0.0, 512.0, 410.0]  # 576 * 512 / 720 = 409.6
    assert torch.equal(canvas[:, :410, :512], resize_image(frame, (410, 512)))
    assert canvas[:, 413:].eq(0).all()  # zero beyond the 2 replicated rows
    small = torch.randint(0, 256, (3, 200, 300), dtype=torch.uint8)
    canvas, region = fit_to_canvas(small, 512)
    assert region.tolist() == [0.0, 0.0, 300.0, 200.0]
    assert torch.equal(canvas[:, :200, :300], small)


def test_views_at_the_region_border_see_the_frame_not_the_padding():
    """A uniform frame gives uniform views, also where crops touch the region's edge (bicubic
    reaches 2 px beyond it): the zero padding never leaks into a view."""
    frame = torch.full((3, 90, 160), 77, dtype=torch.uint8)
    canvas, region = fit_to_canvas(frame, 160)
    recipe = MaskedViewCrop(size=64, crop_scale=(1.0, 1.0), crop_ratio=(16 / 9, 16 / 9))
    (view,) = recipe(canvas[None], region[None])
    expected = (77 / 255 - recipe.mean) / recipe.std
    torch.testing.assert_close(view, expected.expand_as(view), atol=1e-4, rtol=0)


def _ours(width: float, height: float, n: int, scale, ratio) -> tuple[np.ndarray, np.ndarray]:
    """Area fraction and aspect ratio of n crops of a ``width`` x ``height`` region."""
    region = torch.tensor([[0.0, 0.0, width, height]]).expand(n, 4)
    draw = _Draw(n, torch.device("cpu"), torch.Generator().manual_seed(0))
    boxes = sample_crop_boxes(region, scale, ratio, draw)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return (w * h / (width * height)).numpy(), (w / h).numpy()


def _torchvision(width: int, height: int, n: int, scale, ratio) -> tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(1)
    image = torch.empty(3, height, width)
    params = [RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)]
    h, w = np.array([(p[2], p[3]) for p in params], dtype=np.float64).T
    return w * h / (width * height), w / h


@pytest.mark.parametrize(
    ("original", "fitted"),
    [((720, 576), (512.0, 409.6)), ((1920, 1080), (512.0, 288.0)), ((2000, 400), (512.0, 102.4))],
)
def test_crop_statistics_relative_to_the_original_match_torchvision(original, fitted):
    """Crops of the fitted region have torchvision's area and aspect distributions on the
    original frame (the 5:1 frame exercises the centre-crop fallback)."""
    scale, ratio, n = (0.08, 1.0), (3 / 4, 4 / 3), 4000
    area, aspect = _ours(*fitted, n, scale, ratio)
    ref_area, ref_aspect = _torchvision(*original, n, scale, ratio)
    quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(
        np.quantile(area, quantiles), np.quantile(ref_area, quantiles), atol=0.03
    )
    np.testing.assert_allclose(
        np.quantile(np.log(aspect), quantiles),
        np.quantile(np.log(ref_aspect), quantiles),
        atol=0.03,
    )


def test_squashed_frames_bias_the_crop_aspect():
    """The old input, a 720x576 frame squashed to a square, shifts every crop's aspect on the
    original by 720/576: the statistics test above would catch a return to it."""
    _, aspect = _ours(256.0, 256.0, 2000, (0.08, 1.0), (3 / 4, 4 / 3))
    _, ref_aspect = _torchvision(720, 576, 2000, (0.08, 1.0), (3 / 4, 4 / 3))
    on_original = aspect * 720 / 576
    assert abs(np.median(np.log(on_original)) - np.median(np.log(ref_aspect))) > 0.15


@pytest.fixture
def real_frames(realdata, tmp_path):
    """The 5 real Kvasir-SEG frames (617x528 to 1348x1070) in a plain folder."""
    folder = tmp_path / "frames"
    shutil.copytree(realdata / "kvasir-seg" / "images", folder)
    return folder


def _batch(module: PretrainDataModule) -> dict:
    module.setup()
    batch = next(iter(module.train_dataloader()))
    return module.transfer_batch_to_device(batch, torch.device("cpu"), 0)


@pytest.mark.realdata
def test_a_real_frame_reaches_the_views_aspect_true_on_both_decode_paths(real_frames):
    """The 1348x1070 frame arrives at 512x406 (ratio kept to rounding) on both paths, with the
    same pixels; its views crop inside that region."""
    batches = {
        on_device: _batch(
            PretrainDataModule(
                Source("folder", str(real_frames)),
                max_size=512,
                batch_size=5,
                num_workers=0,
                drop_last=False,
                decode_on_device=on_device,
            )
        )
        for on_device in (False, True)
    }
    workers, device = batches[False], batches[True]
    for batch in (workers, device):
        widths = batch["region"][:, 2] - batch["region"][:, 0]
        heights = batch["region"][:, 3] - batch["region"][:, 1]
        assert (torch.maximum(widths, heights) == 512).all()  # every frame is larger than 512
    order_w, order_d = workers["index"].argsort(), device["index"].argsort()
    assert torch.equal(workers["region"][order_w], device["region"][order_d])
    torch.testing.assert_close(
        workers["image"][order_w].float(), device["image"][order_d].float(), atol=1, rtol=0
    )
    frame = read_image(real_frames / KVASIR_LARGE)
    canvas, region = fit_to_canvas(frame, 512)
    x0, y0, x1, y1 = region.tolist()
    assert (x1 - x0, y1 - y0) == (512, 406)  # 1070 * 512 / 1348 = 406.4
    assert math.isclose((x1 - x0) / (y1 - y0), 1348 / 1070, rel_tol=2e-3)
    recipe = MaskedViewCrop(size=448, crop_scale=(1.0, 1.0), crop_ratio=(1348 / 1070,) * 2)
    (view,) = recipe(canvas[None], region[None], generator=torch.Generator().manual_seed(0))
    # the whole-region crop of an image with no black rows below: the last view row is frame
    assert view[..., -1, :].abs().sum() > 0 and view.shape[-1] == 448


def test_max_size_below_the_views_is_one_line(pretrain_data):
    with pytest.raises(InputError, match=r"data.max_size 16 is smaller than the 32-px views"):
        pretrain_data(max_size=16, views=32)


def test_small_frames_are_counted_and_reported_once_per_epoch(pretrain_data):
    with pytest.warns(UserWarning, match=r"^8 frame\(s\) this epoch were smaller than the 80-px"):
        pretrain_data(max_size=80, views=80)


@pytest.fixture
def pretrain_data(synthetic):
    """``run(max_size, views)``: one epoch of Barlow Twins (resnet18) on 8 64-px frames."""
    import lightning as L

    from ssl4gie.methods import BarlowTwins
    from ssl4gie.transforms import TwoViews

    root = synthetic("hyperkvasir-unlabeled", n=8, size=64)

    def run(max_size: int, views: int) -> None:
        method = BarlowTwins(
            "resnet18", projector_dims=[16, 16], views=TwoViews(size=views), warmup_epochs=0
        )
        data = PretrainDataModule(
            Source("hyperkvasir-unlabeled", str(root)),
            max_size=max_size,
            batch_size=4,
            num_workers=0,
        )
        trainer = L.Trainer(
            accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        trainer.fit(method, data)

    return run


def test_every_pretraining_config_reads_aspect_true_frames():
    """Shipped pretraining configs use the aspect-true input, never the 256 squash."""
    from pathlib import Path

    import yaml

    configs = sorted((Path(__file__).parents[2] / "ssl4gie/configs/pretrain").glob("*.yaml"))
    assert len(configs) >= 14
    for config in configs:
        data = yaml.safe_load(config.read_text())["data"]
        assert data.get("max_size", 0) >= 448 and "size" not in data, config.name
