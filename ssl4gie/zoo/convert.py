"""Importers: released checkpoints and ssl4gie Lightning checkpoints -> timm state dicts.

Each released format is a :class:`Format`, i.e. data: where the state dict sits in the file,
which other networks to leave out, which prefixes to strip and which head keys to drop. The key
layouts follow the official loaders:

* ``mocov3``: ``{"state_dict": {"module.base_encoder.*", "module.momentum_encoder.*",
  "module.predictor.*"}}``; the projector is ``base_encoder.fc`` (ResNet) or
  ``base_encoder.head`` (ViT) (facebookresearch/moco-v3 ``main_lincls.py``, ``convert_to_deit.py``).
* ``barlowtwins``: ``resnet50.pth`` is a torchvision ResNet-50 state dict without ``fc``; the full
  ``checkpoint.pth`` is ``{"model": {"module.backbone.*", "module.projector.*", "module.bn.*"}}``.
* ``mae``: ``{"model": {...}}`` with timm ViT keys, plus ``decoder_*`` and ``mask_token`` in the
  full pretraining checkpoints (facebookresearch/mae ``main_finetune.py``).
* ``dino``: a backbone state dict, or a full checkpoint whose ``teacher`` entry has ``module.`` /
  ``backbone.`` prefixes and a ``head.*`` projection head (dino ``utils.load_pretrained_weights``).
* ``swav``: ``module.``-prefixed ResNet keys plus ``projection_head.*`` and ``prototypes.*``.
* ``torchvision``: a torchvision ResNet state dict; ``fc`` is the ImageNet classifier.
* ``ssl4gie-*``: the SSL4GIE Hyperkvasir releases, in the layouts of their methods (MoCo v3 with
  or without the ``module.base_encoder.`` prefix, Barlow Twins' torchvision layout, MAE's).

timm's ResNets use torchvision's key names and timm's ViT uses the DeiT/MAE/DINO/MoCo v3 names,
so after stripping no key is renamed. Only head, projector, decoder and other-network keys may
be dropped (each conversion lists them); any other missing or unexpected key is an error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ssl4gie.errors import InputError, check_choice


@dataclass(frozen=True)
class Format:
    """Where a released format keeps the encoder and what else it holds."""

    name: str
    summary: str
    entries: tuple[str, ...] = ()  # keys that may wrap the state dict, tried in order
    others: tuple[str, ...] = ()  # key prefixes of other networks (momentum encoder, predictor)
    strip: tuple[str, ...] = ()  # prefixes removed in this order where present
    heads: tuple[str, ...] = ()  # prefixes, after stripping, of heads/projectors/decoders


_MOCOV3 = Format(
    "mocov3",
    "MoCo v3 checkpoint (facebookresearch/moco-v3)",
    entries=("state_dict",),
    others=("module.momentum_encoder.", "module.predictor."),
    strip=("module.base_encoder.",),
    heads=("fc.", "head."),
)
_TORCHVISION = Format("torchvision", "torchvision ResNet state dict", heads=("fc.",))
_MAE = Format(
    "mae",
    "MAE checkpoint (facebookresearch/mae)",
    entries=("model",),
    heads=("decoder_", "mask_token"),
)
FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        _MOCOV3,
        dataclasses.replace(_MOCOV3, name="ssl4gie-mocov3", summary="SSL4GIE MoCo v3 encoder"),
        Format(
            "barlowtwins",
            "Barlow Twins resnet50.pth or full checkpoint (facebookresearch/barlowtwins)",
            entries=("model",),
            others=("module.projector.", "module.bn."),
            strip=("module.backbone.",),
            heads=("fc.",),
        ),
        dataclasses.replace(
            _TORCHVISION, name="ssl4gie-barlow", summary="SSL4GIE Barlow Twins ResNet-50"
        ),
        _MAE,
        dataclasses.replace(_MAE, name="ssl4gie-mae", summary="SSL4GIE MAE ViT-B/16"),
        Format(
            "dino",
            "DINO backbone or full checkpoint (facebookresearch/dino)",
            entries=("teacher",),
            strip=("module.", "backbone."),
            heads=("head.", "fc."),
        ),
        Format(
            "swav",
            "SwAV checkpoint (facebookresearch/swav)",
            others=("module.projection_head.", "module.prototypes."),
            strip=("module.",),
            heads=("fc.",),
        ),
        _TORCHVISION,
    )
}

# (blocks per stage, bottleneck) -> timm ResNet; (width, depth, patch) -> timm ViT
_RESNETS = {
    ((2, 2, 2, 2), False): "resnet18",
    ((3, 4, 6, 3), False): "resnet34",
    ((3, 4, 6, 3), True): "resnet50",
    ((3, 4, 23, 3), True): "resnet101",
    ((3, 8, 36, 3), True): "resnet152",
}
_VITS = {
    (192, 12, 16): "vit_tiny_patch16_224",
    (384, 12, 16): "vit_small_patch16_224",
    (768, 12, 16): "vit_base_patch16_224",
    (768, 12, 8): "vit_base_patch8_224",
    (1024, 24, 16): "vit_large_patch16_224",
}


@dataclass
class Converted:
    """A timm state dict and what is needed to build the model it belongs to."""

    state_dict: dict[str, torch.Tensor]
    architecture: str  # timm name
    model_args: dict[str, Any] = field(default_factory=dict)  # for create_backbone
    dropped: list[str] = field(default_factory=list)  # source keys left out (heads etc.)
    source_format: str = ""


def read_checkpoint(path: str | Path) -> Any:
    """Load a ``.pth``/``.ckpt``/``.safetensors`` file without running any code from it.

    ``torch.load(weights_only=True)`` accepts tensors and plain containers only; a file that
    needs full unpickling (custom classes, code) is refused with :class:`InputError`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"{path} needs full unpickling, which could run code from the file, so ssl4gie "
            f"refuses it ({reason}); re-save only its tensors (torch.save(model.state_dict()))"
        ) from err


