"""The view recipes declare each parameter once, and LightningCLI (jsonargparse) still types
every one of them, the inherited ones included."""

from __future__ import annotations

import inspect

import pytest
from jsonargparse import ArgumentParser
from torch import nn

from ssl4gie.transforms import ColourRecipe, MaskedViewCrop, MultiCrop, TwoViews, ViewRecipe

RECIPES = (TwoViews, MultiCrop, MaskedViewCrop)


def own_parameters(cls: type) -> set[str]:
    """The named parameters of the ``__init__`` ``cls`` itself defines."""
    parameters = inspect.signature(cls.__dict__["__init__"]).parameters.values()
    return {p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self"}


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_parameter_is_declared_in_one_class(recipe):
    seen: dict[str, str] = {}
    for cls in recipe.__mro__[: recipe.__mro__.index(nn.Module)]:
        for name in own_parameters(cls):
            assert name not in seen, f"{name} declared in {seen[name]} and {cls.__name__}"
            seen[name] = cls.__name__
    assert set(inspect.signature(recipe).parameters) - {"kwargs"} < set(seen)


def test_the_shared_parameters_live_in_the_bases():
    assert {"crop_ratio", "flip_p", "interpolation", "fov"} <= own_parameters(ViewRecipe)
    assert {"jitter", "jitter_p", "grayscale_p", "blur_sigma"} == own_parameters(ColourRecipe)


def parse(recipe: str, init_args: dict):
    """``views`` as a LightningCLI config sets it: the methods type it ``nn.Module``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--views", type=nn.Module)
    config = {"class_path": f"ssl4gie.transforms.{recipe}", "init_args": init_args}
    return parser, parser.parse_args(["--views", str(config).replace("'", '"')])


def test_a_config_sets_inherited_parameters_with_their_types():
    parser, namespace = parse(
        "MultiCrop", {"num_local": 2, "jitter": [0.8, 0.8, 0.8, 0.2], "flip_p": 0.0, "fov": True}
    )
    init_args = namespace.views.init_args
    assert init_args.jitter == (0.8, 0.8, 0.8, 0.2)  # a list in the config, a tuple typed
    assert init_args.interpolation == "bicubic" and init_args.crop_ratio == (3 / 4, 4 / 3)
    recipe = parser.instantiate(namespace).views
    first, local = recipe.groups[0][0], recipe.groups[-1][0]
    assert (first.jitter, first.flip_p, local.jitter, local.flip_p, recipe.fov) == (
        (0.8, 0.8, 0.8, 0.2), 0.0, (0.8, 0.8, 0.8, 0.2), 0.0, True,
    )  # fmt: skip
    assert [(params.size, copies) for params, copies in recipe.groups] == [(224, 1)] * 2 + [(96, 2)]


@pytest.mark.parametrize(
    ("recipe", "init_args"),
    [
        ("TwoViews", {"jitter": "strong"}),  # wrong type
        ("TwoViews", {"interpolation": "nearest"}),  # not a Literal choice
        ("TwoViews", {"jiter": [0.1, 0.1, 0.1, 0.1]}),  # typo
        ("MaskedViewCrop", {"jitter": [0.1, 0.1, 0.1, 0.1]}),  # MAE has no colour parameters
    ],
)
def test_a_config_with_a_wrong_view_parameter_is_refused(recipe, init_args):
    with pytest.raises(Exception, match="views"):
        parse(recipe, init_args)
