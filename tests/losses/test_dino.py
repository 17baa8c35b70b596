import math

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import dino_center, dino_loss


def _reference_loss(student, teacher, center, student_temp, teacher_temp):
    """Caron et al. 2021, Eq. 3-4, with loops: sum over samples, classes, pairs of crops."""
    total, pairs = 0.0, 0
    for t_index, t in enumerate(teacher):
        for s_index, s in enumerate(student):
            if s_index == t_index:
                continue
            for i in range(t.shape[0]):
                p_t = torch.exp((t[i] - center) / teacher_temp)
                p_t = p_t / p_t.sum()
                log_z = torch.logsumexp(s[i] / student_temp, dim=0)
                total = (
                    total
                    - sum(p_t[k] * (s[i, k] / student_temp - log_z) for k in range(len(p_t)))
                    / t.shape[0]
                )
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("n, k, crops", [(1, 3, 2), (3, 5, 4), (4, 8, 6)])
@pytest.mark.parametrize("temps", [(0.1, 0.04), (0.2, 0.07)])
def test_matches_reference(n, k, crops, temps) -> None:
    generator = torch.Generator().manual_seed(n * k + crops)
    student = list(torch.randn(crops, n, k, generator=generator, dtype=torch.float64))
    teacher = list(torch.randn(2, n, k, generator=generator, dtype=torch.float64))
    center = torch.randn(k, generator=generator, dtype=torch.float64)
    student = [s.requires_grad_() for s in student]
    got = dino_loss(student, teacher, center, *temps)
    expected = _reference_loss(student, teacher, center, *temps)
    torch.testing.assert_close(got, expected)
    grads = torch.autograd.grad(got, student)
    torch.testing.assert_close(grads, torch.autograd.grad(expected, student))


def test_hand_computed_case() -> None:
    # Uniform student (log 1/2 everywhere): each pair's cross-entropy is log 2.
    student = [torch.zeros(1, 2)] * 3
    teacher = [torch.tensor([[5.0, -5.0]])] * 2
    assert dino_loss(student, teacher, torch.zeros(2)).item() == pytest.approx(math.log(2))


def test_teacher_gets_no_gradient_and_centre_shift_cancels() -> None:
    student = [torch.randn(4, 6) for _ in range(3)]
    teacher = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    loss = dino_loss(student, teacher, torch.zeros(6))
    assert not loss.requires_grad
    # A centre constant over classes does not change the softmax.
    torch.testing.assert_close(dino_loss(student, teacher, torch.full((6,), 3.0)), loss)


def test_centre_is_ema_of_the_batch_mean() -> None:
    teacher = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[5.0, 6.0], [7.0, 8.0]])]
    center = torch.tensor([[10.0, 20.0]])
    # batch mean over both crops: (4, 5); 0.9 * c + 0.1 * mean
    torch.testing.assert_close(dino_center(teacher, center), torch.tensor([[9.4, 18.5]]))


@pytest.mark.parametrize(
    "student, teacher, message",
    [
        ([torch.randn(2, 4)], [torch.randn(2, 4)], ">= 2 student crops"),
        ([torch.randn(2, 4)] * 3, [torch.randn(2, 5)], "one shape"),
    ],
)
def test_bad_input_raises_one_line(student, teacher, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        dino_loss(student, teacher, torch.zeros(4))
    assert "\n" not in str(info.value)
