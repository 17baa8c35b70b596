"""DINO self-distillation loss and teacher centring [Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers", arXiv:2104.14294; facebookresearch/dino ``main_dino.py``
``DINOLoss``]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssl4gie.distributed import all_reduce_mean_no_grad
from ssl4gie.errors import InputError
from ssl4gie.losses._checks import check_positive
from ssl4gie.nn import to_fp32

__all__ = ["dino_center", "dino_loss"]


def _check_crops(student_out: Sequence[torch.Tensor], teacher_out: Sequence[torch.Tensor]) -> None:
    if len(teacher_out) < 1 or len(student_out) < 2:
        raise InputError(
            f"dino_loss: needs >= 1 teacher crop and >= 2 student crops, got {len(teacher_out)} "
            f"and {len(student_out)}; pass one [N, K] logit tensor per crop"
        )
    shape = teacher_out[0].shape
    if any(t.shape != shape or t.ndim != 2 for t in [*student_out, *teacher_out]):
        shapes = [tuple(t.shape) for t in [*student_out, *teacher_out]]
        raise InputError(
            f"dino_loss: every crop's logits must be [N, K] of one shape, got {shapes}"
        )


def dino_loss(
    student_out: Sequence[torch.Tensor],
    teacher_out: Sequence[torch.Tensor],
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """Cross-entropy between the centred, sharpened teacher and the student, over crop pairs.

    "we minimize sum_{x in {x1g, x2g}} sum_{x' in V, x' != x} H(P_t(x), P_s(x')) [...]
    P_t = softmax((g_t(x) - c) / tau_t)" [Caron et al. 2021, Eq. 3-4]. The teacher sees only the
    global crops: teacher crop ``t`` is the same view as student crop ``t``, and that pair is
    skipped. Each pair's ``-sum_k P_t log P_s`` is averaged over the ``N`` samples, then the
    pairs are averaged, as in the official ``DINOLoss.forward``. Gradient flows to the student
    only (the teacher term is detached). The value is this process's mean, so its mean over
    processes is the joint-batch loss; the centre is updated separately by :func:`dino_center`.
    It is computed in float32 whatever the logits' dtype (the method's last layer already gives
    float32 logits, :func:`ssl4gie.nn.fp32_linear`).

    Args:
        student_out: Student logits per crop, ``[N, K]`` each: the global crops first, in the
            teacher's order, then the local crops.
        teacher_out: Teacher logits of the global crops, ``[N, K]`` each.
        center: The running centre ``[K]`` (or ``[1, K]``) subtracted from the teacher logits.
        student_temp: Student softmax temperature (0.1).
        teacher_temp: Teacher softmax temperature (0.04; warmed up by the method).

    Returns:
        The scalar loss.

    Examples:
        >>> s, t = [torch.randn(4, 8) for _ in range(4)], [torch.randn(4, 8) for _ in range(2)]
        >>> dino_loss(s, t, torch.zeros(8)).shape
        torch.Size([])
    """
    _check_crops(student_out, teacher_out)
    check_positive("dino_loss", "student_temp", student_temp)
    check_positive("dino_loss", "teacher_temp", teacher_temp)
    log_p_student = [F.log_softmax(to_fp32(s) / student_temp, dim=-1) for s in student_out]
    total, pairs = log_p_student[0].new_zeros(()), 0
    for t_index, teacher in enumerate(teacher_out):
        centred = to_fp32(teacher.detach()) - to_fp32(center)
        p_teacher = F.softmax(centred / teacher_temp, dim=-1)  # [N, K]
        for s_index, log_p in enumerate(log_p_student):
            if s_index != t_index:
                total = total - (p_teacher * log_p).sum(dim=-1).mean()
                pairs += 1
    return total / pairs


@torch.no_grad()
def dino_center(
    teacher_out: Sequence[torch.Tensor], center: torch.Tensor, momentum: float = 0.9
) -> torch.Tensor:
    """The new centre: ``c <- m * c + (1 - m) * mean of the teacher logits over the global batch``.

    "The center c is updated with an exponential moving average [...] c <- m c + (1 - m)
    1/B sum_i g_theta_t(x_i)" [Caron et al. 2021, Eq. 4]; the mean runs over every global crop of
    every process (the official ``update_center`` all-reduces the batch sum; lightly's test
    reference dropped that all-reduce). Every process must hold the same number of samples.

    Args:
        teacher_out: Teacher logits of the global crops, ``[N, K]`` each.
        center: The current centre, ``[K]`` or ``[1, K]``.
        momentum: ``m`` (0.9, the official ``center_momentum``).

    Returns:
        The updated centre, shaped like ``center``, without gradient.
    """
    if not 0.0 <= momentum <= 1.0:
        raise InputError(f"dino_center: momentum must be in [0, 1], got {momentum}")
    batch_mean = torch.cat(list(teacher_out)).mean(dim=0)  # [K], this process
    global_mean = all_reduce_mean_no_grad(batch_mean).view_as(center)
    return center * momentum + global_mean.to(center.dtype) * (1.0 - momentum)
