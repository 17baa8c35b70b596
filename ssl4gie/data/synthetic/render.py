"""Procedural endoscopy-like frames, vectorised with numpy (no per-pixel Python loops).

A frame is a view down a lumen: pink/red mucosa with smooth noise texture, folds as rings
around the lumen, vessels, specular highlights, vignetting and lighting that falls off with
depth, inside a circular or octagonal field of view (FOV) on a black border, with an occasional
burnt-in text overlay and a green position-indicator box in a corner. Polyps are raised blobs
with exact binary masks and boxes; the depth map is smooth, in millimetres.

Coordinates: ``u`` (right) and ``v`` (down) are measured in FOV radii from the frame centre.
A :class:`Style` says how one class of frames looks; each frame jitters it with its own
random generator, so the class is learnable from appearance while frames still differ.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ssl4gie.data.synthetic.styles import INFLAMED, PLAIN, SHAFT, Style

MIN_SIZE = 64
"""Smallest frame side: below it the polyps (radius >= 0.12 FOV radius) shrink under 4 px."""


@dataclass
class _Canvas:
    """Per-frame geometry: ``u``, ``v`` float32 ``[H, W]`` in FOV radii; ``fov`` bool ``[H, W]``."""

    u: np.ndarray
    v: np.ndarray
    fov: np.ndarray
    radius_px: float
    rng: np.random.Generator = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape

    def noise(self, cells: float) -> np.ndarray:
        """Smooth noise, mean 0 and std 1, float32 ``[H, W]``; ``cells`` across the short side."""
        height, width = self.shape
        scale = cells / min(height, width)
        grid = self.rng.standard_normal(
            (int(height * scale) + 3, int(width * scale) + 3), dtype=np.float32
        )
        field_ = np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC))
        return (field_ - field_.mean()) / (field_.std() + 1e-6)


def _canvas(rng: np.random.Generator, height: int, width: int, fov_kind: str) -> _Canvas:
    """Frame coordinates and field of view: the FOV circle may be clipped by the top and bottom."""
    radius_px = 0.5 * height * rng.uniform(1.0, 1.1)
    rows = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / radius_px
    cols = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / radius_px
    v, u = np.meshgrid(rows, cols, indexing="ij")
    if fov_kind == "any":
        fov_kind = "circle" if rng.random() < 0.6 else "octagon"
    if fov_kind == "circle":
        fov = u * u + v * v < 1.0
    elif fov_kind == "octagon":
        fov = (np.maximum(abs(u), abs(v)) < 0.92) & (abs(u) + abs(v) < 1.3)
    else:
        fov = np.ones((height, width), dtype=bool)
    return _Canvas(u, v, fov, radius_px, rng)


@dataclass
class _Polyp:
    """A raised blob: centre and radius in FOV radii, boundary harmonics ``(amp, phase)``."""

    cu: float
    cv: float
    radius: float
    harmonics: tuple[tuple[float, float], ...]

    @property
    def outer(self) -> float:
        """Largest distance of the boundary from the centre."""
        return self.radius * (1 + sum(amp for amp, _ in self.harmonics))

    def height(self, canvas: _Canvas) -> np.ndarray:
        """Dome height in [0, 1], float32 ``[H, W]``; > 0 exactly inside the polyp."""
        du, dv = canvas.u - self.cu, canvas.v - self.cv
        theta = np.arctan2(dv, du)
        boundary = np.full_like(du, self.radius)
        for order, (amp, phase) in enumerate(self.harmonics, start=2):
            boundary += self.radius * amp * np.cos(order * theta + phase)
        rho2 = (du * du + dv * dv) / (boundary * boundary)
        return np.sqrt(np.clip(1.0 - rho2, 0.0, None))


def _place_polyps(rng: np.random.Generator, style: Style, canvas: _Canvas) -> list[_Polyp]:
    """Polyps inside the FOV and the frame, separated by at least 3 px so each is one component."""
    low, high = style.polyps
    count = low + rng.binomial(high - low, 0.25) if high > low else low
    v_limit = canvas.shape[0] / 2 / canvas.radius_px - 2 / canvas.radius_px
    gap = 3 / canvas.radius_px
    placed: list[_Polyp] = []
    for _ in range(20 * count):
        if len(placed) == count:
            break
        angle, dist = rng.uniform(0, 2 * np.pi), 0.55 * np.sqrt(rng.random())
        harmonics = tuple(
            (rng.uniform(0, max_amp), rng.uniform(0, 2 * np.pi)) for max_amp in (0.15, 0.07)
        )
        polyp = _Polyp(
            dist * np.cos(angle), dist * np.sin(angle), rng.uniform(0.12, 0.3), harmonics
        )
        inside = np.hypot(polyp.cu, polyp.cv) + polyp.outer < 0.85
        inside &= abs(polyp.cv) + polyp.outer < v_limit
        apart = all(
            np.hypot(polyp.cu - p.cu, polyp.cv - p.cv) > polyp.outer + p.outer + gap for p in placed
        )
        if inside and apart:
            placed.append(polyp)
    return placed


def _soft_step(x: np.ndarray, width: float) -> np.ndarray:
    """0 below ``-width``, 1 above ``width``, linear between."""
    return np.clip(0.5 + x / (2 * width), 0.0, 1.0)


def _blend(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``image * (1 - alpha) + colour * alpha`` with ``alpha [H, W]`` broadcast over RGB."""
    return image + (colour - image) * alpha[..., None]


