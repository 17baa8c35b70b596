"""MoCo v3 InfoNCE loss over in-batch keys from all processes [Chen, Xie, He 2021]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl4gie.distributed import gather_no_grad, rank
from ssl4gie.losses._checks import check_pair, check_positive
from ssl4gie.nn import fp32_linear, to_fp32

__all__ = ["info_nce_loss"]


def info_nce_loss(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo v3 contrastive loss of queries against the keys of the whole (global) batch.

    "L_q = -log exp(q·k+/tau) / (exp(q·k+/tau) + sum_{k-} exp(q·k-/tau)) [...] we use the keys
    that naturally co-exist in the same batch" [Chen, Xie, He 2021, Eq. 1]. As in the official
    ``contrastive_loss``, ``q`` and ``k`` are l2-normalised, ``k`` is gathered from all processes
    *without* gradient (``k`` gets no gradient, even on one process: it comes from the momentum
    encoder), the positive of query ``n`` on rank ``r`` is key ``r*N + n``, and the cross-entropy
    is multiplied by ``2 * temperature``. The method sums ``loss(q1, k2) + loss(q2, k1)``.

    Einsum letters: ``n`` local query, ``m`` global key, ``d`` feature:
    ``logits[n, m] = einsum("nd,md->nm", q, k_all) / temperature``, ``[N, W*N]``.

    Under DDP the value is the mean over this process's queries; its mean over processes is the
    joint-batch loss, which is what DDP's gradient averaging optimises. Normalisation and logits
    are computed in float32, also under bf16 autocast (:func:`ssl4gie.nn.fp32_linear`).

    Args:
        q: Queries (predictor outputs of one view), ``[N, D]`` on this process.
        k: Keys (momentum-encoder outputs of the other view), ``[N, D]``; row ``n`` is the same
            image as in ``q``.
        temperature: Softmax temperature. 0.2 is the paper's and the official ViT recipes' value;
            the official ResNet-50 recipes keep the script's default 1.0.

    Returns:
        The scalar loss. Every process must hold the same ``N``; ``N >= 2`` per process.

    Examples:
        >>> q1, q2, k1, k2 = torch.randn(4, 8, 16).unbind(0)
        >>> loss = info_nce_loss(q1, k2) + info_nce_loss(q2, k1)
        >>> loss.shape
        torch.Size([])
    """
    check_pair("info_nce_loss", ("q", "k"), q, k)
    check_positive("info_nce_loss", "temperature", temperature)
    q = F.normalize(to_fp32(q), dim=1)
    k_all = gather_no_grad(F.normalize(to_fp32(k), dim=1))  # [W*N, D]
    logits = fp32_linear(q, k_all) / temperature  # [N, W*N], float32
    labels = torch.arange(q.shape[0], device=q.device) + q.shape[0] * rank()
    return F.cross_entropy(logits, labels) * (2 * temperature)
