"""SimCLR NT-Xent loss over the 2N views of the global batch [Chen et al. 2020]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl4gie.distributed import gather, rank, world_size
from ssl4gie.losses._checks import check_pair, check_positive
from ssl4gie.nn import fp32_linear, to_fp32

__all__ = ["nt_xent_loss"]


def _own_and_positive_rows(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each local anchor ``[2N]``: its own row and its positive's row among the candidates.

    The candidates are ``gather(z1)`` then ``gather(z2)``; this rank's ``z1`` rows start at
    ``rank * N``, and its ``z2`` rows one global batch (``W*N`` rows) later.
    """
    global_batch = n * world_size()
    own_z1_rows = torch.arange(n, device=device) + n * rank()
    own_z2_rows = own_z1_rows + global_batch
    return torch.cat([own_z1_rows, own_z2_rows]), torch.cat([own_z2_rows, own_z1_rows])


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy over both views of the global batch.

    "l(i, j) = -log exp(sim(z_i, z_j)/tau) / sum_{k=1}^{2N} 1[k != i] exp(sim(z_i, z_k)/tau)
    [...] The final loss is computed across all positive pairs, both (i, j) and (j, i), in a
    mini-batch" [Chen et al. 2020, Eq. 1]. ``sim`` is the cosine similarity.

    The local ``2N`` views are the anchors; the candidates are the ``2*W*N`` views of all
    processes, gathered *with* gradient as the official code does across TPU cores. Anchor ``n``
    of ``z1`` on rank ``r`` has its positive at row ``r*N + n`` of the gathered ``z2`` (and the
    other way round); its own row is excluded. The value is the mean over the local ``2N``
    anchors, so its mean over processes is the joint-batch loss, which is what DDP's gradient
    averaging optimises. The official TF code adds the two views' means, i.e. twice this value.
    Normalisation and logits are computed in float32, also under bf16 autocast.

    Einsum letters: ``a`` local anchor, ``c`` global candidate, ``d`` feature:
    ``logits[a, c] = einsum("ad,cd->ac", anchors, candidates) / temperature``, ``[2N, 2*W*N]``.

    Args:
        z1: Projections of the first view, ``[N, D]`` on this process.
        z2: Projections of the second view, ``[N, D]``; row ``n`` is the same image as in ``z1``.
        temperature: Softmax temperature. 0.5 is the official CIFAR-10 recipe's value; the
            ImageNet recipes use 0.1.

    Returns:
        The scalar loss. Every process must hold the same ``N``; ``N >= 2`` per process.

    Examples:
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> nt_xent_loss(z1, z2).shape
        torch.Size([])
    """
    check_pair("nt_xent_loss", ("z1", "z2"), z1, z2)
    check_positive("nt_xent_loss", "temperature", temperature)
    z1, z2 = F.normalize(to_fp32(z1), dim=1), F.normalize(to_fp32(z2), dim=1)
    anchors = torch.cat([z1, z2])  # [2N, D]
    candidates = torch.cat([gather(z1), gather(z2)])  # [2*W*N, D]: all z1 rows, then all z2 rows
    logits = fp32_linear(anchors, candidates) / temperature  # [2N, 2*W*N], float32
    own_rows, positive_rows = _own_and_positive_rows(z1.shape[0], z1.device)
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(len(own_rows), device=z1.device), own_rows] = True
    return F.cross_entropy(logits.masked_fill(is_self, float("-inf")), positive_rows)
