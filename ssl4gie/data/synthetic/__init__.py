"""Synthetic GI endoscopy datasets in the real datasets' on-disk layouts.

:func:`synthesize` writes ``n`` procedurally generated, endoscopy-like frames (field of view on
a black border, mucosa texture, folds, vessels, specular highlights, vignetting, burnt-in
overlays; polyps with exact masks and boxes; smooth depth in mm) in one of :data:`LAYOUTS`,
exactly as ``docs/datasets.md`` describes the real release:

- ``hyperkvasir-unlabeled``: ``unlabeled-images/images/<uuid>.jpg``
- ``hyperkvasir-labeled``: ``labeled-images/<tract>/<classification>/<finding>/<uuid>.jpg`` for
  the 23 classes, ``labeled-images/image-labels.csv``, and ``segmented-images/`` for the polyps
- ``kvasir-seg``: ``images/<id>.jpg``, ``masks/<id>.jpg``, ``kavsir_bboxes.json``
- ``cvc-clinicdb``: ``Original/<n>.tif``, ``Ground Truth/<n>.tif`` (n from 1)
- ``c3vd``: ``<video>/<nnnn>_color.png`` and ``<video>/<nnnn>_depth.tiff`` (uint16, 0..100 mm)
- ``imagefolder``: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (ImageNet style)

Classes are learnable from appearance: each HyperKvasir class has its own :class:`Style`
(:data:`STYLES`), jittered per frame. :func:`render_frame` renders a single frame.
"""

from ssl4gie.data.synthetic.layouts import HYPERKVASIR_CLASSES, LAYOUTS, synthesize
from ssl4gie.data.synthetic.render import MIN_SIZE, render_frame
from ssl4gie.data.synthetic.styles import STYLES, Style

__all__ = [
    "HYPERKVASIR_CLASSES",
    "LAYOUTS",
    "MIN_SIZE",
    "STYLES",
    "Style",
    "render_frame",
    "synthesize",
]
