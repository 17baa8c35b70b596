"""Endoscopy field-of-view (FOV) masks, estimated per image from a batch with tensor ops only.

Endoscopy frames show the scene through a circular or octagonal window on a black border, and
the border often carries burnt-in text or a position-indicator box. :func:`estimate_fov` finds
the window so that view recipes can keep their crops inside it and blank everything outside it.

Method (all batched, no host synchronisation, cost independent of the input size):

1. **Brightness.** The maximum over RGB, area-averaged down to ``work_size x work_size``; the
   averaging also suppresses JPEG noise and thin text strokes.
2. **Threshold.** Pixels brighter than ``threshold`` (in [0, 1]) are candidate FOV pixels.
3. **Opening.** A 3x3 erosion then dilation at the working size removes bright structures
   thinner than about 3/``work_size`` of the image (text glyphs, thin overlay lines).
4. **Largest bright region.** Connected components by label propagation: every bright pixel
   starts with its own index and takes the maximum over its 3x3 neighbourhood for
   ``2 * work_size`` steps (enough for any convex region and most others); the label with the
   most pixels wins. Text blocks and indicator boxes not touching the window are dropped.
5. **Fill.** A pixel between the first and last FOV pixel of its row, or of its column, is
   inside: this fills dark lumen and specular holes and, for a convex window, restores notches
   where the lumen reaches the rim.
6. **Upsample** to the input size (bilinear, threshold 0.5).

Burnt-in text and boxes that overlap the window stay inside this mask; :func:`scene_mask`
removes them.

Scene mask
----------
Endoscopy processors burn a user interface into the recorded frames: patient and time text in
the upper left and, on colonoscopes with magnetic shape imaging (Olympus ScopeGuide), a
position box showing the scope's course in the lower left. HyperKvasir's frames carry both: its
paper describes the green picture-in-picture of the endoscope's position and configuration
(ScopeGuide, Olympus) in part of the images [Borgli et al. 2020, "HyperKvasir, a comprehensive
multi-class image and video dataset for gastrointestinal endoscopy", Scientific Data 7:283];
Kvasir-SEG frames [Jha et al. 2020, MMM] come from the same hospitals and show the text, some
the box. Both overlap the window and correlate with the organ and the procedure, so a model can
learn them instead of the mucosa. :func:`scene_mask` is the field of view minus these overlays,
found at ``work_size x work_size`` (area-averaged RGB):

1. **Field of view**: steps 1-5 above at 64 x 64, upsampled to the working size.
2. **Flat colour boxes**: pixels of saturated green or cyan (``G > 1.5 R``, ``G >= B``,
   ``G > 0.3``) whose 3x3 colour standard deviation is below 0.04, opened by a square of about
   1/64 of the frame (isolated pixels go), closed by one of about 1/12 (the drawings and text
   inside the box are filled) and grown by 1/64. Facts relied on: white-light mucosa is red
   dominant (``R > G``), stains used in the colon (indigo carmine, methylene blue) are blue
   (``B > G``), and green in the scene (bile, narrow-band tints) is assumed textured, while
   the UI box is one flat colour.
3. **Burnt-in text**: thin bright strokes (white top-hat of the darkest channel above 0.15,
   over a square of about 1/50 of the frame) that line up horizontally (at least 25 % of a
   3 x 9 window) in the **rim** (within 15 % of the frame of a side of the field of view's
   bounding box), grown by 5 x 15 to cover their glyphs. Processors draw text beside
   the window, over the border and the window's edge, never across its centre; specular
   highlights are thin and bright too, so only in the rim are they taken for text (and go).
4. **Upsample** to the input size (bilinear, threshold 0.5).

Boxes of other colours (red, blue, grey) and text far from the rim are not removed; a scene
with large flat green-cyan areas (dye pools lit green, a green cap) would lose them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl4gie.errors import InputError

__all__ = ["estimate_fov", "fov_boxes", "scene_mask"]

FOV_WORK_SIZE = 64  # working side of the field-of-view steps 1-5
# a UI box pixel: G > 1.5 R, G >= B, G > 0.3 (the ScopeGuide box is about RGB (18, 163, 134))
UI_GREEN_OVER_RED = 1.5
UI_MIN_GREEN = 0.3
UI_MAX_STD = 0.04  # 3x3 colour standard deviation of a flat UI colour
TEXT_TOPHAT = 0.15  # whiteness above the local opening for a text stroke
TEXT_DENSITY = 0.25  # fraction of stroke pixels in a 3 x 9 window for a text line
RIM = 0.15  # width of the rim where text is looked for, as a fraction of the frame


def estimate_fov(images: Tensor, threshold: float = 0.1, work_size: int = 64) -> Tensor:
    """Estimate the field-of-view mask of each image.

    Args:
        images: ``[B, 3, H, W]`` float in [0, 1] (or uint8, scaled by 1/255).
        threshold: brightness (max over RGB, in [0, 1]) above which a pixel may be in the FOV.
        work_size: side of the square working resolution of steps 1-5 (see module docstring).

    Returns:
        bool ``[B, 1, H, W]``, True inside the field of view.
    """
    unit = _unit_rgb(images, threshold, work_size)
    return _resize(_fov_region(unit, threshold, work_size), images.shape[-2:])


def scene_mask(images: Tensor, threshold: float = 0.1, work_size: int = 256) -> Tensor:
    """The field of view minus burnt-in overlays (UI boxes, text) of each image.

    Batched tensor operations at a fixed working size: no host synchronisation, and a cost
    that grows with the input only through the first area-averaging and the last upsampling.

    Args:
        images: ``[B, 3, H, W]`` float in [0, 1] (or uint8, scaled by 1/255).
        threshold: brightness of the field of view (as :func:`estimate_fov`).
        work_size: side of the square working resolution of the overlay steps (see the
            module docstring); 256 resolves the strokes of text on 720 x 576 frames.

    Returns:
        bool ``[B, 1, H, W]``, True where the scene is visible.
    """
    unit = _unit_rgb(images, threshold, work_size)
    fov = _fov_region(unit, threshold, FOV_WORK_SIZE)
    small = F.interpolate(unit, size=(work_size, work_size), mode="area")
    overlays = _ui_boxes(small) | _text(small, _rim(fov_boxes(fov) / FOV_WORK_SIZE, work_size))
    return _resize(_resize(fov, small.shape[-2:]) & ~overlays, images.shape[-2:])


def _unit_rgb(images: Tensor, threshold: float, work_size: int) -> Tensor:
    """Check the arguments; ``[B, 3, H, W]`` uint8 or float -> float in [0, 1]."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"FOV images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if not 0.0 < threshold < 1.0:
        raise InputError(
            f"FOV threshold must be in (0, 1), got {threshold}; 0.1 suits JPEG borders"
        )
    if work_size < 8:
        raise InputError(f"FOV work_size must be at least 8, got {work_size}")
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    return images.float() / scale


