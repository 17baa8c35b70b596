"""BYOL regression loss between a prediction and a target projection [Grill et al. 2020]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl4gie.losses._checks import check_pair

__all__ = ["byol_loss"]


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``2 - 2 * cos(p_n, z_n)``.

    "we define the following mean squared error between the normalized predictions and target
    projections, L = ||q̄ - z̄'||² = 2 - 2 <q, z'> / (||q|| ||z'||)" [Grill et al. 2020, Eq. 2].
    The method symmetrises it by swapping the views and adds the two terms.

    The function does not detach ``z``: the method passes the target network's output, computed
    without gradient (the paper's stop-gradient), and stays free to do otherwise (e.g. SimSiam).
    No collective is needed: under DDP the value is the mean over this process's samples, and its
    mean over processes is the joint-batch loss, which DDP's gradient averaging optimises.

    Args:
        p: Online predictions, ``[N, D]``.
        z: Target projections of the other view, ``[N, D]``; row ``n`` is the same image.

    Returns:
        The scalar loss, in ``[0, 4]``.

    Examples:
        >>> p, z = torch.randn(8, 16), torch.randn(8, 16)
        >>> byol_loss(p, z.detach()).shape
        torch.Size([])
    """
    check_pair("byol_loss", ("p", "z"), p, z, min_batch=1)
    return (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()
