"""Decode image, mask and depth files into the tensors of the sample contract.

``read_image`` takes the fast path, ``torchvision.io.decode_image`` on the file's bytes, for
JPEG, PNG, GIF and WebP, chosen by the file's first bytes and never by its suffix (a PNG named
``.jpg`` decodes). Anything else (TIFF, BMP, ...) goes through PIL. Odd modes become RGB:
grayscale is replicated, alpha is dropped, palettes are expanded, CMYK JPEGs are converted and
16-bit images are scaled to 8 bits. EXIF orientation is not applied (endoscopy frames carry none).

Files that cannot be read raise :class:`UnreadableImageError` (an ``OSError``), which the
datasets catch to replace a bad sample instead of stopping training.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2 import functional as F

# Magic numbers of the formats torchvision.io decodes natively.
_TORCHVISION_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
C3VD_DEPTH_MAX_MM = 100.0  # C3VD stores depth as uint16 0..65535 for 0..100 mm.


class UnreadableImageError(OSError):
    """A file that is missing, empty, truncated or not an image this library can decode."""


@contextlib.contextmanager
def _quiet_torchvision() -> Iterator[None]:
    """Silence torchvision 0.29's per-call deprecation warning for its image decoders."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        yield


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise UnreadableImageError(f"cannot read {path}: {err}") from err
    if not data:
        raise UnreadableImageError(f"empty file {path}")
    return data


def _is_torchvision_format(data: bytes) -> bool:
    return data.startswith(_TORCHVISION_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Scale 16-bit values (0..65535) to uint8 with rounding; pass uint8 through."""
    if values.dtype == torch.uint8:
        return values
    return ((values.to(torch.int32) + 128) // 257).clamp_(0, 255).to(torch.uint8)


def _decode_with_torchvision(data: bytes, mode: str) -> torch.Tensor:
    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    with _quiet_torchvision():
        return decode_image(encoded, ImageReadMode[mode])


def _decode_with_pil(data: bytes, mode: str) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as pil:
        high_depth = pil.mode.startswith("I") or pil.mode == "F"
        if mode == "UNCHANGED" or high_depth:
            stored = np.array(pil).astype(np.uint8) if pil.mode == "1" else np.array(pil)
        else:
            stored = np.array(pil.convert("RGB" if mode == "RGB" else "L"))
    values = torch.from_numpy(stored)
    values = values.permute(2, 0, 1) if values.ndim == 3 else values[None]
    if high_depth and mode != "UNCHANGED":
        values = _to_uint8(values)
        values = values.expand(3, -1, -1) if mode == "RGB" else values
    return values.contiguous()


def _decode(path: str | os.PathLike, mode: str) -> torch.Tensor:
    """Decode ``path`` to ``[C, H, W]``; ``mode`` is ``"RGB"``, ``"GRAY"`` or ``"UNCHANGED"``.

    RGB and GRAY give uint8 for 8-bit files and uint16 for 16-bit PNGs (scaled by the callers);
    UNCHANGED keeps the stored channels and dtype.
    """
    data = _read_bytes(path)
    try:
        if _is_torchvision_format(data):
            return _decode_with_torchvision(data, mode)
        return _decode_with_pil(data, mode)
    except (RuntimeError, OSError, ValueError, SyntaxError) as err:
        raise UnreadableImageError(f"cannot decode {path}: {err}") from err


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode an image file to RGB: uint8 ``[3, H, W]``.

    Raises :class:`UnreadableImageError` if the file is missing, empty or cannot be decoded.
    """
    return _to_uint8(_decode(path, "RGB"))


def read_mask(path: str | os.PathLike, binary: bool = True) -> torch.Tensor:
    """Decode a mask file: uint8 ``[H, W]``.

    ``binary=True`` (polyp masks, often lossy JPEGs with values near 0 and 255): the gray level
    is thresholded at 128 to {0, 1}. ``binary=False`` keeps the first stored channel as class
    ids (label maps).
    """
    if binary:
        return (_to_uint8(_decode(path, "GRAY")[0]) >= 128).to(torch.uint8)
    return _decode(path, "UNCHANGED")[0].to(torch.uint8)


def read_depth_c3vd(path: str | os.PathLike) -> torch.Tensor:
    """Decode a C3VD ``<nnnn>_depth.tiff`` (uint16, 0..65535 = 0..100 mm): float32 ``[1, H, W]``
    in millimetres (0, the invalid value, stays 0)."""
    stored = _decode(path, "UNCHANGED")
    if stored.shape[0] != 1:
        shape = tuple(stored.shape)
        raise UnreadableImageError(f"{path} is not a single-channel depth map: {shape}")
    return stored.to(torch.float32) * (C3VD_DEPTH_MAX_MM / 65535.0)


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(h, w)`` -> ``(h, w)``."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def resize_image(image: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 ``[C, H, W]`` to ``size``; stays uint8."""
    return F.resize(image, list(as_size(size)), antialias=True)


def resize_nearest(values: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Nearest resize of a mask ``[H, W]`` or a map ``[C, H, W]`` (any dtype) to ``size``."""
    batched = values[None, None] if values.ndim == 2 else values[None]
    resized = torch.nn.functional.interpolate(batched, size=as_size(size), mode="nearest-exact")
    return resized[0, 0] if values.ndim == 2 else resized[0]


def decode_jpegs(encoded: Sequence[torch.Tensor], device: str | torch.device) -> list[torch.Tensor]:
    """Decode a batch of JPEGs (1-D uint8 CPU tensors of file bytes) to RGB uint8 ``[3, H, W]``
    tensors on ``device``. On CUDA this runs batched on nvjpeg; on CPU it decodes one by one."""
    with _quiet_torchvision():
        return decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)


def decode_resize_batch(
    encoded: Sequence[torch.Tensor], size: int | Sequence[int], device: str | torch.device
) -> torch.Tensor:
    """Decode JPEG bytes on ``device`` and resize them: uint8 ``[B, 3, *size]``.

    The whole batch goes to the decoder at once (nvjpeg on CUDA). A file that fails to decode
    (corrupted after indexing) does not stop training: its slot takes the first decodable image
    of the batch, with a warning. Raises :class:`UnreadableImageError` only if none decodes.
    """
    try:
        images = decode_jpegs(encoded, device)
    except RuntimeError:
        images = [_decode_or_none(data, device) for data in encoded]
    good = [i for i, image in enumerate(images) if image is not None]
    if not good:
        raise UnreadableImageError(f"none of the {len(images)} JPEGs of a batch decodes")
    if len(good) < len(images):
        warnings.warn(
            f"replaced {len(images) - len(good)} undecodable JPEG(s) in a batch by others of the"
            " batch; run 'ssl4gie data index' on the folder to list bad files",
            stacklevel=2,
        )
    filled = [images[good[0]] if image is None else image for image in images]
    return torch.stack([resize_image(image, size) for image in filled])


def _decode_or_none(data: torch.Tensor, device: str | torch.device) -> torch.Tensor | None:
    try:
        return decode_jpegs([data], device)[0]
    except RuntimeError:
        return None
