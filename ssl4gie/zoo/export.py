"""Checkpoint -> Hub-ready folder that plain timm loads.

``export_backbone("last.ckpt", "out/resnet50-dino-hk")`` writes, atomically::

    out/resnet50-dino-hk/
        model.safetensors   the timm state dict (no classifier: num_classes=0)
        config.json         timm's own export (timm.models.save_for_hf): architecture,
                            model_args, pretrained_cfg with the card's preprocessing,
                            and an "ssl4gie" entry with the card
        README.md           model card: YAML metadata (huggingface_hub.ModelCardData) + fields

so ``timm.create_model("local-dir:out/resnet50-dino-hk", pretrained=True)`` and, once published,
``timm.create_model("hf-hub:org/repo", pretrained=True)`` work without ssl4gie. The folder must
be new or empty, writable and on a disk with room for the weights (checked before writing);
an error, Ctrl-C or SIGTERM leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ssl4gie._io import atomic_dir, check_free_space, check_writable
from ssl4gie._timm import create_timm_backbone
from ssl4gie.errors import InputError
from ssl4gie.zoo.cards import WeightsCard, parse_name
from ssl4gie.zoo.convert import Converted, convert_file, summarize_dropped
from ssl4gie.zoo.hub import sha256_of

INTENDED_USE = (
    "Research only: a backbone to fine-tune or probe for gastrointestinal endoscopy and other "
    "medical-image research. Not for diagnosis or any clinical decision; not a medical device."
)


def build_backbone(converted: Converted) -> nn.Module:
    """The timm backbone (``num_classes=0``) holding ``converted``'s weights, checked strictly.

    Raises :class:`InputError` naming missing or unexpected keys: after conversion every key
    must belong to the encoder.
    """
    model = create_timm_backbone(converted.architecture, **converted.model_args)
    result = model.load_state_dict(converted.state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(
            f"the weights do not fit timm's {converted.architecture}: "
            f"missing {result.missing_keys[:5]} ({len(result.missing_keys)}), "
            f"unexpected {result.unexpected_keys[:5]} ({len(result.unexpected_keys)}); "
            "check the checkpoint format and architecture"
        )
    return model.eval()


def export_backbone(
    source: str | os.PathLike | Converted,
    out_dir: str | os.PathLike,
    name: str | None = None,
    card: WeightsCard | None = None,
    *,
    checkpoint_format: str | None = None,
    architecture: str | None = None,
) -> Path:
    """Write the Hub-ready folder for a checkpoint; return ``out_dir``.

    Args:
        source: a Lightning ``.ckpt`` from ssl4gie pretraining, a released checkpoint
            (``checkpoint_format`` given or detected, see :mod:`ssl4gie.zoo.convert`), or an
            already converted :class:`~ssl4gie.zoo.convert.Converted`.
        out_dir: the folder to create (must not exist, or be empty).
        name: a zoo name for the card: a registered one takes its card; a new one
            (``{arch}-{method}-{data}``) gives method and data.
        card: the full card (wins over ``name``).

    Examples:
        >>> checkpoint = "runs/pretrain/version_0/checkpoints/last.ckpt"
        >>> folder = export_backbone(checkpoint, "out/r50-dino",
        ...                          name="resnet50-dino-colon")  # doctest: +SKIP
        >>> model = timm.create_model(f"local-dir:{folder}", pretrained=True)  # doctest: +SKIP
    """
    converted = (
        source
        if isinstance(source, Converted)
        else convert_file(source, checkpoint_format, architecture)
    )
    out_dir = _check_out_dir(Path(out_dir), converted)
    model = build_backbone(converted)
    card = card or _card_for(name, model, converted.architecture)
    with atomic_dir(out_dir) as tmp:
        write_timm_folder(model, tmp, card, {"source_format": converted.source_format})
        weights_sha256 = sha256_of(tmp / "model.safetensors")
        readme = render_readme(card, converted, weights_sha256)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
    return out_dir


README_BYTES = 64 * 1024
"""Room for ``config.json`` and ``README.md`` beside the weights (both a few KiB)."""


def _check_out_dir(out_dir: Path, converted: Converted) -> Path:
    """``out_dir`` if it is new or empty, writable, and its disk holds the weights."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file; choose a new folder for the export")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir} exists and is not empty; choose a new folder")
    check_writable(out_dir, "export folder")
    weights = sum(t.numel() * t.element_size() for t in converted.state_dict.values())
    check_free_space(out_dir, weights + README_BYTES, f"the {converted.architecture} export")
    return out_dir


