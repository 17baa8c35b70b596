"""The momentum encoder's moving average and the DINO schedules against values written by hand:
``theta_m <- tau * theta_m + (1 - tau) * theta`` [Grill et al. 2020, Sec. 3.1], the official
``cosine_scheduler`` and ``np.linspace`` teacher temperatures (facebookresearch/dino)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssl4gie.methods.dino import cosine_weight_decay, teacher_temperature
from ssl4gie.methods.momentum import MomentumEncoder
from ssl4gie.methods.schedules import cosine_momentum, warmup_cosine


def _filled(module: nn.Module, value: float) -> nn.Module:
    with torch.no_grad():
        for param in module.parameters():
            param.fill_(value)
    return module


def test_update_moves_the_copy_a_tenth_of_the_way_at_momentum_0_9():
    online = [_filled(nn.Linear(3, 2), 1.0), _filled(nn.Linear(2, 2), 2.0)]
    ema = MomentumEncoder(online, base_momentum=0.9)
    _filled(online[0], 11.0), _filled(online[1], -8.0)
    ema.update(0.9)
    first, second = ema.encoder
    # 0.9 * p_m + 0.1 * p by hand: 0.9 * 1 + 0.1 * 11 = 2.0 and 0.9 * 2 + 0.1 * (-8) = 1.0
    assert torch.allclose(first.weight, torch.full((2, 3), 2.0))
    assert torch.allclose(first.bias, torch.full((2,), 2.0))
    assert torch.allclose(second.weight, torch.full((2, 2), 1.0))


def test_update_with_distinct_values_per_parameter():
    online = [nn.Linear(4, 3)]
    ema = MomentumEncoder(online, base_momentum=0.99)
    before = [p.detach().clone() for p in ema.encoder.parameters()]
    with torch.no_grad():
        for param in online[0].parameters():
            param.add_(torch.randn_like(param))
    ema.update(0.75)
    for old, new, target in zip(
        before, ema.encoder.parameters(), online[0].parameters(), strict=True
    ):
        assert torch.allclose(new, 0.75 * old + 0.25 * target)


def test_the_copy_is_frozen_and_momentum_1_keeps_it():
    online = [_filled(nn.Linear(2, 2), 3.0)]
    ema = MomentumEncoder(online, base_momentum=0.5)
    assert not any(p.requires_grad for p in ema.encoder.parameters())
    _filled(online[0], 5.0)
    ema.update(1.0)
    assert torch.equal(ema.encoder[0].weight, torch.full((2, 2), 3.0))
    ema.update(0.0)
    assert torch.equal(ema.encoder[0].weight, torch.full((2, 2), 5.0))


def test_the_copy_has_no_dropout_or_drop_path():
    from timm.layers import DropPath

    online = [nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), DropPath(0.3))]
    copy = MomentumEncoder(online, base_momentum=0.9).encoder
    assert copy[0][1].p == 0.0 and copy[0][2].drop_prob == 0.0
    assert online[0][1].p == 0.5 and online[0][2].drop_prob == 0.3


def test_forward_and_update_build_no_graph():
    online = [nn.Linear(3, 2)]
    ema = MomentumEncoder(online, base_momentum=0.9)
    x = torch.randn(4, 3, requires_grad=True)
    assert not ema(x).requires_grad  # the keys / targets carry no gradient
    ema.update(0.9)  # online parameters require grad: the update must not record it
    assert all(not p.requires_grad and p.grad_fn is None for p in ema.encoder.parameters())


@pytest.mark.parametrize("momentum", [0.0, 0.996, 1.0])
def test_base_momentum_in_0_1_is_kept(momentum):
    assert MomentumEncoder([nn.Linear(2, 2)], momentum).base_momentum == momentum


@pytest.mark.parametrize("momentum", [-0.1, 1.5])
def test_base_momentum_outside_0_1_is_refused(momentum):
    from ssl4gie.errors import InputError

    message = rf"^base_momentum must be in \[0, 1\], got {momentum}$"
    with pytest.raises(InputError, match=message):
        MomentumEncoder([nn.Linear(2, 2)], momentum)


@pytest.mark.parametrize("progress", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_cosine_momentum_by_hand(progress):
    expected = 1 - (1 - 0.996) * (math.cos(math.pi * progress) + 1) / 2  # BYOL Sec. 3.2
    assert cosine_momentum(progress, 0.996) == pytest.approx(expected, abs=1e-15)


def test_cosine_momentum_clamps_progress():
    assert cosine_momentum(-1.0, 0.9) == pytest.approx(0.9)
    assert cosine_momentum(2.0, 0.9) == pytest.approx(1.0)
    assert cosine_momentum(0.5, 0.9) == pytest.approx(0.95)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0.0, 0.0),
        (2.5, 0.25),  # warm-up: 2.5 / 10
        (10.0, 1.0),
        (55.0, 0.5),  # half way through the cosine: (1 + cos(pi / 2)) / 2
        (100.0, 0.0),
        (250.0, 0.0),  # past the end: stays at the minimum
    ],
)
def test_warmup_cosine_by_hand(epoch, expected):
    assert warmup_cosine(epoch, 10, 100) == pytest.approx(expected, abs=1e-12)


def test_warmup_cosine_with_a_floor_and_an_overlong_warmup():
    progress = (32.5 - 10) / 90  # moco-v3 adjust_learning_rate at epoch 32.5 of 100, warm-up 10
    expected = 0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * progress))
    assert warmup_cosine(32.5, 10, 100, min_ratio=0.001) == pytest.approx(expected, abs=1e-12)
    assert warmup_cosine(3.0, 4, 4) == pytest.approx(0.75)
    assert warmup_cosine(5.0, 4, 4) == 1.0


def test_teacher_temperature_is_the_official_linspace():
    # main_dino.py: np.concatenate((np.linspace(warmup_temp, temp, warmup_epochs), ...))
    for warmup in (2, 3, 30):  # two warm-up epochs: linspace gives both ends, nothing between
        official = np.concatenate((np.linspace(0.04, 0.07, warmup), np.ones(100 - warmup) * 0.07))
        ours = [teacher_temperature(epoch, 0.04, 0.07, warmup) for epoch in range(100)]
        assert np.allclose(ours, official, atol=1e-12)
    assert teacher_temperature(0, 0.02, 0.04, 1) == 0.02  # one warm-up epoch: linspace(a, b, 1)
    assert teacher_temperature(5, 0.02, 0.04, 0) == 0.04


def test_cosine_weight_decay_is_the_official_cosine_scheduler():
    # dino utils.cosine_scheduler(0.04, 0.4, ...): final + 0.5 (base - final) (1 + cos(pi i / n))
    for step, total in [(0, 8), (3, 8), (7, 8), (8, 8)]:
        expected = 0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * step / total))
        assert cosine_weight_decay(step / total, 0.04, 0.4) == pytest.approx(expected, abs=1e-12)
