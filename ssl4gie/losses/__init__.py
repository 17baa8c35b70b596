"""Losses as plain functions, one per file, no Lightning: self-supervised losses of embeddings,
and the downstream Dice (:mod:`.dice`) and scale-and-shift-invariant depth (:mod:`.depth`) losses.

The self-supervised losses work on one process and under DDP (collectives from
:mod:`ssl4gie.distributed`); under DDP the per-process values average to the joint-batch loss, so
W processes train as one process on the concatenated batch. The downstream losses are per-process
(DDP averages their gradients).
"""

from ssl4gie.losses.barlow_twins import barlow_twins_loss
from ssl4gie.losses.byol import byol_loss
from ssl4gie.losses.depth import gradient_matching_loss, ssi_depth_loss, ssi_mse_loss
from ssl4gie.losses.dice import dice_bce_loss, dice_loss, soft_dice_loss
from ssl4gie.losses.dino import dino_center, dino_loss
from ssl4gie.losses.info_nce import info_nce_loss
from ssl4gie.losses.mae import mae_loss, patchify, scene_patches, unpatchify
from ssl4gie.losses.nt_xent import nt_xent_loss
from ssl4gie.losses.simmim import simmim_loss
from ssl4gie.losses.swav import sinkhorn, swav_loss

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "dice_bce_loss",
    "dice_loss",
    "dino_center",
    "dino_loss",
    "gradient_matching_loss",
    "info_nce_loss",
    "mae_loss",
    "nt_xent_loss",
    "patchify",
    "scene_patches",
    "simmim_loss",
    "sinkhorn",
    "soft_dice_loss",
    "ssi_depth_loss",
    "ssi_mse_loss",
    "swav_loss",
    "unpatchify",
]
