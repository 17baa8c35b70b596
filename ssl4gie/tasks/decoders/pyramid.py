"""Multi-scale features from a backbone for the dense tasks.

CNNs and hierarchical transformers give a pyramid at strides 4, 8, 16 and 32 through timm's
``feature_info`` (:class:`CNNPyramid`); plain ViTs have one stride and go through DPT's
reassembly (:class:`~ssl4gie.tasks.decoders.dpt.DPTEncoder`) or ViTDet's simple pyramid.
"""

from __future__ import annotations

from timm.models import FeatureListNet
from torch import Tensor, nn

from ssl4gie.errors import InputError

__all__ = ["PYRAMID_STRIDES", "CNNPyramid", "copy_weights_by_name", "pyramid_indices"]

PYRAMID_STRIDES = (4, 8, 16, 32)


def pyramid_indices(backbone: nn.Module) -> tuple[int, ...]:
    """Indices into ``backbone.feature_info`` of the features at strides 4, 8, 16 and 32.

    Raises :class:`InputError` for a backbone without such a pyramid (e.g. MLP-Mixer: stride 16
    only), naming the strides it has.
    """
    info = getattr(backbone, "feature_info", None)
    strides = [level["reduction"] for level in info] if info else []
    if not set(PYRAMID_STRIDES) <= set(strides):
        name = type(backbone).__name__
        raise InputError(
            f"backbone {name} gives features at strides {strides or 'none'}, but dense tasks need "
            f"strides {list(PYRAMID_STRIDES)}: use a CNN, a hierarchical transformer or a ViT"
        )
    return tuple(max(i for i, s in enumerate(strides) if s == stride) for stride in PYRAMID_STRIDES)


def _feature_list(backbone: nn.Module, indices: tuple[int, ...]) -> FeatureListNet:
    """timm's feature wrapper around ``backbone``'s modules. Models name their feature modules
    either as direct children (ResNet ``layer1``) or inside sequentials (ConvNeXt ``stages.0``,
    which timm reaches by flattening); timm records which in the model's build config only, so
    both are tried (the wrapper asserts that the named modules exist)."""
    for flatten in (False, True):
        try:
            return FeatureListNet(backbone, out_indices=indices, flatten_sequential=flatten)
        except AssertionError:
            continue
    raise InputError(f"cannot take a feature pyramid from backbone {type(backbone).__name__}")


class CNNPyramid(nn.Module):
    """``[B, 3, H, W]`` -> four maps ``[B, C_i, H / s, W / s]`` for ``s`` in 4, 8, 16, 32.

    Wraps the backbone's own modules (timm ``FeatureListNet``): parameters are shared, not
    copied, so freezing the backbone freezes the pyramid. ``out_channels`` lists ``C_i``.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        indices = pyramid_indices(backbone)
        self.body = _feature_list(backbone, indices)
        self.out_channels = [backbone.feature_info[i]["num_chs"] for i in indices]

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.body(images)


def _normalised(name: str) -> str:
    """Key without the layout differences of timm's feature wrappers: ``layer1_0`` and
    ``layer1.0`` (flattened sequentials), a leading ``model.`` (``FeatureGetterNet``)."""
    return name.removeprefix("model.").replace("_", ".")


def copy_weights_by_name(target: nn.Module, source: nn.Module) -> None:
    """Load ``source``'s weights into ``target``, a timm feature wrapper of the same architecture
    (e.g. smp's ``model.encoder.model``). Every target tensor must be found with its shape;
    source-only tensors (the classifier, the final norm) are ignored."""
    available = {_normalised(key): value for key, value in source.state_dict().items()}
    state = {}
    for key, value in target.state_dict().items():
        match = available.get(_normalised(key))
        if match is None or match.shape != value.shape:
            raise InputError(
                f"cannot load the backbone into the decoder's encoder: no weight of shape "
                f"{tuple(value.shape)} for {key!r}; the architectures differ"
            )
        state[key] = match
    target.load_state_dict(state)
