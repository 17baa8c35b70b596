"""Names -> weights cards: the built-in zoo, a lab's own entries, aliases for renamed names.

The built-in cards are read once from ``cards.toml`` beside this file. A lab adds its own with
:func:`register_backbone` or with a zoo index file (TOML or JSON, local or in a Hub repo) in the
same schema, so a family published together also loads by name::

    [backbones.resnet50-dino-colon]
    architecture = "resnet50"          # or [architectures.resnet50] defaults, as in cards.toml
    method = "dino"
    data = "our colonoscopy frames"
    hub_id = "our-lab/resnet50-dino-colon"
    revision = "0123456789abcdef0123456789abcdef01234567"
    license = "cc-by-4.0"
    available = true

Renamed entries keep working through ``[aliases]`` (old = new), with a ``FutureWarning``, like
timm's ``register_model_deprecations``.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import warnings
from pathlib import Path
from typing import Any

from ssl4gie.errors import InputError, did_you_mean
from ssl4gie.zoo.cards import WeightsCard, parse_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

BUILTIN_CARDS = Path(__file__).with_name("cards.toml")
INDEX_FILES = ("zoo.toml", "zoo.json")  # looked for in a Hub repo given as an index

_USER_CARDS: dict[str, WeightsCard] = {}
_USER_ALIASES: dict[str, str] = {}


def cards_from_mapping(index: dict[str, Any]) -> tuple[list[WeightsCard], dict[str, str]]:
    """Cards and aliases from a parsed index (the schema of ``cards.toml``).

    Each ``[backbones.<name>]`` entry starts from ``[architectures.<arch>]`` and
    ``[data.<data>]`` (keyed by the parts of its name) and overrides them.
    """
    architectures = index.get("architectures", {})
    datasets = index.get("data", {})
    cards = []
    for name, entry in index.get("backbones", {}).items():
        parts = parse_name(name)
        defaults = {"data": parts.data, **architectures.get(parts.arch, {})}
        fields = {**defaults, **datasets.get(parts.data, {}), "name": name, **entry}
        if "architecture" not in fields:
            raise InputError(
                f"zoo entry {name!r} has no architecture; add architecture = '<timm name>' "
                f"or an [architectures.{parts.arch}] table"
            )
        cards.append(WeightsCard.from_dict(fields))
    return cards, dict(index.get("aliases", {}))


def read_index(path: str | Path) -> dict[str, Any]:
    """Parse a zoo index file (``.toml`` or ``.json``)."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise InputError(f"zoo index {path} must be a .toml or .json file")
    if not path.is_file():
        raise InputError(f"zoo index {path} does not exist")
    if path.suffix == ".toml":
        with path.open("rb") as handle:
            return tomllib.load(handle)
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def _builtin() -> tuple[dict[str, WeightsCard], dict[str, str]]:
    cards, aliases = cards_from_mapping(read_index(BUILTIN_CARDS))
    return {card.name: card for card in cards}, aliases


def data_description(code: str) -> str:
    """The pretraining data a name's data part stands for: ``"hk"`` -> ``"Hyperkvasir-..."``."""
    described = read_index(BUILTIN_CARDS).get("data", {}).get(code, {})
    return described.get("data", code)


def builtin_names() -> list[str]:
    """The names ssl4gie ships (cards.toml), sorted."""
    return sorted(_builtin()[0])


def _all_cards() -> dict[str, WeightsCard]:
    return {**_builtin()[0], **_USER_CARDS}


def _all_aliases() -> dict[str, str]:
    return {**_builtin()[1], **_USER_ALIASES}


def register_backbone(card: WeightsCard, *, overwrite: bool = False) -> WeightsCard:
    """Add ``card`` to the zoo for this process so ``load_backbone(card.name)`` finds it.

    A name already in the zoo raises :class:`InputError` unless ``overwrite=True``.

    Examples:
        >>> card = WeightsCard(name="resnet18-simclr-colon", architecture="resnet18",
        ...                    method="simclr", data="our colonoscopy frames", license="cc-by-4.0",
        ...                    hub_id="our-lab/resnet18-simclr-colon", available=True)
        >>> register_backbone(card).name in list_backbones("*-colon")
        True
    """
    if not isinstance(card, WeightsCard):
        raise InputError(f"register_backbone takes a WeightsCard, got {type(card).__name__}")
    if card.name in _all_cards() and not overwrite:
        raise InputError(f"zoo name {card.name!r} is taken; pass overwrite=True to replace it")
    _USER_CARDS[card.name] = card
    return card


def load_index(source: str | Path, *, overwrite: bool = False, revision: str | None = None):
    """Register every entry of a zoo index: a local ``.toml``/``.json`` or ``hf-hub:org/repo``.

    A Hub repo holds the index as ``zoo.toml`` (or ``zoo.json``) at its root. Returns the names
    registered, sorted.

    Examples:
        >>> load_index("hf-hub:our-lab/zoo")  # doctest: +SKIP
        ['resnet50-dino-colon', 'vitb16-mae-colon']
        >>> load_index("zoo.toml", overwrite=True)  # doctest: +SKIP
        ['resnet50-dino-colon', 'vitb16-mae-colon']
    """
    path = Path(source)
    if str(source).startswith("hf-hub:"):
        from ssl4gie.zoo.hub import download_index

        path = download_index(str(source).removeprefix("hf-hub:"), INDEX_FILES, revision)
    cards, aliases = cards_from_mapping(read_index(path))
    for card in cards:
        register_backbone(card, overwrite=overwrite)
    _USER_ALIASES.update(aliases)
    return sorted(card.name for card in cards)


def resolve_name(name: str) -> str:
    """The current zoo name for ``name``, warning if it is a deprecated alias."""
    aliases = _all_aliases()
    if name in aliases and name not in _all_cards():
        warnings.warn(
            f"zoo name {name!r} is deprecated; use {aliases[name]!r}", FutureWarning, stacklevel=3
        )
        return aliases[name]
    return name


def is_zoo_name(name: str) -> bool:
    """True for a registered name or alias."""
    return name in _all_cards() or name in _all_aliases()


def backbone_card(name: str) -> WeightsCard:
    """The card of a zoo name, e.g. ``backbone_card("vitb16-mae-hk").license``.

    Raises :class:`InputError` with close matches for an unknown name.

    Examples:
        >>> card = backbone_card("vitb16-mae-hk")
        >>> card.architecture, card.license, card.input_size
        ('vit_base_patch16_224', 'cc-by-nc-sa-4.0', (3, 224, 224))
    """
    cards = _all_cards()
    current = resolve_name(name)
    if current not in cards:
        raise InputError(
            f"unknown zoo name {name!r}{did_you_mean(name, list(cards) + list(_all_aliases()))}; "
            "run 'ssl4gie zoo list' for the names"
        )
    return cards[current]


def list_backbones(pattern: str | None = None, *, available: bool | None = None) -> list[str]:
    """Sorted zoo names, optionally matching a shell pattern and availability.

    >>> list_backbones("vitb16-*-in1k")[:2]
    ['vitb16-dino-in1k', 'vitb16-mae-in1k']
    """
    cards = _all_cards()
    names = sorted(cards if pattern is None else fnmatch.filter(cards, pattern))
    if available is not None:
        names = [name for name in names if cards[name].available == available]
    return names