def _fov_region(images: Tensor, threshold: float, work_size: int) -> Tensor:
    """Steps 1-5 of the module docstring: ``[B, 3, H, W]`` in [0, 1] -> bool ``[B, 1, s, s]``."""
    brightness = images.amax(dim=1, keepdim=True)
    small = F.interpolate(brightness, size=(work_size, work_size), mode="area")
    bright = _open(small > threshold)
    return _fill_spans(_largest_component(bright))


def _rim(boxes: Tensor, size: int) -> Tensor:
    """bool ``[B, 1, size, size]``: within ``RIM`` of a side of each box ``[B, 4]`` (``x0, y0,
    x1, y1`` as fractions of the frame)."""
    centres = (torch.arange(size, device=boxes.device) + 0.5) / size
    x0, y0, x1, y1 = (side.view(-1, 1, 1, 1) for side in boxes.unbind(dim=1))
    columns = (centres < x0 + RIM) | (centres > x1 - RIM)  # [B, 1, 1, size]
    rows = (centres.view(-1, 1) < y0 + RIM) | (centres.view(-1, 1) > y1 - RIM)  # [B, 1, size, 1]
    return columns | rows


def _ui_boxes(small: Tensor) -> Tensor:
    """Flat green-cyan UI boxes, filled (scene mask step 2): bool ``[B, 1, s, s]``."""
    red, green, blue = small.unbind(dim=1)
    colour = (green > UI_GREEN_OVER_RED * red) & (green >= blue) & (green > UI_MIN_GREEN)
    mean = F.avg_pool2d(small, 3, stride=1, padding=1, count_include_pad=False)
    square = F.avg_pool2d(small.square(), 3, stride=1, padding=1, count_include_pad=False)
    flat = (square - mean.square()).clamp_min(0).sum(dim=1).sqrt() < UI_MAX_STD
    size = small.shape[-1]
    grain, fill = _odd(size / 64), _odd(size / 12)
    opened = _dilate(_erode((colour & flat).unsqueeze(1), grain), grain)
    return _dilate(_erode(_dilate(opened, fill), fill), grain)


def _text(small: Tensor, rim: Tensor) -> Tensor:
    """Thin bright strokes in horizontal lines in the ``rim``, grown to glyphs (step 3): bool
    ``[B, 1, s, s]``."""
    whiteness = small.amin(dim=1, keepdim=True)
    size = _odd(small.shape[-1] / 50)
    opened = _max_filter(-_max_filter(-whiteness, size, size), size, size)
    strokes = (whiteness - opened > TEXT_TOPHAT).float()
    lined = F.avg_pool2d(strokes, (3, 9), 1, (1, 4), count_include_pad=False) > TEXT_DENSITY
    return _dilate(lined & (strokes > 0) & rim, 5, 15)


