"""The weights card: everything known about one set of pretrained backbone weights.

A card is data, as timm's ``pretrained_cfg`` tables: the zoo's cards live in ``cards.toml`` and a
lab's own cards in its zoo index file. Fields are grouped like timm's ``PretrainedCfg``
(``timm/models/_pretrained.py``): identity, input, source, provenance, results.

Names follow the grammar ``{arch}-{method}-{data}``, e.g. ``resnet50-barlow-hk``:

>>> parse_name("vitb16-mae-hk")
ZooName(arch='vitb16', method='mae', data='hk')
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ssl4gie.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
_NAME = re.compile(r"^([a-z0-9]+)-([a-z0-9]+)-([a-z0-9]+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class ZooName(NamedTuple):
    """The three parts of a zoo name ``{arch}-{method}-{data}``."""

    arch: str
    method: str
    data: str


def parse_name(name: str) -> ZooName:
    """Split ``"resnet50-mocov3-in1k"`` into ``ZooName("resnet50", "mocov3", "in1k")``.

    Each part is lower-case letters and digits; raises :class:`InputError` otherwise.

    Examples:
        >>> parse_name("resnet50-mocov3-in1k").method
        'mocov3'
    """
    match = _NAME.match(name)
    if match is None:
        raise InputError(
            f"zoo name {name!r} does not follow '{{arch}}-{{method}}-{{data}}' "
            "(lower-case letters and digits, e.g. 'resnet50-barlow-hk')"
        )
    return ZooName(*match.groups())


@dataclass(frozen=True)
class WeightsCard:
    """One set of backbone weights, described well enough to load, preprocess and cite it.

    The fields of a ``[backbones.<name>]`` table in ``cards.toml`` or a lab's zoo index.

    Attributes:
        name: ``{arch}-{method}-{data}``, lower-case letters and digits (:func:`parse_name`).
        architecture: the timm model name, e.g. ``"vit_base_patch16_224"``.
        method: the pretraining method, e.g. ``"mocov3"``, ``"supervised"``.
        data: the pretraining data in words, e.g. ``"ImageNet-1k"``.
        epochs: pretraining epochs, when known.
        model_args: extra ``timm.create_model`` arguments (e.g. ``{"img_size": 448}``).
        input_size: ``(3, H, W)`` the weights expect; with ``mean``, ``std``,
            ``interpolation`` and ``crop_pct``, the eval preprocessing (timm's
            ``pretrained_cfg`` keys; :func:`~ssl4gie.zoo.load.load_transforms`).
        mean: per-channel mean of the normalisation (ImageNet's by default).
        std: per-channel standard deviation of the normalisation.
        interpolation: resize interpolation, ``"bicubic"``, ``"bilinear"`` or ``"nearest"``.
        crop_pct: the eval resize is ``input_size / crop_pct`` before the centre crop.
        hub_id: a Hugging Face Hub repo ``org/name`` holding ``model.safetensors``.
        revision: the pinned 40-hex commit of ``hub_id`` (None: its ``main`` branch).
        url: an upstream release file, downloaded once and converted with ``format``.
        format: the converter format of ``url`` or of the manual download.
        filename: the release's file name, for a manual download (e.g. ``"dinov2.pth"``).
        license: the licence id as the Hub spells it (``"cc-by-nc-4.0"``, ``"unknown"``).
        access: a condition on getting the weights beyond the licence (a gate, a data-use
            agreement); such weights are converted in the user's cache and never re-published
            (:func:`publish_refusal`).
        paper: the paper's URL.
        origin_url: the page that releases the weights.
        sha256: of the file at ``url`` or of the manual download (or of the Hub's
            ``model.safetensors``); checked.
        hardware: what it was trained on, e.g. ``"8x A100, batch 4096"``.
        notes: anything else a user should know.
        results: downstream numbers where known, e.g. ``{"imagenet-1k linear top-1": 78.2}``.
        available: True only if the weights exist somewhere one can get them.

    Example:
        >>> card = WeightsCard(name="resnet18-simclr-hk", architecture="resnet18",
        ...                    method="simclr", data="Hyperkvasir-unlabelled",
        ...                    license="apache-2.0", available=False)
        >>> card.source_kind
        'none'
    """

    # identity
    name: str
    architecture: str  # timm model name, e.g. "vit_base_patch16_224"
    method: str  # pretraining method, e.g. "mocov3", "supervised"
    data: str  # pretraining data in words, e.g. "ImageNet-1k"
    epochs: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model kwargs
    # input: the eval preprocessing the weights expect
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    # source: a hub repo (safetensors, pinned revision) or an upstream file and its format
    hub_id: str | None = None
    revision: str | None = None  # 40-hex commit sha; None means the repo's main branch
    url: str | None = None  # direct download of an upstream release file
    format: str | None = None  # converter format of `url` or of the manual download
    filename: str | None = None  # the release's file name, for a manual download
    # provenance
    license: str = ""  # SPDX-like id as the Hub spells it, e.g. "cc-by-nc-4.0"
    access: str | None = None  # a gate or data-use agreement beyond the licence
    paper: str | None = None
    origin_url: str | None = None  # the page that releases the weights
    sha256: str | None = None  # of the file at `url`, the manual download or model.safetensors
    hardware: str | None = None
    notes: str | None = None
    # results: downstream numbers where known, e.g. {"imagenet-1k linear top-1": 78.2}
    results: dict[str, float] = field(default_factory=dict)
    available: bool = False  # True only if the weights exist somewhere one can get them

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InputError(f"weights card {self.name!r}: " + "; ".join(problems))

    @property
    def source_kind(self) -> str:
        """``"hub"``, ``"url"`` (downloaded and converted), ``"manual"`` or ``"none"``."""
        if self.hub_id:
            return "hub"
        if self.url:
            return "url"
        return "manual" if self.available else "none"

    def input_config(self) -> dict[str, Any]:
        """The preprocessing as timm's ``pretrained_cfg`` keys (input_size, mean, std, ...)."""
        keys = ("input_size", "mean", "std", "interpolation", "crop_pct")
        return {key: getattr(self, key) for key in keys}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields without the empty ones (for config.json and index files)."""
        fields = dataclasses.asdict(self)
        return {key: value for key, value in fields.items() if value not in (None, {}, "")}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> WeightsCard:
        """Build a card from a mapping (TOML/JSON); unknown keys raise :class:`InputError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise InputError(f"weights card {fields.get('name')!r}: unknown fields {unknown}")
        tuples = {key: tuple(fields[key]) for key in ("input_size", "mean", "std") if key in fields}
        return cls(**{**fields, **tuples})


def _problems(card: WeightsCard) -> list[str]:
    """Everything wrong with ``card``, as short phrases (empty when the card is valid)."""
    problems = []
    if _NAME.match(card.name) is None:
        problems.append("name must be '{arch}-{method}-{data}' in lower-case letters and digits")
    if not card.license:
        problems.append("license is empty (use e.g. 'cc-by-nc-4.0', 'mit' or 'unknown')")
    if card.interpolation not in INTERPOLATIONS:
        problems.append(f"interpolation must be one of {INTERPOLATIONS}")
    if not 0 < card.crop_pct <= 1:
        problems.append("crop_pct must be in (0, 1]")
    if card.sha256 is not None and _SHA256.match(card.sha256) is None:
        problems.append("sha256 must be 64 lower-case hex digits")
    if card.revision is not None and _COMMIT.match(card.revision) is None:
        problems.append("revision must be a 40-hex commit sha (pin it)")
    if card.url and not card.format:
        problems.append("a url needs the converter format of the file it serves")
    if card.hub_id and card.url:
        problems.append("give hub_id or url, not both")
    if (card.hub_id or card.url) and not card.available:
        problems.append("a card with a hub_id or url must say available = true")
    if card.available and not (card.hub_id or card.url or card.origin_url):
        problems.append("available weights need a hub_id, a url or an origin_url")
    return problems


# Licences that let anyone share the weights and changed versions of them, with attribution (NC
# ones non-commercially): https://creativecommons.org/licenses/ and https://opensource.org/licenses.
# Anything else (ND, the DINOv3 licence, "unknown") needs the holder's permission to re-publish.
SHAREABLE_LICENSES = frozenset(
    {
        "apache-2.0",
        "bsd-3-clause",
        "mit",
        "cc-by-4.0",
        "cc-by-sa-4.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-4.0",
    }
)


def publish_refusal(card: WeightsCard | None, own_weights: bool = False) -> str | None:
    """Why weights described by ``card`` may not be published again, or None when they may.

    Refused: an access condition (gate, data-use agreement), a licence outside
    :data:`SHAREABLE_LICENSES` (no-derivatives, the DINOv3 licence, unknown) and weights without a
    card. ``own_weights`` (the user's own pretraining, an ssl4gie Lightning checkpoint) may go
    out under a card whose licence is still ``"unknown"``.

    Examples:
        >>> card = WeightsCard(name="resnet50-dino-colon", architecture="resnet50",
        ...                    method="dino", data="colon", license="cc-by-nc-nd-4.0")
        >>> publish_refusal(card)
        "its licence 'cc-by-nc-nd-4.0' does not let anyone share the weights or derivatives"
    """
    if card is None:
        return None if own_weights else "it has no card, so its licence is unknown"
    if card.access:
        return f"its access condition forbids it: {card.access}"
    if card.license in SHAREABLE_LICENSES or (own_weights and card.license == "unknown"):
        return None
    return f"its licence {card.license!r} does not let anyone share the weights or derivatives"
