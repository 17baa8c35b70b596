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

The endoscopy and surgery releases:

* ``endovit``: MAE's layout (``{"model": ...}`` with ``decoder_*`` and ``mask_token``) plus the
  training ``args`` as an ``argparse.Namespace`` (egeozsoy/EndoViT ``pytorch_model.bin``).
* ``surgenet``: timm-native state dicts of DINOv1/v2/v3 ViTs (rlpddejong/SurgeNetDINO); only DINO
  and iBOT head keys may be extra.
* ``gastronet``: torchvision ResNet-50 without ``fc``, DINO ViT-S/16, and Meta's DINOv2 layout for
  ``dinov2.pth`` (``register_tokens``, ``mask_token``), each maybe under ``student_backbone.``
  (GastroNet-5M releases, Boers et al. 2024); timm's own DINOv2 filter converts the registers.
* ``selfsupsurg``: VISSL checkpoints, ``{"classy_state_dict": {"base_model": {"model":
  {"trunk": {"_feature_blocks.*"}, "heads": ...}}}}`` (facebookresearch/vissl
  ``extra_scripts/convert_vissl_to_torchvision.py``; CAMMA-public/SelfSupSurg).
* ``endofm``: DINO-style ``teacher``/``student`` with ``module.backbone.`` keys of a TimeSformer
  ViT-B/16 (med-air/Endo-FM ``models/timesformer.py``); the spatial trunk has timm's ViT names,
  and ``time_embed`` and the ``temporal_*`` layers of each block are dropped.

timm's ResNets use torchvision's key names and timm's ViT uses the DeiT/MAE/DINO/MoCo v3 names,
so after stripping no key is renamed. Only head, projector, decoder, other-network and temporal
keys may be dropped (each conversion lists them); any other missing or unexpected key is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ssl4gie.errors import InputError, check_choice


@dataclass(frozen=True)
class Format:
    """Where a released format keeps the encoder and what else it holds."""

    name: str
    entries: tuple[str, ...] = ()  # dotted paths that may wrap the state dict, tried in order
    others: tuple[str, ...] = ()  # key prefixes of other networks (momentum encoder, predictor)
    strip: tuple[str, ...] = ()  # prefixes removed in this order where present
    heads: tuple[str, ...] = ()  # prefixes, after stripping, of heads/projectors/decoders
    parts: tuple[str, ...] = ()  # key parts, at any depth, of layers timm lacks (temporal ones)
    timm_filter: bool = False  # then apply the architecture's timm checkpoint_filter_fn


_MOCOV3 = Format(
    "mocov3",
    entries=("state_dict",),
    others=("module.momentum_encoder.", "module.predictor."),
    strip=("module.base_encoder.",),
    heads=("fc.", "head."),
)
_TORCHVISION = Format("torchvision", heads=("fc.",))
_MAE = Format(
    "mae",
    entries=("model",),
    heads=("decoder_", "mask_token"),
)
_DINO_HEADS = ("head.", "dino_head.", "ibot_head.")
FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        _MOCOV3,
        dataclasses.replace(_MOCOV3, name="ssl4gie-mocov3"),
        Format(
            "barlowtwins",
            entries=("model",),
            others=("module.projector.", "module.bn."),
            strip=("module.backbone.",),  # backbone.fc is nn.Identity: no head keys
        ),
        dataclasses.replace(_TORCHVISION, name="ssl4gie-barlow"),
        _MAE,
        dataclasses.replace(_MAE, name="ssl4gie-mae"),
        Format(
            "dino",
            entries=("teacher",),
            strip=("module.", "backbone."),
            heads=("head.", "fc."),
        ),
        Format(
            "swav",
            others=("module.projection_head.", "module.prototypes."),  # the ResNet has no fc
            strip=("module.",),
        ),
        _TORCHVISION,
        dataclasses.replace(_MAE, name="endovit"),
        Format(
            "surgenet",
            entries=("teacher",),
            strip=("backbone.",),
            heads=_DINO_HEADS,
        ),
        Format(
            "gastronet",
            entries=("teacher",),
            strip=("student_backbone.", "module.", "backbone."),
            heads=("fc.", *_DINO_HEADS),  # fc: a ResNet file that kept its classifier;
            # timm's DINOv2 filter removes mask_token
            timm_filter=True,
        ),
        Format(
            "selfsupsurg",
            entries=("classy_state_dict.base_model.model",),
            others=("heads.",),  # VISSL's trunk ends at the pooling: its heads are apart
            strip=("trunk._feature_blocks.",),
        ),
        Format(
            "endofm",
            entries=("teacher",),
            strip=("module.", "backbone."),
            heads=("head.",),
            parts=("time_embed", "temporal_"),
        ),
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
    source_format: str = ""  # a key of FORMATS, "lightning", or "" for one's own state dict


