"""How each class of synthetic frames looks: the colour palette and one :class:`Style` per
HyperKvasir class folder (``STYLES``), used by :mod:`.render`. Classes differ in structure
(dye, inflammation, lumen, rings, streaks, stool), not in noise, so they are learnable."""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[float, float, float]


COLON: RGB = (0.84, 0.46, 0.40)
GASTRIC: RGB = (0.88, 0.44, 0.26)
ESOPHAGUS: RGB = (0.90, 0.72, 0.68)
GASTRIC_RED: RGB = (0.80, 0.30, 0.22)
DYE: RGB = (0.22, 0.38, 0.78)
STOOL: RGB = (0.62, 0.48, 0.16)
FIBRIN: RGB = (0.93, 0.90, 0.78)
INFLAMED: RGB = (0.72, 0.14, 0.12)
SHAFT: RGB = (0.13, 0.13, 0.15)


@dataclass(frozen=True)
class Style:
    """How one class of frames looks; each frame jitters these means.

    Lengths are in FOV radii; colours are RGB in [0, 1].
    """

    mucosa: RGB = COLON
    fold_freq: float = 2.5  # fold rings per FOV radius around the lumen
    fold_depth: float = 0.18  # darkening in the fold troughs
    grain: float = 0.06  # amplitude of the fine mucosal texture
    grain_cells: int = 20  # noise cells across the short side for the fine texture
    vessels: float = 0.35  # vessel contrast
    lumen: tuple[float, float] = (0.0, 0.0)  # lumen centre (u, v)
    lumen_width: float = 0.35  # how quickly depth falls off away from the lumen
    polyps: tuple[int, int] = (0, 0)  # fewest and most polyps
    patch: RGB | None = None  # colour of blotches (dye, stool, fibrin, bluish bulges)
    patch_cover: float = 0.0  # fraction of the FOV they cover
    ring: RGB | None = None  # mucosa colour near the lumen (gastric side of a z-line)
    ring_radius: float = 0.0
    ring_jag: float = 0.15  # irregularity of the ring's edge (Barrett's tongues)
    streaks: int = 0  # red radial streaks from the lumen (esophagitis)
    streak_strength: float = 0.0
    shaft: bool = False  # retroflexion: the endoscope's own shaft in view
    fov: str = "any"  # "circle", "octagon", "full" (no border) or "any" (circle or octagon)
    overlays: float = 0.35  # probability of each overlay (text, position box)


def _colitis(grade_step: int) -> Style:
    """Ulcerative colitis, ``grade_step`` 0 (grade 0-1) to 5 (grade 3): redder, rougher, ulcers."""
    return Style(
        mucosa=(0.86, 0.42 - 0.05 * grade_step, 0.38 - 0.045 * grade_step),
        grain=0.08 + 0.05 * grade_step,
        grain_cells=28,
        vessels=max(0.3 - 0.08 * grade_step, 0.0),
        patch=FIBRIN if grade_step >= 2 else None,
        patch_cover=0.04 * grade_step,
    )


def _esophagus(**changes) -> Style:
    """Pale squamous mucosa with a red gastric ring round the lumen (z-line and its findings)."""
    return Style(
        **{
            "mucosa": ESOPHAGUS,
            "ring": GASTRIC_RED,
            "ring_radius": 0.3,
            "fold_depth": 0.06,
            "lumen_width": 0.25,
            **changes,
        }
    )


PLAIN = Style()
"""Healthy colon mucosa, no findings."""

UC_GRADES = ("0-1", "1", "1-2", "2", "2-3", "3")

STYLES: dict[str, Style] = {
    "cecum": Style(mucosa=(0.88, 0.58, 0.52), fold_freq=1.6, fold_depth=0.35, lumen=(0.3, -0.2)),
    "ileum": Style(mucosa=(0.92, 0.70, 0.55), grain=0.2, grain_cells=40, vessels=0.0),
    "retroflex-rectum": Style(mucosa=(0.80, 0.40, 0.44), shaft=True, fold_depth=0.05, vessels=0.6),
    "hemorrhoids": Style(
        mucosa=(0.78, 0.38, 0.42), shaft=True, patch=(0.45, 0.25, 0.48), patch_cover=0.25
    ),
    "polyps": Style(polyps=(1, 2)),
    **{f"ulcerative-colitis-grade-{g}": _colitis(step) for step, g in enumerate(UC_GRADES)},
    "bbps-0-1": Style(patch=STOOL, patch_cover=0.45, vessels=0.2),
    "bbps-2-3": Style(mucosa=(0.86, 0.50, 0.46), vessels=0.65, grain=0.03),
    "impacted-stool": Style(
        patch=(0.45, 0.32, 0.10), patch_cover=0.85, grain=0.2, lumen_width=0.6, vessels=0.0
    ),
    "dyed-lifted-polyps": Style(patch=DYE, patch_cover=0.45, polyps=(1, 1)),
    "dyed-resection-margins": Style(
        patch=DYE, patch_cover=0.55, ring=FIBRIN, ring_radius=0.3, lumen=(0.2, 0.2)
    ),
    "pylorus": Style(mucosa=GASTRIC, lumen_width=0.1, fold_freq=1.2, fold_depth=0.25),
    "retroflex-stomach": Style(mucosa=GASTRIC, shaft=True, fold_freq=1.5, fold_depth=0.35),
    "z-line": _esophagus(),
    "barretts": _esophagus(ring_radius=0.75, ring_jag=0.45),
    "barretts-short-segment": _esophagus(ring_radius=0.5, ring_jag=0.35),
    "esophagitis-a": _esophagus(streaks=3, streak_strength=0.45),
    "esophagitis-b-d": _esophagus(streaks=7, streak_strength=0.85, patch=FIBRIN, patch_cover=0.06),
}
"""A style per HyperKvasir finding (the 23 labelled classes), keyed by the class folder name."""
