"""``load_transforms`` gives the card's exact preprocessing (checked against timm's own eval
transform and against the normalisation written by hand), and ``features_only`` models carry
the source weights unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import timm.data
import torch
from PIL import Image

import ssl4gie
from ssl4gie.zoo.cards import WeightsCard
from ssl4gie.zoo.load import input_config

from .conftest import features

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


@pytest.fixture
def card() -> WeightsCard:
    card = WeightsCard(
        name="resnet18-test-values", architecture="resnet18", method="simclr", data="colon",
        license="mit", hub_id="lab/r18", available=True, input_size=(3, 64, 64), mean=MEAN,
        std=STD, interpolation="bilinear", crop_pct=0.8,
    )  # fmt: skip
    ssl4gie.register_backbone(card)
    return card


def _ramp(height: int, width: int) -> torch.Tensor:
    """uint8 ``[3, H, W]``: a horizontal ramp in red, a vertical one in green, blue constant."""
    x = torch.linspace(0, 255, width).round().to(torch.uint8).expand(height, width)
    y = torch.linspace(0, 255, height).round().to(torch.uint8)[:, None].expand(height, width)
    return torch.stack([x, y, torch.full((height, width), 77, dtype=torch.uint8)])


def test_input_config_is_the_cards(card):
    config = input_config(card.name)
    assert tuple(config["input_size"]) == (3, 64, 64)
    assert tuple(config["mean"]) == MEAN and tuple(config["std"]) == STD
    assert config["interpolation"] == "bilinear" and config["crop_pct"] == 0.8


def test_a_constant_image_is_normalised_with_the_cards_mean_and_std(card):
    image = torch.full((3, 90, 70), 128, dtype=torch.uint8)
    out = ssl4gie.load_transforms(card.name)(image)
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    for channel in range(3):
        expected = (128 / 255 - MEAN[channel]) / STD[channel]  # v2.Normalize by hand
        assert torch.allclose(out[channel], torch.tensor(expected), atol=1e-5)


@pytest.mark.parametrize("shape", [(100, 120), (150, 90)])
def test_load_transforms_equals_timms_eval_transform(card, shape):
    image = _ramp(*shape)
    ours = ssl4gie.load_transforms(card.name)(image)
    reference = timm.data.create_transform(
        input_size=(3, 64, 64), interpolation="bilinear", mean=MEAN, std=STD, crop_pct=0.8
    )  # timm eval: Resize(floor(64 / 0.8) = 80, short side), CenterCrop(64), Normalize
    expected = reference(Image.fromarray(image.permute(1, 2, 0).numpy()))
    assert ours.shape == expected.shape == (3, 64, 64)
    # equal up to float rounding (measured 4e-7); crop_pct 0.875 differs by 0.2, bicubic by 0.02
    assert (ours - expected).abs().max() < 1e-3


def test_the_centre_crop_keeps_the_middle_of_the_resized_image(card):
    # 80 x 80 is already the resize target (64 / 0.8): the crop keeps rows and columns 8..71
    image = _ramp(80, 80)
    out = ssl4gie.load_transforms(card.name)(image)
    red = out[0] * STD[0] + MEAN[0]  # back to [0, 1]
    expected = image[0, 8:72, 8:72].float() / 255
    assert torch.allclose(red, expected, atol=1e-5)


def test_a_loaded_model_gives_the_same_transform(resnet18_export, card):
    model = ssl4gie.load_backbone(card.name, pretrained=False)
    assert tuple(model.pretrained_cfg["mean"]) == MEAN
    image = _ramp(100, 120)
    assert torch.equal(
        ssl4gie.load_transforms(model)(image), ssl4gie.load_transforms(card.name)(image)
    )


def test_features_only_keeps_every_source_weight(resnet18_export):
    folder, model = resnet18_export
    torch.manual_seed(123)  # the suite seeds 0 per test: a random init could equal the source's
    maps = ssl4gie.load_backbone(folder, features_only=True)
    source = model.state_dict()
    state = maps.state_dict()
    assert len(state) == len([k for k in source if not k.startswith("fc.")])
    for key, value in state.items():
        assert torch.equal(value, source[key]), key
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last = maps(x)[-1]
        assert torch.equal(last, model.forward_features(x))
    assert np.array_equal(features(ssl4gie.load_backbone(folder)).numpy(), features(model).numpy())
