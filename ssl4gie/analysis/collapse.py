"""Representation collapse metrics of an embedding batch ``[N, D]``.

- :func:`normalised_std`: the per-dimension standard deviation of the l2-normalised embeddings,
  averaged over dimensions and multiplied by ``sqrt(D)``. Embeddings spread over the sphere give
  about 1 (the per-dimension std is ``1/sqrt(D)``); a complete collapse (every image mapped to
  one point) gives 0 [Chen & He 2021, SimSiam, Sec. 4.1 and Fig. 2].
- :func:`effective_rank`: ``exp(H(p))`` with ``p = s / sum(s)`` the normalised singular values,
  between 1 and ``min(N, D)`` [Roy & Vetterli 2007; RankMe, Garrido et al. 2023]; it falls when
  the embeddings collapse onto a few dimensions (dimensional collapse).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["COLLAPSE_THRESHOLD", "effective_rank", "normalised_std"]

COLLAPSE_THRESHOLD = 0.1
"""``normalised_std`` below this flags a complete collapse. The std does not see dimensional
collapse (embeddings on a random low-dimensional subspace still give about 1); the effective
rank does."""


def normalised_std(z: Tensor) -> Tensor:
    """``sqrt(D) * mean_d std_n(z_n / ||z_n||)[d]`` of embeddings ``z`` ``[N, D]``, a scalar.

    About 1 for isotropic embeddings, 0 for identical ones. Computed in float32, detached.

    Examples:
        >>> round(float(normalised_std(torch.randn(4096, 64))), 1)
        1.0
        >>> float(normalised_std(torch.ones(8, 64)))
        0.0
    """
    unit = F.normalize(z.detach().float(), dim=1)
    return unit.std(dim=0).mean() * math.sqrt(z.shape[1])


def effective_rank(z: Tensor, eps: float = 1e-12) -> Tensor:
    """Roy & Vetterli's effective rank ``exp(-sum_i p_i log p_i)``, ``p = s / ||s||_1``, a scalar.

    ``s`` are the singular values of ``z`` ``[N, D]`` (not centred, as in RankMe): identical rows
    give 1, a rank-``k`` matrix at most ``k``, an isotropic Gaussian close to ``min(N, D)``.

    Examples:
        >>> round(float(effective_rank(torch.ones(8, 64))), 4)
        1.0
        >>> round(float(effective_rank(torch.eye(64))))
        64
    """
    singular = torch.linalg.svdvals(z.detach().float())
    p = singular / (singular.sum() + eps)
    entropy = -(p * torch.log(p + eps)).sum()
    return torch.exp(entropy)