# Classes a checkpoint's pickle may hold besides tensors and containers: EndoViT and DINO-style
# trainers (Endo-FM) save their command-line args as an argparse.Namespace of plain values.
SAFE_GLOBALS = (argparse.Namespace,)
_IMPORTED = re.compile(r"GLOBAL ([\w.]+)")
# what a pickle of tensors imports (protocol 2 pickles bytes with _codecs.encode)
_TENSOR_MODULES = ("torch.", "collections.OrderedDict", "_codecs.encode")


def read_checkpoint(path: str | Path) -> Any:
    """Load a ``.pth``/``.ckpt``/``.bin``/``.safetensors`` file without running any code from it.

    Pickles go through ``torch.load(weights_only=True)`` with only :data:`SAFE_GLOBALS` allowed:
    its unpickler refuses any other import (a class, ``os.system``) when it meets it, before
    anything from the file runs. Every failure is one :class:`InputError` line naming the file:
    a pickle that needs full unpickling, a file that is not a checkpoint (text, random bytes,
    truncated) and a corrupt ``.safetensors`` header.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"checkpoint {path} is a folder; give the checkpoint file inside it")
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if not os.access(path, os.R_OK):
        raise InputError(f"checkpoint {path} cannot be read (no permission); check its mode")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if not _head(path).startswith(_PICKLE_STARTS):
        raise _not_a_checkpoint(path)  # text or other bytes: torch.load would misread them
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        imported = _IMPORTED.search(str(err))
        raise (_refused(path, imported.group(1)) if imported else _not_a_checkpoint(path)) from err
    except Exception as err:  # EOFError, struct.error, RuntimeError, ...: not torch.save's bytes
        raise _not_a_checkpoint(path) from err


_PICKLE_STARTS = (b"PK", b"\x80")  # torch.save's zip archive; a legacy or bare pickle (protocol 2+)


def _head(path: Path, size: int = 512) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _refused(path: Path, imported: str) -> InputError:
    return InputError(
        f"{path} needs full unpickling (its pickle imports {imported}), which could run code, "
        "so ssl4gie refused it before running anything; if you trust the file, re-save only "
        "its tensors (torch.save(model.state_dict()))"
    )


def _pickle_imports(path: Path) -> list[str]:
    """The ``module.name`` globals a bare pickle imports, read with :mod:`pickletools` (which
    only decodes opcodes: nothing is run). Stops quietly where the bytes stop being a pickle."""
    import pickletools

    imports, strings = [], []
    with path.open("rb") as handle:
        try:
            for opcode, arg, _ in pickletools.genops(handle):
                if opcode.name in ("GLOBAL", "INST"):
                    imports.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    imports.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
        except (ValueError, EOFError):
            pass
    return imports


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except SafetensorError as err:
        raise InputError(
            f"{path} has a corrupt safetensors header or is truncated ({err}); "
            "download or export the file again"
        ) from err


def _not_a_checkpoint(path: Path) -> InputError:
    """The error for a file ``torch.load`` cannot read, saying what the file looks like (a bare
    pickle that imports more than torch's rebuild functions is refused as code)."""
    head = _head(path)
    imports = _pickle_imports(path) if head.startswith(b"\x80") else []
    code = [name for name in imports if not name.startswith(_TENSOR_MODULES)]
    if code:
        return _refused(path, code[0])
    if not head:
        looks = "it is empty"
    elif head.startswith(b"PK"):
        looks = "a damaged or truncated zip archive"
    elif all(byte in b"\t\n\r" or 32 <= byte < 127 for byte in head):
        looks = "it is a text file"
    elif head.startswith(b"\x80"):
        looks = "a pickle, but not one written by torch.save"
    else:
        looks = "unrecognised bytes"
    return InputError(
        f"{path} is not a checkpoint ({looks}): expected a file written by torch.save or a "
        ".safetensors file; check the path, or download the file again if it was cut short"
    )


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
        ("selfsupsurg", "classy_state_dict" in checkpoint),
        ("mocov3", has("module.base_encoder.")),
        ("endofm", any("time_embed" in key.split(".") for key in keys)),
        ("dino", "teacher" in checkpoint),
        ("barlowtwins", has("module.backbone.")),
        ("swav", has("module.prototypes")),
        ("mae", isinstance(checkpoint.get("model"), dict)),
        ("torchvision", has("conv1.weight")),
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
    """The first of ``entries`` (dotted paths such as ``"classy_state_dict.base_model.model"``)
    that holds a dict, flattened to dotted keys; else the whole checkpoint, flattened."""
    for entry in entries:
        found = checkpoint
        for key in entry.split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if isinstance(found, dict):
            return _flatten(found)
    return _flatten(checkpoint)


def _flatten(tree: dict, prefix: str = "") -> dict:
    """``{"trunk": {"conv1.weight": t}}`` -> ``{"trunk.conv1.weight": t}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    return key


def apply_format(checkpoint: dict, fmt: Format) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(timm-named tensors, dropped source keys)`` for a checkpoint in format ``fmt``."""
    kept, dropped = {}, []
    for key, value in _unwrap(checkpoint, fmt.entries).items():
        new_key = _strip(key, fmt.strip)
        temporal = any(part.startswith(fmt.parts) for part in new_key.split("."))
        if key.startswith(fmt.others) or new_key.startswith(fmt.heads) or temporal:
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
    img_size = _vit_img_size(state_dict)
    if img_size is not None:
        width, _, patch, _ = state_dict["patch_embed.proj.weight"].shape
        depth = len({key.split(".")[1] for key in state_dict if key.startswith("blocks.")})
        if (width, depth, patch) in _VITS:
            return _VITS[width, depth, patch], {} if img_size == 224 else {"img_size": img_size}
    raise InputError(
        "cannot tell the architecture of this state dict (known: timm resnet18-152 and "
        "ViT-Ti/S/B/L); give architecture='<timm name>'"
    )


def _vit_img_size(state_dict: dict[str, torch.Tensor]) -> int | None:
    """The square input size a ViT's ``pos_embed`` ``[1, (cls) + N, D]`` was trained at: ``N``
    is a square grid ``g * g``, and ``isqrt(g * g + 1)`` is ``g`` too, so a class token's row
    (timm's ViT, Meta's DINOv2 layout) does not change it. None without a patch embedding and
    an absolute position embedding (a ResNet, a Swin)."""
    if "pos_embed" not in state_dict or "patch_embed.proj.weight" not in state_dict:
        return None
    grid = math.isqrt(state_dict["pos_embed"].shape[1])
    return grid * state_dict["patch_embed.proj.weight"].shape[-1]


def timm_filter(
    state_dict: dict[str, torch.Tensor], architecture: str, model_args: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(state_dict through timm's filter, keys it removed)``: the ``checkpoint_filter_fn`` of
    ``architecture``'s timm module, if it has one, i.e. what timm applies to upstream weights
    (Meta's DINOv2 layout: ``register_tokens`` -> ``reg_token``, the class token's position
    folded into ``cls_token``, ``mask_token`` removed). A key whose tensor lives on under
    another name counts as renamed, not removed.

    The model the filter inspects is built on the meta device: no memory, no initialisation.
    """
    import timm

    with torch.device("meta"):
        model = timm.create_model(architecture, num_classes=0, **model_args)
    filter_fn = getattr(
        importlib.import_module(type(model).__module__), "checkpoint_filter_fn", None
    )
    if filter_fn is None:
        return state_dict, []
    filtered = filter_fn(dict(state_dict), model)
    kept = {id(value) for value in filtered.values()}
    removed = [
        key for key, value in state_dict.items() if key not in filtered and id(value) not in kept
    ]
    return filtered, removed


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
    if FORMATS[fmt].timm_filter:
        img_size = _vit_img_size(state_dict)
        if img_size is not None:
            model_args.setdefault("img_size", img_size)  # else timm resamples to its default
        state_dict, removed = timm_filter(state_dict, architecture, model_args)
        dropped += removed
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
    """``"projector.* (4), temporal_attn.* (12)"``: dropped keys grouped by their first part that
    names a layer (past ``module.``, ``backbone.``, ``blocks.<i>.`` wrappers).

    >>> summarize_dropped(["module.backbone.blocks.0.temporal_fc.bias", "module.head.w", "fc.b"])
    'temporal_fc.* (1), head.* (1), fc.* (1)'
    """
    groups: dict[str, int] = {}
    for key in dropped:
        parts = [p for p in key.split(".")[:-1] if p not in _WRAPPERS and not p.isdigit()]
        head = parts[0] if parts else key.split(".")[-1]
        groups[head] = groups.get(head, 0) + 1
    return ", ".join(f"{head}.* ({count})" for head, count in groups.items()) or "nothing"


_WRAPPERS = ("module", "backbone", "blocks", "model", "trunk")