def _lumen(canvas: _Canvas, style: Style) -> tuple[np.ndarray, np.ndarray]:
    """Distance from the (jittered) lumen centre and the angle around it, float32 ``[H, W]``."""
    lu, lv = np.asarray(style.lumen) + canvas.rng.normal(0, 0.08, 2)
    du, dv = canvas.u - np.float32(lu), canvas.v - np.float32(lv)
    return np.sqrt(du * du + dv * dv), np.arctan2(dv, du)


def _depth_mm(canvas: _Canvas, style: Style, dist: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Smooth depth in mm, float32 ``[H, W]``: far at the lumen, near at the walls, in [2, 100]."""
    far = canvas.rng.uniform(60, 95)
    width = style.lumen_width * canvas.rng.uniform(0.85, 1.15)
    depth = far / (1 + (dist / width) ** 2) * (1 + 0.08 * coarse)
    return np.clip(depth, 2.0, 100.0).astype(np.float32)


def _mucosa(canvas: _Canvas, style: Style, dist: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Unlit surface colour, float32 ``[H, W, 3]``: texture, vessels, ring, streaks, blotches."""
    rng = canvas.rng
    base = np.asarray(style.mucosa, dtype=np.float32) * rng.normal(1, 0.04, 3).astype(np.float32)
    fine = canvas.noise(style.grain_cells * rng.uniform(0.8, 1.2))
    texture = 1 + style.grain * fine + 0.06 * canvas.noise(3)
    colour = base * texture[..., None]
    vessel = np.exp(-((canvas.noise(5) / 0.07) ** 2)) * style.vessels
    colour *= 1 - vessel[..., None] * np.float32([0.15, 0.55, 0.5])
    if style.ring is not None:
        edge = style.ring_radius * (1 + style.ring_jag * canvas.noise(4)) - dist
        colour = _blend(colour, np.float32(style.ring) * texture[..., None], _soft_step(edge, 0.03))
    if style.streaks:
        phase = rng.uniform(0, 2 * np.pi)
        rays = np.clip(np.cos(style.streaks * angle + phase + 0.4 * canvas.noise(3)), 0, None) ** 6
        alpha = style.streak_strength * rays * _soft_step(dist - 0.2, 0.05)
        colour = _blend(colour, np.float32(INFLAMED), alpha)
    if style.patch is not None and style.patch_cover > 0:
        blotches = canvas.noise(4)
        level = np.quantile(blotches[canvas.fov], 1 - style.patch_cover)
        colour = _blend(
            colour, np.float32(style.patch) * texture[..., None], _soft_step(blotches - level, 0.1)
        )
    return colour


def _raise_polyps(
    canvas: _Canvas, polyps: list[_Polyp], colour: np.ndarray, depth: np.ndarray
) -> list[np.ndarray]:
    """Give the polyps their own tint and pit pattern and bring them closer, in place.

    ``colour`` float32 ``[H, W, 3]``, ``depth`` float32 ``[H, W]`` mm. Returns each polyp's
    dome height, float32 ``[H, W]`` (> 0 exactly inside it).
    """
    heights = [polyp.height(canvas) for polyp in polyps]
    if not heights:
        return heights
    inside = np.logical_or.reduce([dome > 0 for dome in heights])
    pit_pattern = 1 + 0.12 * canvas.noise(canvas.shape[0] / 5)
    tint = np.float32([1.04, 0.88, 0.92]) * pit_pattern[..., None]
    colour[inside] *= tint[inside]
    for polyp, dome in zip(polyps, heights, strict=True):
        depth *= 1 - np.float32(0.35 * polyp.radius) * dome
    return heights


def _light(
    canvas: _Canvas,
    style: Style,
    depth: np.ndarray,
    dist: np.ndarray,
    coarse: np.ndarray,
    heights: list[np.ndarray],
) -> np.ndarray:
    """Illumination, float32 ``[H, W]``: falls off with depth, vignetting, fold shadows, domes."""
    rng = canvas.rng
    folds = 0.5 + 0.5 * np.sin(
        2 * np.pi * style.fold_freq * dist + rng.uniform(0, 6.3) + 0.8 * coarse
    )
    vignette = 1 - 0.3 * (canvas.u**2 + canvas.v**2)
    light = np.clip((12 / depth) ** 0.8, 0.03, 1.0) * vignette * (1 - style.fold_depth * folds)
    bump = np.max(heights, axis=0) if heights else 0.0
    return light * np.float32(rng.uniform(0.85, 1.1)) * (0.85 + 0.3 * bump)


def _add_shaft(canvas: _Canvas, frame: np.ndarray, depth: np.ndarray) -> None:
    """Draw the endoscope's shaft entering from the bottom edge (retroflexion), in place.

    ``frame`` float32 ``[H, W, 3]``; ``depth`` float32 ``[H, W]`` becomes 12 mm on the shaft.
    """
    su = canvas.rng.uniform(-0.35, 0.35)
    alpha = _soft_step(0.5 - np.hypot(canvas.u - su, (canvas.v - 1.05) * 0.8), 0.02)
    sheen = 1 + 0.6 * np.exp(-(((canvas.u - su) * 6) ** 2))
    frame[:] = _blend(frame, np.float32(SHAFT) * sheen[..., None], alpha)
    depth[alpha > 0.5] = 12.0


def _specular(canvas: _Canvas, light: np.ndarray, heights: list[np.ndarray]) -> np.ndarray:
    """Specular highlight strength in [0, 1], float32 ``[H, W]``: wet glints and polyp tops."""
    glints = canvas.noise(canvas.shape[0] / 6) - canvas.rng.uniform(2.4, 3.0)
    strength = _soft_step(glints, 0.25) * (light > 0.35)
    for height in heights:
        strength = np.maximum(strength, _soft_step(height - 0.96, 0.02))
    return strength


def _overlays(rng: np.random.Generator, image: np.ndarray, probability: float) -> np.ndarray:
    """Burnt-in text (top left) and a green position box (bottom left) on uint8 ``[H, W, 3]``."""
    show_text, show_box = rng.random(2) < probability
    if not (show_text or show_box):
        return image
    height = image.shape[0]
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    if show_text:
        day, month, hour, minute = rng.integers([1, 1, 7, 0], [29, 13, 19, 60])
        text = f"{day:02d}/{month:02d}/20{rng.integers(10, 20)}\n{hour:02d}:{minute:02d}"
        draw.multiline_text((2, 2), text, fill=(235, 235, 235), font=_font(max(height // 18, 6)))
    if show_box:
        side = height // 5
        top = height - side - 2
        draw.rectangle((2, top, 2 + side, top + side), fill=(0, 70, 20), outline=(40, 200, 60))
        points = 2 + rng.uniform(0.15, 0.85, (5, 2)) * side + np.array([0, top - 2])
        draw.line([tuple(p) for p in points], fill=(90, 255, 110), width=max(side // 12, 1))
    return np.asarray(picture).copy()


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` pixels."""
    return ImageFont.load_default(size)


def _boxes(masks: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """``(xmin, ymin, xmax, ymax)`` of each non-empty mask; max coordinates inclusive."""
    boxes = []
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size:
            boxes.append((int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])))
    return boxes


def render_frame(
    rng: np.random.Generator, size: int, style: Style = PLAIN, aspect: float = 1.0
) -> dict:
    """Render one frame ``size`` px high and ``round(size * aspect)`` px wide.

    Returns a dict: ``image`` uint8 ``[H, W, 3]`` RGB; ``mask`` bool ``[H, W]`` (polyps);
    ``boxes`` a list of ``(xmin, ymin, xmax, ymax)`` ints, one per polyp, the extent of its
    mask with inclusive max coordinates; ``depth`` float32 ``[H, W]`` in mm (2..100, defined
    everywhere, also outside the FOV); ``fov`` bool ``[H, W]`` (the non-black field of view).
    The same generator state gives the same frame.
    """
    height, width = size, round(size * aspect)
    canvas = _canvas(rng, height, width, style.fov)
    dist, angle = _lumen(canvas, style)
    coarse = canvas.noise(3)
    depth = _depth_mm(canvas, style, dist, coarse)
    colour = _mucosa(canvas, style, dist, angle)
    heights = _raise_polyps(canvas, _place_polyps(rng, style, canvas), colour, depth)
    light = _light(canvas, style, depth, dist, coarse, heights)
    frame = colour * light[..., None]
    if style.shaft:
        _add_shaft(canvas, frame, depth)
    frame = _blend(frame, np.ones(3, np.float32), _specular(canvas, light, heights))
    frame += rng.normal(0, 0.012, frame.shape).astype(np.float32)
    frame[~canvas.fov] = 0
    image = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)

    masks = [(dome > 0) & canvas.fov for dome in heights]
    mask = np.logical_or.reduce(masks) if masks else np.zeros((height, width), bool)
    return {
        "image": np.where(mask[..., None], image, _overlays(rng, image, style.overlays)),
        "mask": mask,
        "boxes": _boxes(masks),
        "depth": depth,
        "fov": canvas.fov,
    }