def _odd(length: float) -> int:
    """The odd integer nearest ``length``, at least 3: the side of a centred window."""
    return max(3, 2 * round((length - 1) / 2) + 1)


def _dilate(mask: Tensor, height: int, width: int | None = None) -> Tensor:
    """Dilate a bool ``[B, 1, h, w]`` mask by a ``height x width`` rectangle (odd sides),
    separably."""
    width = height if width is None else width
    return _max_filter(mask.to(torch.uint8), height, width).bool()


def _max_filter(values: Tensor, height: int, width: int) -> Tensor:
    """Maximum of float (or non-negative integer) ``[B, C, h, w]`` over a centred ``height x
    width`` window (odd sides; outside the frame is ignored): the result of ``F.max_pool2d(
    values, (height, width), 1, (height // 2, width // 2))``, many times faster on CPU and for
    uint8 masks too. Separable, and along each axis
    ``log2(side) + 1`` maxima of shifted slices: maxima over windows of 1, 2, 4, ... elements,
    then two overlapping windows of the largest power of two cover the ``side``."""
    for dim, side in ((-1, width), (-2, height)):
        pad = (side // 2,) * 2 if dim == -1 else (0, 0, side // 2, side // 2)
        outside = float("-inf") if values.is_floating_point() else 0
        windows, span = F.pad(values, pad, value=outside), 1
        while 2 * span <= side:  # windows[i] = max of the span elements from i
            ends = windows.shape[dim] - span
            windows = torch.maximum(windows.narrow(dim, 0, ends), windows.narrow(dim, span, ends))
            span *= 2
        length = values.shape[dim]
        values = torch.maximum(
            windows.narrow(dim, 0, length), windows.narrow(dim, side - span, length)
        )
    return values


def _erode(mask: Tensor, side: int) -> Tensor:
    """Erode a bool ``[B, 1, h, w]`` mask by a ``side x side`` square (the frame edge counts
    as inside)."""
    return ~_dilate(~mask, side)


def _resize(mask: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Resample a bool ``[B, 1, h, w]`` mask to ``size`` (bilinear, threshold 0.5)."""
    return F.interpolate(mask.float(), size=tuple(size), mode="bilinear") > 0.5


def fov_boxes(mask: Tensor) -> Tensor:
    """Bounding box of each FOV mask, in pixel-edge coordinates.

    Args:
        mask: bool ``[B, 1, H, W]`` from :func:`estimate_fov`.

    Returns:
        float ``[B, 4]`` as ``x0, y0, x1, y1`` with ``0 <= x0 < x1 <= W`` (the pixels
        ``x0 .. x1 - 1`` are covered); an empty mask gives the whole image.
    """
    height, width = mask.shape[-2:]
    x0, x1 = _extent(mask.any(dim=-2).flatten(1), width)
    y0, y1 = _extent(mask.any(dim=-1).flatten(1), height)
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def _extent(occupied: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """First index and one past the last True index of each row of ``occupied`` ``[B, L]``."""
    first = occupied.int().argmax(dim=1)
    last = length - occupied.flip(1).int().argmax(dim=1)
    empty = ~occupied.any(dim=1)
    return first.masked_fill(empty, 0), last.masked_fill(empty, length)


def _open(mask: Tensor) -> Tensor:
    """Morphological opening with a 3x3 square of a bool ``[B, 1, h, w]`` mask."""
    return _dilate(_erode(mask, 3), 3)


def _largest_component(mask: Tensor) -> Tensor:
    """Keep the largest 8-connected region of a bool ``[B, 1, h, w]`` mask."""
    batch, _, height, width = mask.shape
    bright = mask.float()
    index = torch.arange(1, height * width + 1, device=mask.device, dtype=torch.float32)
    labels = index.view(1, 1, height, width) * bright
    for _ in range(2 * max(height, width)):
        labels = _max_filter(labels, 3, 3) * bright
    flat = labels.flatten(1).long()
    counts = torch.zeros(batch, height * width + 1, device=mask.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=counts.dtype))
    counts[:, 0] = 0
    winner = counts.argmax(dim=1, keepdim=True)
    return ((flat == winner) & (flat > 0)).view_as(mask)


def _fill_spans(mask: Tensor) -> Tensor:
    """Fill each row and each column of a bool ``[B, 1, h, w]`` mask between its end points."""
    return _span(mask, dim=-1) | _span(mask, dim=-2)


def _span(mask: Tensor, dim: int) -> Tensor:
    """True between the first and last True element along ``dim``."""
    as_int = mask.int()
    seen_before = as_int.cummax(dim=dim).values
    seen_after = as_int.flip(dim).cummax(dim=dim).values.flip(dim)
    return (seen_before & seen_after).bool()
