"""Similarity and logit matrices stay float32 under bf16 autocast (the official runs use fp16 or
fp32): the loss under ``torch.autocast("cpu", dtype=torch.bfloat16)`` equals the float32 loss,
and the logits reaching the cross-entropy are float32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl4gie.losses import dino_loss, info_nce_loss, nt_xent_loss

N, DIM = 32, 64


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, N, DIM, generator=generator).unbind(0)


@pytest.mark.parametrize(
    "loss", [lambda a, b: info_nce_loss(a, b, 0.2), lambda a, b: nt_xent_loss(a, b, 0.1)]
)
def test_contrastive_logits_are_float32_under_bf16_autocast(loss, monkeypatch) -> None:
    a, b = _pair()
    expected = loss(a, b)
    seen: list[torch.dtype] = []
    cross_entropy = F.cross_entropy

    def spy(logits, *args, **kwargs):
        seen.append(logits.dtype)
        return cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(a, b)
    assert seen == [torch.float32]
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0.0)


def test_dino_loss_is_float32_for_bf16_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    student = [torch.randn(N, DIM, generator=generator).bfloat16() for _ in range(4)]
    teacher = [torch.randn(N, DIM, generator=generator).bfloat16() for _ in range(2)]
    center = torch.randn(DIM, generator=generator) * 0.1
    got = dino_loss(student, teacher, center, 0.1, 0.04)
    expected = dino_loss([s.float() for s in student], [t.float() for t in teacher], center)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0.0)
