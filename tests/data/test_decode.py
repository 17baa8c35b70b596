"""read_image / read_mask / read_depth_c3vd / resizing / batched JPEG decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ssl4gie.data.decode import (
    UnreadableImageError,
    decode_jpegs,
    read_depth_c3vd,
    read_image,
    read_mask,
    resize_image,
    resize_nearest,
)

from .conftest import jpeg_bytes, rgb, save


def as_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)


@pytest.mark.parametrize("suffix", ["png", "tif", "bmp", "webp"])
def test_lossless_formats_decode_exactly(tmp_path, suffix):
    array = rgb(10, 14)
    options = {"lossless": True} if suffix == "webp" else {}
    image = read_image(save(array, tmp_path / f"x.{suffix}", **options))
    assert image.dtype == torch.uint8 and image.shape == (3, 10, 14)
    assert torch.equal(image, as_chw(array))


def test_jpeg_matches_pil(tmp_path):
    path = save(rgb(), tmp_path / "x.jpg")
    expected = as_chw(np.array(Image.open(path).convert("RGB")))
    assert (read_image(path).int() - expected.int()).abs().max() <= 2


def test_content_decides_not_suffix(tmp_path):
    array = rgb()
    assert torch.equal(read_image(save(array, tmp_path / "png.jpg", "PNG")), as_chw(array))


def test_odd_modes_become_rgb(tmp_path):
    array = rgb(8, 9)
    Image.fromarray(array).convert("RGBA").save(tmp_path / "rgba.png")
    assert torch.equal(read_image(tmp_path / "rgba.png"), as_chw(array))
    gray = read_image(save(array[..., 0], tmp_path / "gray.png"))
    assert gray.shape == (3, 8, 9) and torch.equal(gray[0], gray[2])
    palette = Image.fromarray(array).convert("P")
    palette.save(tmp_path / "palette.png")
    expected = as_chw(np.array(palette.convert("RGB")))
    assert torch.equal(read_image(tmp_path / "palette.png"), expected)


def test_cmyk_jpeg_matches_pil(tmp_path):
    Image.fromarray(rgb()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    expected = as_chw(np.array(Image.open(tmp_path / "cmyk.jpg").convert("RGB")))
    assert (read_image(tmp_path / "cmyk.jpg").int() - expected.int()).abs().max() <= 2


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_is_scaled_to_8_bit(tmp_path, suffix):
    levels = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    image = read_image(save(levels, tmp_path / f"deep.{suffix}"))
    assert image.dtype == torch.uint8
    assert image[:, 0].tolist() == [[0, 1, 128, 255]] * 3


@pytest.mark.parametrize(
    "content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0garbage", "truncated"]
)
def test_unreadable_files_raise(tmp_path, content):
    if content == "truncated":
        content = jpeg_bytes(rgb(64, 64))[:300]
    (tmp_path / "bad.jpg").write_bytes(content)
    with pytest.raises(UnreadableImageError):
        read_image(tmp_path / "bad.jpg")


def test_missing_file_raises(tmp_path):
    with pytest.raises(UnreadableImageError, match="cannot read"):
        read_image(tmp_path / "nope.jpg")


def test_jpeg_mask_is_thresholded(tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    decoded = read_mask(save(mask, tmp_path / "mask.jpg", quality=60))
    assert decoded.dtype == torch.uint8 and decoded.shape == (32, 32)
    assert set(decoded.unique().tolist()) == {0, 1}
    assert (decoded.numpy() != (mask > 0)).mean() < 0.02


def test_rgb_mask_and_label_map(tmp_path):
    mask = np.zeros((6, 7, 3), np.uint8)
    mask[2:4, 2:5] = 255
    assert read_mask(save(mask, tmp_path / "m.tif")).sum() == 6
    ids = np.array([[0, 1, 2, 3]], np.uint8)
    assert read_mask(save(ids, tmp_path / "ids.png"), binary=False).tolist() == [[0, 1, 2, 3]]


def test_c3vd_depth_is_millimetres(tmp_path):
    stored = np.array([[0, 65535, 32768]], np.uint16)
    depth = read_depth_c3vd(save(stored, tmp_path / "0001_depth.tiff"))
    assert depth.dtype == torch.float32 and depth.shape == (1, 1, 3)
    assert depth[0, 0].tolist() == pytest.approx([0.0, 0.0, 32768 / 65535 * 100])  # 65535 invalid


def test_resize_keeps_dtype_and_values():
    image = torch.full((3, 30, 40), 77, dtype=torch.uint8)
    resized = resize_image(image, (12, 16))
    assert resized.dtype == torch.uint8 and resized.shape == (3, 12, 16)
    assert (resized == 77).all()
    mask = torch.zeros(30, 40, dtype=torch.uint8)
    mask[:, 20:] = 3
    assert set(resize_nearest(mask, 8).unique().tolist()) == {0, 3}
    assert resize_nearest(torch.ones(1, 5, 5), (2, 3)).shape == (1, 2, 3)


def test_decode_jpegs_on_cpu_matches_read_image(tmp_path):
    paths = [save(rgb(), tmp_path / f"{k}.jpg") for k in range(3)]
    encoded = [torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8) for path in paths]
    decoded = decode_jpegs(encoded, "cpu")
    assert all(torch.equal(d, read_image(p)) for d, p in zip(decoded, paths, strict=True))
