import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.transforms import IMAGENET_MEAN, IMAGENET_STD, MaskedViewCrop, MultiCrop, TwoViews

PRESETS = [
    (TwoViews, "byol"),
    (TwoViews, "barlow_twins"),
    (TwoViews, "mocov3"),
    (TwoViews, "simclr"),
    (MultiCrop, "dino"),
    (MultiCrop, "swav"),
    (MaskedViewCrop, "mae"),
    (MaskedViewCrop, "simmim"),
]
NO_COLOUR = {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": (0.0, 0.0), "solarize_p": (0.0, 0.0)}


def small(recipe_cls, name, **overrides):
    sizes = {"global_size": 32, "local_size": 16} if recipe_cls is MultiCrop else {"size": 32}
    return recipe_cls.preset(name, **sizes, **overrides)


def denormalise(view):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return view * std + mean


def coordinate_ramp(batch, side):
    """Channel 0 is x / (side - 1), channel 1 is y / (side - 1), channel 2 is 0.5."""
    ramp = torch.linspace(0, 1, side)
    image = torch.stack([ramp.expand(side, side), ramp[:, None].expand(side, side)])
    image = torch.cat([image, torch.full((1, side, side), 0.5)])
    return image.expand(batch, 3, side, side).contiguous()


@pytest.mark.parametrize(("recipe_cls", "name"), PRESETS)
def test_presets_give_float_views_of_the_promised_sizes(recipe_cls, name):
    images = (torch.rand(4, 3, 40, 48) * 255).to(torch.uint8)
    views = small(recipe_cls, name)(images)
    expected = {TwoViews: [32, 32], MaskedViewCrop: [32]}.get(recipe_cls)
    if recipe_cls is MultiCrop:
        expected = [32, 32] + [16] * (8 if name == "dino" else 6)
    assert [v.shape[-1] for v in views] == expected
    assert all(v.shape[:3] == (4, 3, v.shape[-1]) and v.dtype == torch.float32 for v in views)
    assert all(torch.isfinite(v).all() for v in views)


def test_uint8_and_unit_float_inputs_give_the_same_views():
    images = (torch.rand(4, 3, 32, 32) * 255).to(torch.uint8)
    recipe = TwoViews.byol(size=16)
    as_uint8 = recipe(images, generator=torch.Generator().manual_seed(3))
    as_float = recipe(images.float() / 255, generator=torch.Generator().manual_seed(3))
    for a, b in zip(as_uint8, as_float, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("mean", "std"), [(IMAGENET_MEAN, IMAGENET_STD), ((0.5,) * 3, (0.25,) * 3)]
)
def test_constant_image_is_normalised_with_mean_and_std(mean, std):
    images = torch.full((4, 3, 24, 24), 0.3)
    views = TwoViews(size=16, mean=mean, std=std, **NO_COLOUR)(images)
    expected = (0.3 - torch.tensor(mean)) / torch.tensor(std)
    for view in views:
        torch.testing.assert_close(view.mean(dim=(0, 2, 3)), expected, atol=1e-4, rtol=0)


def test_crop_area_and_aspect_stay_in_their_ranges():
    side = 64
    recipe = MaskedViewCrop(size=32, crop_scale=(0.3, 0.5), flip_p=0.0, interpolation="bilinear")
    view = denormalise(recipe(coordinate_ramp(128, side))[0])
    pixel = 1 / (side - 1)
    width = view[:, 0].amax(dim=(1, 2)) - view[:, 0].amin(dim=(1, 2)) + pixel
    height = view[:, 1].amax(dim=(1, 2)) - view[:, 1].amin(dim=(1, 2)) + pixel
    area, aspect = width * height, width / height
    assert area.min() > 0.3 - 0.05 and area.max() < 0.5 + 0.05
    assert aspect.min() > 3 / 4 - 0.1 and aspect.max() < 4 / 3 + 0.1
    assert area.max() - area.min() > 0.1  # the scale is really random


def test_flip_rate_is_near_one_half():
    view = denormalise(MaskedViewCrop(size=16)(coordinate_ramp(400, 32))[0])
    flipped = view[:, 0, :, 0].mean(dim=1) > view[:, 0, :, -1].mean(dim=1)
    assert 0.42 < flipped.float().mean() < 0.58


def test_grayscale_rate_matches_its_probability():
    images = torch.tensor([0.9, 0.4, 0.1]).view(1, 3, 1, 1).expand(400, 3, 16, 16)
    recipe = TwoViews(size=8, **{**NO_COLOUR, "grayscale_p": 0.2})
    for view in recipe(images):
        rgb = denormalise(view)
        gray = (rgb.amax(dim=1) - rgb.amin(dim=1)).amax(dim=(1, 2)) < 1e-4
        assert 0.14 < gray.float().mean() < 0.26


def blur_and_solarize_rates(recipe, batch=400):
    """Fraction of images blurred (checkerboard loses contrast) and solarised (0.8 -> 0.2)."""
    board = (torch.arange(16)[:, None] + torch.arange(16)) % 2 * 0.1 + 0.8
    rgb = [denormalise(v) for v in recipe(board.expand(batch, 3, 16, 16))]
    blurred = [(v.amax(dim=(1, 2, 3)) - v.amin(dim=(1, 2, 3))) < 0.09 for v in rgb]
    solarised = [v.mean(dim=(1, 2, 3)) < 0.5 for v in rgb]
    return [b.float().mean() for b in blurred], [s.float().mean() for s in solarised]


def test_byol_blur_and_solarise_probabilities_differ_per_view():
    recipe = TwoViews.byol(
        size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
        grayscale_p=0.0, blur_sigma=(1.0, 2.0),
    )  # fmt: skip
    blurred, solarised = blur_and_solarize_rates(recipe)
    assert blurred[0] == 1.0 and 0.05 < blurred[1] < 0.16
    assert solarised[0] == 0.0 and 0.14 < solarised[1] < 0.27


def test_dino_solarises_only_the_second_global_crop_and_blurs_locals_half_the_time():
    recipe = MultiCrop.dino(
        global_size=16, local_size=16, num_local=2, global_scale=(1.0, 1.0),
        local_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
        grayscale_p=0.0, blur_sigma=(1.0, 2.0),
    )  # fmt: skip
    blurred, solarised = blur_and_solarize_rates(recipe)
    assert blurred[0] == 1.0 and 0.05 < blurred[1] < 0.16
    assert all(0.42 < rate < 0.58 for rate in blurred[2:])
    assert solarised[0] == 0.0 and 0.14 < solarised[1] < 0.27 and max(solarised[2:]) == 0.0


def test_the_two_views_differ():
    first, second = TwoViews.mocov3(size=16)(torch.rand(8, 3, 32, 32))
    assert (first - second).abs().mean(dim=(1, 2, 3)).min() > 1e-3


def test_same_seed_gives_same_views_and_another_seed_other_views():
    images = torch.rand(4, 3, 32, 32)
    recipe = MultiCrop.dino(global_size=16, local_size=8, num_local=2)

    def views(seed):
        return torch.cat(
            [v.flatten() for v in recipe(images, generator=torch.Generator().manual_seed(seed))]
        )

    torch.testing.assert_close(views(1), views(1))
    assert not torch.allclose(views(1), views(2))
    torch.manual_seed(5)
    global_rng = recipe(images)
    torch.manual_seed(5)
    torch.testing.assert_close(recipe(images), global_rng)


def test_fov_views_crop_inside_the_field_of_view_and_blank_the_border():
    side, radius = 64, 20
    yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    inside = (xx - 36) ** 2 + (yy - 30) ** 2 <= radius**2
    images = coordinate_ramp(32, side) * 0.8 + 0.1
    images = images * inside
    views = TwoViews(size=16, fov=True, crop_scale=(0.5, 1.0), **NO_COLOUR)(images)
    for view in views:
        blank = (view == 0).all(dim=1)
        rgb = denormalise(view)
        interior = (rgb[:, 2] - 0.5).abs() < 0.01  # pixels not mixed with the black border
        coords = rgb[:, :2].permute(1, 0, 2, 3)[:, interior]
        x = ((coords[0] - 0.1) / 0.8) * (side - 1) + 0.5
        y = ((coords[1] - 0.1) / 0.8) * (side - 1) + 0.5
        assert x.min() > 36 - radius - 1.5 and x.max() < 36 + radius + 1.5
        assert y.min() > 30 - radius - 1.5 and y.max() < 30 + radius + 1.5
        assert blank.any()  # the corners of the FOV box are outside the circle


def test_local_crops_larger_than_global_crops_are_refused():
    with pytest.raises(InputError, match="local_size"):
        MultiCrop(global_size=32, local_size=64)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flip_p": 1.5},
        {"crop_scale": (0.5, 0.2)},
        {"crop_scale": (0.0, 1.0)},
        {"blur_p": (2.0, 0.1)},
        {"interpolation": "bicubik"},
        {"size": 0},
        {"std": (0.0, 1.0, 1.0)},
    ],
)
def test_bad_arguments_raise_input_error(kwargs):
    with pytest.raises(InputError):
        TwoViews(**kwargs)


def test_unknown_preset_and_bad_images_raise_input_error():
    with pytest.raises(InputError, match="did you mean 'byol'"):
        TwoViews.preset("bylo")
    with pytest.raises(InputError, match=r"\[B, 3, H, W\]"):
        TwoViews(size=8)(torch.rand(3, 16, 16))
