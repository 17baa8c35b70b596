"""``load_backbone`` and ``load_transforms``: a weights source -> timm model + preprocessing.

Every source is first made into a timm export folder (``config.json`` + ``model.safetensors``),
which timm then loads with ``timm.create_model("local-dir:<folder>", pretrained=True)``:

=============================  ============================================================
source                         folder
=============================  ============================================================
zoo name with ``hub_id``       the cached Hub snapshot (downloaded once, safetensors only)
zoo name with ``url``          ``~/.cache/ssl4gie/zoo/<name>``: downloaded once, converted
zoo name, manual download      the same cache folder, filled by ``ssl4gie zoo convert``
``hf-hub:org/repo[@rev]``      the cached Hub snapshot
a folder                       itself
a ``.ckpt``/``.pth`` file      a temporary export (ssl4gie Lightning or a released format)
=============================  ============================================================
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import SafetensorError
from torch import nn
from torchvision.transforms import v2

from ssl4gie._timm import vit_defaults
from ssl4gie.errors import InputError, did_you_mean
from ssl4gie.zoo import hub
from ssl4gie.zoo.cards import WeightsCard
from ssl4gie.zoo.convert import convert_file, detect_architecture, read_checkpoint
from ssl4gie.zoo.export import build_backbone, export_backbone, write_timm_folder
from ssl4gie.zoo.registry import backbone_card, is_zoo_name, list_backbones


def load_backbone(
    source: str | os.PathLike,
    pretrained: bool = True,
    *,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    num_classes: int = 0,
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    checkpoint_format: str | None = None,
    **timm_kwargs: Any,
) -> nn.Module:
    """A timm model with pretrained weights from a zoo name, the Hub, a folder or a checkpoint.

    Args:
        source: ``"resnet50-barlow-hk"`` (see ``list_backbones()``), ``"hf-hub:org/repo"`` or
            ``"hf-hub:org/repo@<revision>"``, an export folder, a Lightning ``.ckpt`` from
            ssl4gie pretraining, or a released checkpoint (``checkpoint_format`` or detected).
        pretrained: False builds the architecture only (nothing is downloaded).
        features_only, out_indices, num_classes: as for ``timm.create_model``; by default
            ``model(x)`` maps ``[B, 3, H, W]`` to pooled features ``[B, model.num_features]``.
        cache_dir: Hub cache folder (default ``$HF_HUB_CACHE``); converted upstream weights go
            to ``<cache_dir>/ssl4gie`` (default ``~/.cache/ssl4gie/zoo``).
        revision: Hub revision (branch, tag or commit sha) overriding the card's pin.
        timm_kwargs: more ``timm.create_model`` arguments (e.g. ``img_size=448``).

    Returns:
        the model; ``model.pretrained_cfg`` holds the card's input size, mean, std,
        interpolation and crop_pct (``load_transforms(model)`` builds the eval transform).

    Example:
        >>> model = ssl4gie.load_backbone("vitb16-mae-in1k")  # doctest: +SKIP
        >>> model(torch.rand(2, 3, 224, 224)).shape  # doctest: +SKIP
        torch.Size([2, 768])
    """
    kwargs: dict[str, Any] = {"num_classes": num_classes, **timm_kwargs}
    if features_only:
        kwargs["features_only"] = True
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
    source = os.fspath(source)
    if is_zoo_name(source) and not pretrained:
        card = backbone_card(source)
        kwargs["pretrained_cfg_overlay"] = card.input_config()
        defaults = {**vit_defaults(card.architecture), **card.model_args}
        return _create(card.architecture, False, {**defaults, **kwargs})
    if Path(source).is_file():
        with tempfile.TemporaryDirectory(prefix="ssl4gie-load-") as folder:
            _export_checkpoint(source, Path(folder), checkpoint_format)
            return _create_from_folder(Path(folder), pretrained, kwargs)
    folder = weights_folder(source, cache_dir=cache_dir, revision=revision)
    card = backbone_card(source) if is_zoo_name(source) else None
    return _create_from_folder(folder, pretrained, kwargs, card)


def weights_folder(
    source: str, *, cache_dir: str | os.PathLike | None = None, revision: str | None = None
) -> Path:
    """The export folder for a zoo name, ``hf-hub:`` id or folder (fetched when needed)."""
    if source.startswith("hf-hub:"):
        repo_id, pinned = hub.split_repo(source.removeprefix("hf-hub:"))
        return hub.download_repo_files(repo_id, revision=revision or pinned, cache_dir=cache_dir)
    if Path(source).is_dir():
        if not (Path(source) / "config.json").is_file():
            raise InputError(f"{source} has no config.json; give an ssl4gie/timm export folder")
        return Path(source)
    if is_zoo_name(source):
        return _zoo_folder(backbone_card(source), cache_dir, revision)
    raise InputError(
        f"{source!r} is not a zoo name, 'hf-hub:org/repo', folder or checkpoint file"
        f"{did_you_mean(source, list_backbones())}; run 'ssl4gie zoo list' for the names"
    )


def converted_folder(card: WeightsCard, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted weights of a ``url`` or manual-download card are cached."""
    root = Path(cache_dir) / "ssl4gie" if cache_dir is not None else hub.ssl4gie_cache_dir()
    return root / card.name


def _zoo_folder(card: WeightsCard, cache_dir, revision: str | None) -> Path:
    if not card.available:
        reason = f" ({card.notes})" if card.notes else ""
        raise InputError(f"no weights are available for {card.name!r} yet{reason}")
    if card.source_kind == "hub":
        folder = hub.download_repo_files(
            card.hub_id, revision=revision or card.revision, cache_dir=cache_dir
        )
        _verify(folder / "model.safetensors", card)
        return folder
    folder = converted_folder(card, cache_dir)
    if (folder / "model.safetensors").is_file():
        return folder
    if card.source_kind == "url":
        return _fetch_and_convert(card, folder)
    raise InputError(
        f"{card.name!r} must be downloaded by hand from {card.origin_url}; then run "
        f"'ssl4gie zoo convert --format {card.format} --name {card.name} <file> {folder}'"
    )


