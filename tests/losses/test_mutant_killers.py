"""Checks that kill the mutants ``nox -s mutants`` found surviving in ``ssl4gie/losses``: the
error lines name the function and the argument, the defaults are the official values, and Barlow
Twins' global batch is checked on a faked two-process run."""

from __future__ import annotations

import inspect

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import (
    barlow_twins,
    barlow_twins_loss,
    byol_loss,
    dino_center,
    dino_loss,
    info_nce,
    info_nce_loss,
    mae_loss,
    nt_xent,
    nt_xent_loss,
    simmim_loss,
    sinkhorn,
    soft_dice_loss,
    swav_loss,
)
from ssl4gie.losses.depth import (
    gradient_matching_loss,
    scale_shift,
    ssi_depth_loss,
    ssi_mse_loss,
)
from ssl4gie.losses.dice import dice_loss
from ssl4gie.losses.mae import patchify, scene_patches, unpatchify

_Z, _Y, _S = torch.randn(4, 3), torch.randn(4, 2), torch.randn(2, 4)

# The whole line each bad call raises, written from the docstrings' contract by hand.
BAD_CALLS = {
    "barlow_twins_loss: z1 and z2 must have the same shape, got (4, 3) and (4, 2); pass one "
    "embedding per sample of the same batch": lambda: barlow_twins_loss(_Z, _Y),
    "barlow_twins_loss: lambd must be >= 0, got -1.0; pass a number >= 0": lambda: (
        barlow_twins_loss(_Z, _Z, lambd=-1.0)
    ),
    "byol_loss: p and z must have the same shape, got (4, 3) and (4, 2); pass one embedding per "
    "sample of the same batch": lambda: byol_loss(_Z, _Y),
    "info_nce_loss: q and k must be 2D [batch, dim], got shape (3,); flatten the features first": (
        lambda: info_nce_loss(_Z[0], _Z[1])
    ),
    "info_nce_loss: needs at least 2 samples per process, got 1; increase the batch size": (
        lambda: info_nce_loss(_Z[:1], _Z[:1])
    ),
    "info_nce_loss: temperature must be > 0, got 0.0; pass a number > 0": lambda: info_nce_loss(
        _Z, _Z, temperature=0.0
    ),
    "nt_xent_loss: z1 and z2 must have the same shape, got (4, 3) and (4, 2); pass one embedding "
    "per sample of the same batch": lambda: nt_xent_loss(_Z, _Y),
    "nt_xent_loss: temperature must be > 0, got -0.5; pass a number > 0": lambda: nt_xent_loss(
        _Z, _Z, temperature=-0.5
    ),
    "dino_loss: needs >= 1 teacher crop and >= 2 student crops, got 0 and 2; pass one [N, K] "
    "logit tensor per crop": lambda: dino_loss([_S, _S], [], torch.zeros(4)),
    "dino_loss: student_temp must be > 0, got 0.0; pass a number > 0": lambda: dino_loss(
        [_S, _S], [_S], torch.zeros(4), student_temp=0.0
    ),
    "dino_loss: teacher_temp must be > 0, got 0.0; pass a number > 0": lambda: dino_loss(
        [_S, _S], [_S], torch.zeros(4), teacher_temp=0.0
    ),
    "dino_loss: every crop's logits must be [N, K] of one shape, got [(2, 4), (2, 4), (4,)]": (
        lambda: dino_loss([_S, _S], [_S[0]], torch.zeros(4))
    ),
    "dino_center: momentum must be in [0, 1], got 1.5": lambda: dino_center(
        [_S], torch.zeros(1, 4), momentum=1.5
    ),
    "sinkhorn: scores must be [N, K], got shape (4,)": lambda: sinkhorn(_S[0]),
    "sinkhorn: epsilon must be > 0, got 0.0; pass a number > 0": lambda: sinkhorn(_S, epsilon=0.0),
    "sinkhorn: iterations must be > 0, got 0; pass a number > 0": lambda: sinkhorn(
        _S, iterations=0
    ),
    "swav_loss: temperature must be > 0, got 0.0; pass a number > 0": lambda: swav_loss(
        [_S, _S, _S], temperature=0.0
    ),
    "swav_loss: need 1 <= num_assign < 3 crops and one queue per assigning crop, got num_assign "
    "3; pass the global crops first": lambda: swav_loss([_S, _S, _S], num_assign=3),
    "patchify: image size 8x8 is not divisible by the patch size 5; resize the images to a "
    "multiple of the patch size": lambda: patchify(torch.zeros(1, 3, 8, 8), 5),
    "unpatchify: 4 patches of 48 values do not tile 8x12 with patch 4; pass the size the patches "
    "came from": lambda: unpatchify(torch.zeros(1, 4, 48), 4, 8, 12),
    "mae_loss: need pred and target [N, L, D] and mask [N, L], got (2, 4, 3), (2, 4, 3) and "
    "(2, 5)": lambda: mae_loss(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.ones(2, 5)),
    "simmim_loss: need pred and target [N, C, H, W] and mask [N, H, W], got (2, 3, 4, 4), "
    "(2, 3, 4, 4) and (2, 1, 4, 4)": lambda: simmim_loss(
        torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.ones(2, 1, 4, 4)
    ),
    "depth loss: prediction, target and mask must all be [B, H, W], got (1, 1, 2, 2), "
    "(1, 1, 2, 2) and (1, 1, 2, 2); squeeze the channel dimension first": lambda: scale_shift(
        torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2) > 0
    ),
    "ssi_depth_loss: need alpha >= 0 and scales >= 1, got 0.1, 0": lambda: ssi_depth_loss(
        torch.ones(1, 2, 2), torch.ones(1, 2, 2), torch.ones(1, 2, 2) > 0, scales=0
    ),
    "soft_dice_loss: probs and target must both be [B, K, H, W], got (1, 2, 2) and (1, 2, 2); "
    "one-hot encode the mask first": lambda: soft_dice_loss(
        torch.ones(1, 2, 2), torch.ones(1, 2, 2)
    ),
    "dice loss: logits must be [B, K, H, W] and mask [B, H, W], got (1, 2, 3, 3) and (1, 3, 2)": (
        lambda: dice_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 2))
    ),
}


