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
    in millimetres, 0 where invalid.

    Depth is clamped to 0..100 mm before encoding (C3VD page), so both ends carry no depth: the
    dataset's own loader (DurrLab/C3VD ``utils/exampleDataLoader.py``) sets 0 and 65535 to NaN.
    Both become 0 here, the invalid value every depth loss and metric skips (``depth > 0``).
    """
    stored = _decode(path, "UNCHANGED")
    if stored.shape[0] != 1:
        shape = tuple(stored.shape)
        raise UnreadableImageError(f"{path} is not a single-channel depth map: {shape}")
    depth = stored.to(torch.float32)
    depth[depth == 65535] = 0.0
    return depth * (C3VD_DEPTH_MAX_MM / 65535.0)


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(h, w)`` -> ``(h, w)``."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def resize_image(image: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 ``[..., C, H, W]`` to ``size`` (None: unchanged);
    stays uint8."""
    if size is None:
        return image
    return F.resize(image, list(as_size(size)), antialias=True)


def resize_nearest(values: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """Nearest resize of a mask ``[H, W]`` or a map ``[C, H, W]`` (any dtype) to ``size``
    (None: unchanged)."""
    if size is None:
        return values
    batched = values[None, None] if values.ndim == 2 else values[None]
    resized = torch.nn.functional.interpolate(batched, size=as_size(size), mode="nearest-exact")
    return resized[0, 0] if values.ndim == 2 else resized[0]


def fitted_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """``(h, w)`` of a frame resized keeping its aspect ratio so its longer side is ``max_size``,
    or unchanged if it is already no larger (frames are never upsampled here)."""
    scale = min(1.0, max_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def fit_to_canvas(image: torch.Tensor, max_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Aspect-true input: resize uint8 ``[3, H, W]`` (antialiased) to :func:`fitted_size` and
    place it in the top-left corner of a zero ``[3, max_size, max_size]`` canvas.

    Returns:
        the canvas, and float32 ``[4]`` ``(x0, y0, x1, y1)``: the frame's region on it in pixels.
    """
    height, width = fitted_size(*image.shape[-2:], max_size)
    canvas = image.new_zeros(image.shape[0], max_size, max_size)
    _place(canvas, resize_image(image, (height, width)))
    return canvas, _region(height, width)


_EDGE = 2  # replicated pixels beyond a region: the reach of bicubic resampling at its border


def _place(canvas: torch.Tensor, frame: torch.Tensor) -> None:
    """Copy ``frame`` ``[..., C, h, w]`` into the top-left corner of ``canvas`` and replicate
    its last column and row ``_EDGE`` pixels further, so that views resampled at the region's
    border see the frame's edge (as a crop of the frame alone would), not the zero padding."""
    height, width = frame.shape[-2:]
    canvas[..., :height, :width] = frame
    canvas[..., :height, width : width + _EDGE] = frame[..., :, -1:]
    canvas[..., height : height + _EDGE, : width + _EDGE] = canvas[
        ..., height - 1 : height, : width + _EDGE
    ]


def _region(height: int, width: int) -> torch.Tensor:
    return torch.tensor([0.0, 0.0, float(width), float(height)])


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
    images = _decoded_or_replaced(encoded, device)
    resized = torch.empty(len(images), 3, *as_size(size), dtype=torch.uint8, device=device)
    for members in _same_size(images):
        resized[members] = resize_image(torch.stack([images[i] for i in members]), size)
    return resized


def decode_fit_batch(
    encoded: Sequence[torch.Tensor], max_size: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode JPEG bytes on ``device`` and fit them to canvases: :func:`fit_to_canvas` batched.

    The batch goes to the decoder at once (nvjpeg on CUDA); frames of one size are resized
    together, so the work per batch grows with the number of distinct frame sizes (a handful
    in real datasets), not with the batch. Undecodable files are replaced as in
    :func:`decode_resize_batch`.

    Returns:
        uint8 ``[B, 3, max_size, max_size]`` canvases and float32 ``[B, 4]`` regions on ``device``.
    """
    images = _decoded_or_replaced(encoded, device)
    canvases = torch.empty(len(images), 3, max_size, max_size, dtype=torch.uint8, device=device)
    regions = torch.zeros(len(images), 4)
    for members in _same_size(images):
        height, width = fitted_size(*images[members[0]].shape[-2:], max_size)
        fitted = resize_image(torch.stack([images[i] for i in members]), (height, width))
        placed = canvases.new_zeros(len(members), 3, max_size, max_size)
        _place(placed, fitted)
        canvases[members] = placed
        regions[members] = _region(height, width)
    return canvases, regions.to(device)


def _same_size(images: Sequence[torch.Tensor]) -> list[list[int]]:
    """Positions of ``images`` grouped by ``(H, W)``, for one resize per group."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape[-2:]), []).append(i)
    return list(groups.values())


def _decoded_or_replaced(
    encoded: Sequence[torch.Tensor], device: str | torch.device
) -> list[torch.Tensor]:
    """Decode a batch of JPEGs; an undecodable one takes the first decodable of the batch."""
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
            stacklevel=3,
        )
    return [images[good[0]] if image is None else image for image in images]


def _decode_or_none(data: torch.Tensor, device: str | torch.device) -> torch.Tensor | None:
    try:
        return decode_jpegs([data], device)[0]
    except RuntimeError:
        return None