def _keys(checkpoint: dict) -> set[str]:
    """Top-level keys plus the keys of the usual wrapping entries."""
    keys = set(checkpoint)
    for entry in ("state_dict", "model", "teacher"):
        if isinstance(checkpoint.get(entry), dict):
            keys |= set(checkpoint[entry])
    return keys


def detect_format(checkpoint: dict) -> str:
    """Guess the format of a loaded checkpoint from its keys ("lightning" for ssl4gie's own)."""
    keys = _keys(checkpoint)

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in keys)

    rules = (
        ("lightning", "hyper_parameters" in checkpoint and "state_dict" in checkpoint),
        ("mocov3", has("module.base_encoder.")),
        ("dino", "teacher" in checkpoint),
        ("barlowtwins", has("module.backbone.")),
        ("swav", has("module.prototypes")),
        ("mae", isinstance(checkpoint.get("model"), dict)),
        ("torchvision", has("conv1.weight") or has("layer1.")),
        ("dino", has("blocks.0.")),
    )
    for name, matches in rules:
        if matches:
            return name
    raise InputError(
        f"cannot tell the format of a checkpoint with keys {sorted(checkpoint)[:5]}; give it: "
        + ", ".join(FORMATS)
    )


def _unwrap(checkpoint: dict, entries: tuple[str, ...]) -> dict:
    for entry in entries:
        if isinstance(checkpoint.get(entry), dict):
            return checkpoint[entry]
    return checkpoint


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    return key