def _verify(weights: Path, card: WeightsCard) -> None:
    """Check the card's sha256; cheap for a Hub cache blob, whose file name is its sha256."""
    if card.sha256 is None or weights.resolve().name == card.sha256:
        return
    if (found := hub.sha256_of(weights)) != card.sha256:
        raise InputError(
            f"{weights} has sha256 {found}, but the card of {card.name!r} records {card.sha256}"
        )


def _fetch_and_convert(card: WeightsCard, folder: Path) -> Path:
    """Download the upstream file, convert it with the card's format, cache the export."""
    downloaded = folder.parent / "downloads" / Path(card.url.split("?")[0]).name
    hub.download_url(card.url, downloaded, card.sha256)
    converted = convert_file(downloaded, card.format, card.architecture)
    converted.model_args = {**converted.model_args, **card.model_args}
    export_backbone(converted, folder, card=card)
    downloaded.unlink()
    return folder


def _export_checkpoint(path: str, folder: Path, checkpoint_format: str | None) -> None:
    model = build_backbone(convert_file(path, checkpoint_format))
    write_timm_folder(model, folder, None, {"source_format": checkpoint_format or "detected"})


def folder_card(folder: Path) -> WeightsCard | None:
    """The card an ssl4gie export keeps in its config.json, or None."""
    config = _folder_config(folder)
    card = (config.get("ssl4gie") or {}).get("card")
    return WeightsCard.from_dict(card) if card else None


def _create_from_folder(
    folder: Path, pretrained: bool, kwargs: dict[str, Any], card: WeightsCard | None = None
) -> nn.Module:
    """The model from an export folder; the preprocessing comes from ``card`` (the zoo's) or
    else from the card the folder carries."""
    card = card or folder_card(folder)
    if card is not None:
        kwargs = {"pretrained_cfg_overlay": card.input_config(), **kwargs}
    architecture = _folder_config(folder)["architecture"]
    defaults = vit_defaults(architecture)
    loads_every_weight = kwargs["num_classes"] == 0 and not kwargs.get("features_only")
    if pretrained and loads_every_weight and architecture.startswith(("vit_", "deit")):
        defaults["weight_init"] = "skip"  # every weight is loaded: skip ~1.5 s of random init
    try:
        model = _create(f"local-dir:{folder}", pretrained, {**defaults, **kwargs})
    except (RuntimeError, SafetensorError) as err:  # no, corrupt or misfit weights
        raise _misfit(folder, architecture, err) from None
    getattr(model, "_model_args", {}).pop("weight_init", None)  # not part of the architecture
    return model


def _folder_config(folder: Path) -> dict[str, Any]:
    """An export folder's ``config.json``, checked to be timm's (one-line errors)."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        config = None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise InputError(
            f"{path} is not a timm config (JSON with an 'architecture' entry); export the "
            "folder again"
        )
    return config


def _misfit(folder: Path, architecture: str, err: Exception) -> InputError:
    """Why timm could not load ``folder``: no weights, a corrupt file (raised by
    :func:`~ssl4gie.zoo.convert.read_checkpoint`), or weights of another architecture."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return InputError(f"{folder} has no model.safetensors; export the folder again")
    try:
        found, _ = detect_architecture(read_checkpoint(weights))
    except InputError as unknown:
        if "corrupt" in str(unknown):
            return unknown
        found = "another architecture"
    if found != architecture:
        return InputError(
            f"{folder}: weights for {found}, config says {architecture} (model.safetensors "
            "and config.json come from different exports); export the folder again"
        )
    return InputError(f"{weights} does not fit {architecture}: {str(err).splitlines()[0]}")


def _create(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    model = timm.create_model(name, pretrained=pretrained, **kwargs)
    return model.eval()


def load_transforms(source: str | os.PathLike | nn.Module) -> v2.Compose:
    """The eval preprocessing of a backbone: resize, center crop, scale to [0, 1], normalise.

    ``source`` is a zoo name, an export folder, ``hf-hub:org/repo`` or a loaded model. The
    transform takes a PIL image or a uint8 tensor ``[3, H, W]`` / ``[B, 3, H, W]`` and returns
    float32 ``[.., 3, S, S]`` with ``S = input_size``; the resize is ``S / crop_pct`` on the
    short side (timm's eval transform).

    Examples:
        >>> preprocess = load_transforms("vitb16-mae-in1k")  # from the card: nothing is downloaded
        >>> preprocess(torch.zeros(2, 3, 480, 640, dtype=torch.uint8)).shape
        torch.Size([2, 3, 224, 224])
    """
    config = input_config(source)
    size = tuple(config["input_size"][1:])
    interpolation = v2.InterpolationMode(config["interpolation"])
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(math.floor(size[0] / config["crop_pct"]), interpolation, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(config["mean"]), list(config["std"])),
        ]
    )


def input_config(source: str | os.PathLike | nn.Module) -> dict[str, Any]:
    """``input_size``, ``mean``, ``std``, ``interpolation`` and ``crop_pct`` of a backbone."""
    keys = ("input_size", "mean", "std", "interpolation", "crop_pct")
    if isinstance(source, nn.Module):
        return {key: source.pretrained_cfg[key] for key in keys}
    source = os.fspath(source)
    if is_zoo_name(source):
        return backbone_card(source).input_config()
    folder = weights_folder(source)
    config = _folder_config(folder)["pretrained_cfg"]
    return {key: config[key] for key in keys}