@pytest.mark.parametrize("message", BAD_CALLS)
def test_error_line_names_the_function_and_argument(message: str) -> None:
    with pytest.raises(InputError) as info:
        BAD_CALLS[message]()
    assert str(info.value) == message


@pytest.mark.parametrize(
    "function, argument, official",
    [
        (barlow_twins_loss, "lambd", 0.0051),  # facebookresearch/barlowtwins main.py --lambd
        (barlow_twins_loss, "official_grad_scale", False),  # the joint-batch gradient by default
    ],
)
def test_defaults_are_the_official_values(function, argument: str, official) -> None:
    assert inspect.signature(function).parameters[argument].default == official


def test_barlow_twins_accepts_lambd_zero() -> None:
    z1, z2 = torch.randn(2, 6, 3, dtype=torch.float64)
    on_diag_only = barlow_twins_loss(z1, z2, lambd=0.0)
    assert on_diag_only < barlow_twins_loss(z1, z2, lambd=1.0)


def test_byol_accepts_a_batch_of_one() -> None:
    p, z = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert byol_loss(p, z) == pytest.approx(2.0)  # 2 - 2 cos(90 degrees)


def _fake_two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes holding the same batch: the sum over processes doubles (gradient too)."""
    monkeypatch.setattr(barlow_twins, "world_size", lambda: 2)
    monkeypatch.setattr(barlow_twins, "all_reduce_sum", lambda x: 2 * x)


@pytest.mark.parametrize("official_grad_scale", [False, True])
def test_barlow_twins_two_processes_equal_the_joint_batch(
    monkeypatch: pytest.MonkeyPatch, official_grad_scale: bool
) -> None:
    z1, z2 = torch.randn(2, 5, 4, dtype=torch.float64)
    joint1 = z1.clone().requires_grad_()
    joint = barlow_twins_loss(torch.cat([joint1, joint1]), torch.cat([z2, z2]))
    joint.backward()
    _fake_two_processes(monkeypatch)
    local1 = z1.clone().requires_grad_()
    loss = barlow_twins_loss(local1, z2, official_grad_scale=official_grad_scale)
    loss.backward()
    assert torch.allclose(loss, joint)
    # the joint-batch gradient, or (official) this process's share of it only: 1/W
    share = 0.5 if official_grad_scale else 1.0
    assert torch.allclose(local1.grad, share * joint1.grad)


def test_scale_shift_is_one_and_zero_where_the_fit_is_undetermined() -> None:
    # a constant prediction (here 0.5, exact in binary) has a zero determinant: no unique fit
    prediction, target = torch.full((2, 3, 3), 0.5), torch.rand(2, 3, 3) + 1
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[1] = False
    mask[1, 0, 0] = True  # a single valid pixel: undetermined too
    scale, shift = scale_shift(prediction, target, mask)
    assert scale.tolist() == [1.0, 1.0] and shift.tolist() == [0.0, 0.0]


def test_scale_shift_fits_a_prediction_of_small_spread() -> None:
    # variance 1/16 over 4 pixels: the fit is determined and exact, (s, t) = (4, 1)
    prediction = torch.tensor([[[0.0, 0.5], [0.0, 0.5]]])
    target = 4 * prediction + 1
    scale, shift = scale_shift(prediction, target, torch.ones(1, 2, 2, dtype=torch.bool))
    assert scale.item() == pytest.approx(4.0) and shift.item() == pytest.approx(1.0)


@pytest.mark.parametrize("variance, determined", [(0.75e-12, False), (1.5e-12, True)])
def test_scale_shift_is_determined_above_a_variance_of_1e_12(variance, determined) -> None:
    # 4 valid pixels at +-e: a01 = 0, so det = a00 a11 = M^2 e^2 against the tolerance 1e-12 M^2
    e = variance**0.5
    prediction = torch.tensor([[[e, -e], [e, -e]]], dtype=torch.float64)
    scale, shift = scale_shift(prediction, 3 * prediction + 2, torch.ones(1, 2, 2) > 0)
    expected = (3.0, 2.0) if determined else (1.0, 0.0)
    assert (scale.item(), shift.item()) == pytest.approx(expected)


def test_depth_shapes_must_all_agree() -> None:
    with pytest.raises(InputError, match=r"\[B, H, W\]"):
        scale_shift(torch.ones(1, 2, 2), torch.ones(1, 2, 3), torch.ones(1, 2, 3) > 0)


@pytest.mark.parametrize(
    "function, argument, official",
    [
        (gradient_matching_loss, "scales", 4),  # MiDaS: K = 4 scales
        (ssi_depth_loss, "scales", 4),
        (ssi_depth_loss, "alpha", 0.1),  # SSL4GIE's weight of the gradient term
    ],
)
def test_depth_defaults(function, argument: str, official) -> None:
    assert inspect.signature(function).parameters[argument].default == official


def test_ssi_depth_loss_takes_alpha_zero_and_one_scale() -> None:
    prediction, target = torch.rand(1, 4, 4), torch.rand(1, 4, 4) + 1
    mask = target > 1.3
    mse = ssi_mse_loss(prediction, target, mask)
    assert ssi_depth_loss(prediction, target, mask, alpha=0.0) == mse
    one_scale = gradient_matching_loss(prediction, target, mask, scales=1)
    combined = ssi_depth_loss(prediction, target, mask, alpha=1.0, scales=1)
    assert combined.item() == pytest.approx((mse + one_scale).item())


@pytest.mark.parametrize(
    "function, argument, official",
    [
        (dino_loss, "student_temp", 0.1),  # facebookresearch/dino main_dino.py
        (dino_loss, "teacher_temp", 0.04),  # main_dino.py --teacher_temp (after warm-up)
        (dino_center, "momentum", 0.9),  # main_dino.py DINOLoss center_momentum
        (info_nce_loss, "temperature", 0.2),  # MoCo v3 paper and official ViT recipes
    ],
)
def test_contrastive_defaults(function, argument: str, official) -> None:
    assert inspect.signature(function).parameters[argument].default == official


def test_dino_center_has_no_gradient_and_takes_momentum_0_and_1() -> None:
    teacher = [torch.tensor([[1.0, 2.0], [3.0, 6.0]], requires_grad=True)]
    center = torch.tensor([[10.0, 20.0]])
    assert not dino_center(teacher, center).requires_grad
    assert dino_center(teacher, center, momentum=0.0).tolist() == [[2.0, 4.0]]  # batch mean
    assert dino_center(teacher, center, momentum=1.0).tolist() == [[10.0, 20.0]]


def test_info_nce_on_the_second_of_two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    # rank 1 of 2 holds rows N..2N-1 of the joint batch: its positives are keys N + n
    q, k_all = torch.randn(3, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    temperature = 0.2
    qn, kn = q / q.norm(dim=1, keepdim=True), k_all / k_all.norm(dim=1, keepdim=True)
    monkeypatch.setattr(info_nce, "rank", lambda: 1)  # rank 0 sends its normalised keys
    monkeypatch.setattr(info_nce, "gather_no_grad", lambda k: torch.cat([kn[:3], k]))
    log_p = torch.log_softmax(qn @ kn.T / temperature, dim=1)
    expected = -sum(log_p[n, 3 + n] for n in range(3)) / 3 * 2 * temperature
    loss = info_nce_loss(q, k_all[3:], temperature=temperature)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_patchify_needs_both_sides_divisible() -> None:
    with pytest.raises(InputError, match="8x10 is not divisible by the patch size 4"):
        patchify(torch.zeros(1, 3, 8, 10), 4)


def test_mae_loss_needs_pred_and_target_of_one_shape() -> None:
    with pytest.raises(InputError, match="mae_loss"):
        mae_loss(torch.zeros(2, 4, 3), torch.zeros(2, 4, 5), torch.ones(2, 4))


def test_scene_patches_counts_a_patch_half_scene_or_more() -> None:
    # 4x6 image, 2x2 patches in row-major order; scene pixels per patch: 4, 2, 1 / 3, 0, 2
    scene = torch.tensor(
        [[1, 1, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 1]]
    ).bool()[None, None]
    assert scene_patches(scene, 2).tolist() == [[1.0, 1.0, 0.0, 1.0, 0.0, 1.0]]


def test_nt_xent_on_the_second_of_two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    # rank 1 of 2; candidates: z1 of ranks 0, 1, then z2 of ranks 0, 1 (N = 3 rows each)
    n, temperature = 3, 0.5
    z1_all, z2_all = torch.randn(2, 2 * n, 4, dtype=torch.float64)
    unit = [z / z.norm(dim=1, keepdim=True) for z in (z1_all, z2_all)]
    monkeypatch.setattr(nt_xent, "world_size", lambda: 2)
    monkeypatch.setattr(nt_xent, "rank", lambda: 1)
    others = iter([unit[0][:n], unit[1][:n]])  # gather(z1) is called first, then gather(z2)
    monkeypatch.setattr(nt_xent, "gather", lambda z: torch.cat([next(others), z]))
    candidates = torch.cat(unit)  # [4N, D]
    total = 0.0
    for own, positive in [(n + a, 3 * n + a) for a in range(n)] + [
        (3 * n + a, n + a) for a in range(n)
    ]:
        similarities = candidates @ candidates[own] / temperature
        others_sum = sum(similarities[c].exp() for c in range(4 * n) if c != own)
        total += -(similarities[positive].exp() / others_sum).log().item()
    loss = nt_xent_loss(z1_all[n:], z2_all[n:], temperature=temperature)
    assert loss.item() == pytest.approx(total / (2 * n), rel=1e-5)


def test_nt_xent_default_temperature() -> None:
    # google-research/simclr: 0.5 in the CIFAR-10 recipe
    assert inspect.signature(nt_xent_loss).parameters["temperature"].default == 0.5


def test_simmim_one_masked_pixel_divides_by_1_plus_1e_5() -> None:
    # official SimMIM: sum(|pred - target| * mask) / (sum(mask) + 1e-5) / C
    pred, target = torch.zeros(1, 2, 2, 2, dtype=torch.float64), torch.zeros(1, 2, 2, 2)
    pred[0, :, 0, 0] = torch.tensor([1.0, 3.0])
    mask = torch.zeros(1, 2, 2)
    mask[0, 0, 0] = 1
    expected = (1.0 + 3.0) / (1 + 1e-5) / 2
    assert simmim_loss(pred, target.double(), mask).item() == pytest.approx(expected, rel=1e-12)


def test_simmim_needs_pred_and_target_of_one_shape() -> None:
    with pytest.raises(InputError, match="simmim_loss"):
        simmim_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5), torch.ones(2, 4, 4))


@pytest.mark.parametrize(
    "function, argument, official",
    [  # facebookresearch/swav main_swav.py: --epsilon 0.05, --sinkhorn_iterations 3,
        (sinkhorn, "epsilon", 0.05),  # --temperature 0.1
        (sinkhorn, "iterations", 3),
        (swav_loss, "temperature", 0.1),
        (swav_loss, "epsilon", 0.05),
        (swav_loss, "iterations", 3),
    ],
)
def test_swav_defaults(function, argument: str, official) -> None:
    assert inspect.signature(function).parameters[argument].default == official


def test_sinkhorn_codes_have_no_gradient() -> None:
    assert not sinkhorn(torch.randn(4, 3, requires_grad=True)).requires_grad


def test_swav_with_one_assigning_crop() -> None:
    # crop 0 gets the codes; crops 1 and 2 predict them: mean of their two cross-entropies
    scores = torch.randn(3, 4, 5, dtype=torch.float64).unbind(0)
    codes = sinkhorn(scores[0])
    expected = sum(
        -(codes * torch.log_softmax(s / 0.1, dim=1)).sum(dim=1).mean() for s in scores[1:]
    )
    assert swav_loss(list(scores), num_assign=1).item() == pytest.approx(expected.item() / 2)