def write_timm_folder(
    model: nn.Module, folder: Path, card: WeightsCard | None, extra: dict[str, Any]
) -> None:
    """``model.safetensors`` + ``config.json`` through timm's own ``save_for_hf``.

    The card's preprocessing and licence replace those timm's default config for the
    architecture would otherwise carry over (they describe other weights).
    """
    from timm.models import save_for_hf

    provenance = {"tag": card.name if card else "ssl4gie"}
    provenance["license"] = card.license if card else "unknown"
    ssl4gie_entry = {**extra, "card": card.to_dict() if card else None}
    save_for_hf(
        model,
        folder,
        model_config={"ssl4gie": ssl4gie_entry, "pretrained_cfg": provenance},
        safe_serialization=True,
        data_config=card.input_config() if card else None,
    )


def _card_for(name: str | None, model: nn.Module, architecture: str) -> WeightsCard | None:
    """The registered card of ``name``, a new card from its parts, or None without a name.

    A new card takes the model's input size and ImageNet mean/std (what ssl4gie's views use).
    """
    from timm.models import get_model_input_config

    from ssl4gie.zoo.registry import backbone_card, data_description, is_zoo_name

    if name is None:
        return None
    if is_zoo_name(name):
        return backbone_card(name)
    parts = parse_name(name)
    return WeightsCard(
        name=name,
        architecture=architecture,
        method=parts.method,
        data=data_description(parts.data),
        input_size=tuple(get_model_input_config(model)["input_size"]),
        license="unknown",
    )


def _field_rows(card: WeightsCard | None, converted: Converted, weights_sha256: str) -> list:
    card_rows = []
    if card is not None:
        source = card.hub_id or card.url or card.origin_url or "this folder"
        card_rows = [
            ("method", card.method),
            ("pretraining data", card.data),
            ("epochs", card.epochs or "unknown"),
            ("input size", "x".join(map(str, card.input_size[1:]))),
            ("mean / std", f"{card.mean} / {card.std}"),
            ("resize interpolation, crop", f"{card.interpolation}, {card.crop_pct}"),
            ("licence", card.license),
            ("paper", card.paper or "unknown"),
            ("original source", source),
            ("hardware", card.hardware or "unknown"),
        ]
    return [
        ("architecture (timm)", converted.architecture),
        *card_rows,
        ("converted from", converted.source_format or "a state dict"),
        ("left out of the source", summarize_dropped(converted.dropped)),
        ("sha256 of model.safetensors", f"`{weights_sha256}`"),
    ]


def render_readme(card: WeightsCard | None, converted: Converted, weights_sha256: str) -> str:
    """The model card: YAML front matter from ``huggingface_hub.ModelCardData`` + fields."""
    from huggingface_hub import ModelCard, ModelCardData

    title = card.name if card else converted.architecture
    tags = ["ssl4gie", "timm", "image-feature-extraction", "endoscopy", "medical-imaging"]
    metadata = ModelCardData(
        library_name="timm",
        license=card.license if card else "unknown",
        tags=[*tags, card.method] if card else tags,
        datasets=[card.data] if card else None,
        metrics=sorted(card.results) if card and card.results else None,
        pipeline_tag="image-feature-extraction",
    )
    rows = "\n".join(
        f"| {key} | {value} |" for key, value in _field_rows(card, converted, weights_sha256)
    )
    results = ""
    if card and card.results:
        lines = "\n".join(f"| {metric} | {value} |" for metric, value in card.results.items())
        results = f"\n## Results\n\n| metric | value |\n|---|---|\n{lines}\n"
    body = f"""
# {title}

A {converted.architecture} backbone (no classifier) exported by ssl4gie in timm's format.

| field | value |
|---|---|
{rows}
{results}
## Intended use

{INTENDED_USE}

## How to load

```python
import timm
model = timm.create_model("hf-hub:<org>/<repo>", pretrained=True)  # or "local-dir:<folder>"

import ssl4gie
model = ssl4gie.load_backbone("hf-hub:<org>/<repo>")
```

## How it was trained

{_training_sentence(card)}
"""
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n{body}").content


def _training_sentence(card: WeightsCard | None) -> str:
    if card is None:
        return "Unknown: this folder was exported without a card."
    epochs = f"for {card.epochs} epochs" if card.epochs else "for an unrecorded number of epochs"
    hardware = f" on {card.hardware}" if card.hardware else ""
    notes = f" {card.notes}." if card.notes else ""
    return f"Pretrained with {card.method} on {card.data} {epochs}{hardware}.{notes}"