def apply_format(checkpoint: dict, fmt: Format) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(timm-named tensors, dropped source keys)`` for a checkpoint in format ``fmt``."""
    kept, dropped = {}, []
    for key, value in _unwrap(checkpoint, fmt.entries).items():
        new_key = _strip(key, fmt.strip)
        if key.startswith(fmt.others) or new_key.startswith(fmt.heads):
            dropped.append(key)
        elif not isinstance(value, torch.Tensor):
            raise InputError(f"{fmt.name} checkpoint entry {key!r} is not a tensor")
        else:
            kept[new_key] = value
    return kept, dropped


def detect_architecture(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """``(timm name, model args)`` for a ResNet or ViT state dict with timm keys.

    >>> import timm
    >>> detect_architecture(timm.create_model("resnet18").state_dict())
    ('resnet18', {})
    """
    if "conv1.weight" in state_dict:
        blocks = tuple(
            len({key.split(".")[1] for key in state_dict if key.startswith(f"layer{stage}.")})
            for stage in range(1, 5)
        )
        key = (blocks, "layer1.0.conv3.weight" in state_dict)
        if key in _RESNETS:
            return _RESNETS[key], {}
    if "patch_embed.proj.weight" in state_dict and "pos_embed" in state_dict:
        width, _, patch, _ = state_dict["patch_embed.proj.weight"].shape
        depth = len({key.split(".")[1] for key in state_dict if key.startswith("blocks.")})
        if (width, depth, patch) in _VITS:
            tokens = state_dict["pos_embed"].shape[1] - ("cls_token" in state_dict)
            img_size = math.isqrt(tokens) * patch
            return _VITS[width, depth, patch], {} if img_size == 224 else {"img_size": img_size}
    raise InputError(
        "cannot tell the architecture of this state dict (known: timm resnet18-152 and "
        "ViT-Ti/S/B/L); give architecture='<timm name>'"
    )


def convert_checkpoint(
    checkpoint: dict, fmt: str | None = None, architecture: str | None = None
) -> Converted:
    """Convert a loaded checkpoint (format given or detected) to a timm state dict."""
    fmt = fmt or detect_format(checkpoint)
    if fmt == "lightning":
        return convert_lightning(checkpoint)
    check_choice("checkpoint format", fmt, FORMATS)
    state_dict, dropped = apply_format(checkpoint, FORMATS[fmt])
    if architecture is None:
        architecture, model_args = detect_architecture(state_dict)
    else:
        model_args = {}
    return Converted(state_dict, architecture, model_args, dropped, fmt)


def convert_lightning(checkpoint: dict) -> Converted:
    """The ``backbone.*`` weights of a checkpoint written by ssl4gie pretraining.

    The module's hyperparameters name the timm backbone (``backbone``) and its
    ``backbone_kwargs``; a zoo name there resolves to its card's architecture.
    """
    hparams = checkpoint.get("hyper_parameters") or {}
    if "backbone" not in hparams:
        raise InputError("this Lightning checkpoint has no 'backbone' hyperparameter")
    architecture, model_args = _backbone_architecture(hparams["backbone"])
    model_args = {**model_args, **(hparams.get("backbone_kwargs") or {})}
    state = checkpoint["state_dict"]
    kept = {
        key.removeprefix("backbone."): v for key, v in state.items() if key.startswith("backbone.")
    }
    if not kept:
        raise InputError("this Lightning checkpoint holds no 'backbone.*' weights")
    dropped = [key for key in state if not key.startswith("backbone.")]
    return Converted(kept, architecture, model_args, dropped, "lightning")


def _backbone_architecture(backbone: str) -> tuple[str, dict[str, Any]]:
    """The timm architecture and model arguments behind a ``backbone`` hyperparameter: a timm
    name, a zoo name (its card's) or an export folder (its ``config.json``'s), e.g. when
    pretraining continued from other weights."""
    from ssl4gie.zoo.registry import backbone_card, is_zoo_name

    if is_zoo_name(backbone):
        card = backbone_card(backbone)
        return card.architecture, dict(card.model_args)
    config = Path(backbone) / "config.json"
    if config.is_file():
        exported = json.loads(config.read_text(encoding="utf-8"))
        model_args = dict(exported.get("model_args") or {})
        model_args.pop("num_classes", None)
        return exported["architecture"], model_args
    return backbone, {}


def convert_file(
    path: str | Path, fmt: str | None = None, architecture: str | None = None
) -> Converted:
    """Read a checkpoint file safely and convert it (see :func:`convert_checkpoint`).

    Examples:
        >>> converted = convert_file("r-50-100ep.pth.tar", "mocov3")  # doctest: +SKIP
        >>> converted.architecture, converted.source_format  # doctest: +SKIP
        ('resnet50', 'mocov3')
    """
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise InputError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return convert_checkpoint(checkpoint, fmt, architecture)


def summarize_dropped(dropped: list[str]) -> str:
    """``"projector.* (4), momentum_encoder.* (62)"``: dropped keys grouped by first part."""
    groups: dict[str, int] = {}
    for key in dropped:
        head = key.split(".")[0] if not key.startswith("module.") else ".".join(key.split(".")[:2])
        groups[head] = groups.get(head, 0) + 1
    return ", ".join(f"{head}.* ({count})" for head, count in groups.items()) or "nothing"
