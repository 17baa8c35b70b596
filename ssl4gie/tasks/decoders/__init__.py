"""Decoders of the dense tasks: feature pyramids (:mod:`.pyramid`), DPT's ViT reassembly
(:mod:`.dpt`), the residual fusion decoder and heads (:mod:`.residual`) and ViTDet's simple
feature pyramid for detection (:mod:`.vitdet`)."""

from ssl4gie.tasks.decoders.dpt import DPTEncoder, pyramid_encoder, tap_blocks
from ssl4gie.tasks.decoders.pyramid import CNNPyramid, copy_weights_by_name, pyramid_indices
from ssl4gie.tasks.decoders.residual import DenseModel, FusionDecoder, depth_head, segmentation_head

__all__ = [
    "CNNPyramid",
    "DPTEncoder",
    "DenseModel",
    "FusionDecoder",
    "copy_weights_by_name",
    "depth_head",
    "pyramid_encoder",
    "pyramid_indices",
    "segmentation_head",
    "tap_blocks",
]
