"""Self-supervised losses as plain functions of embeddings, one per file, no Lightning.

Each works on one process and under DDP (collectives from :mod:`ssl4gie.distributed`); under DDP
the per-process values average to the joint-batch loss, so W processes train as one process on
the concatenated batch.
"""

from ssl4gie.losses.barlow_twins import barlow_twins_loss
from ssl4gie.losses.byol import byol_loss
from ssl4gie.losses.info_nce import info_nce_loss
from ssl4gie.losses.nt_xent import nt_xent_loss

__all__ = ["barlow_twins_loss", "byol_loss", "info_nce_loss", "nt_xent_loss"]
