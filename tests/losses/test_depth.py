"""Scale-and-shift-invariant depth losses against plain per-pixel loops (MiDaS formulas)."""

import pytest
import torch

from ssl4gie.errors import InputError
from ssl4gie.losses import gradient_matching_loss, ssi_depth_loss, ssi_mse_loss
from ssl4gie.losses.depth import align_scale_shift, scale_shift


def reference(prediction, target, mask, alpha=0.1, scales=4):
    """MiDaS loss written plainly: least squares with torch.linalg.lstsq per image, loops over
    pixels for the residual and its gradients, batch-based reduction."""
    aligned = []
    for p, t, m in zip(prediction, target, mask, strict=True):
        design = torch.stack([p[m], torch.ones_like(p[m])], dim=1).double()
        s, b = torch.linalg.lstsq(design, t[m].double().unsqueeze(1)).solution.flatten()
        aligned.append(s * p.double() + b)
    residual = torch.stack(aligned) - target.double()
    valid = mask.sum().item()
    mse = sum(residual[mask].pow(2).tolist()) / (2 * valid)
    gradient = 0.0
    for k in range(scales):
        step = 2**k
        r, m = residual[:, ::step, ::step], mask[:, ::step, ::step]
        total = 0.0
        for b in range(r.shape[0]):
            for i in range(r.shape[1]):
                for j in range(r.shape[2]):
                    if j + 1 < r.shape[2] and m[b, i, j] and m[b, i, j + 1]:
                        total += abs(r[b, i, j + 1] - r[b, i, j]).item()
                    if i + 1 < r.shape[1] and m[b, i, j] and m[b, i + 1, j]:
                        total += abs(r[b, i + 1, j] - r[b, i, j]).item()
        gradient += total / m.sum().item()
    return mse + alpha * gradient


def test_alignment_recovers_a_known_scale_and_shift():
    prediction = torch.rand(2, 6, 7) + 0.1
    target = 2.5 * prediction + 3.0
    mask = torch.rand(2, 6, 7) > 0.3
    target[~mask] = 0  # invalid pixels must not disturb the fit
    scale, shift = scale_shift(prediction, target, mask)
    assert torch.allclose(scale, torch.tensor([2.5, 2.5]), atol=1e-4)
    assert torch.allclose(shift, torch.tensor([3.0, 3.0]), atol=1e-4)
    aligned = align_scale_shift(prediction, target, mask)
    assert torch.allclose(aligned[mask], target[mask], atol=1e-4)
    assert ssi_depth_loss(prediction, target, mask).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_plain_formula(seed):
    generator = torch.Generator().manual_seed(seed)
    prediction = torch.rand(2, 9, 10, generator=generator)
    target = torch.rand(2, 9, 10, generator=generator) * 50
    mask = torch.rand(2, 9, 10, generator=generator) > 0.2
    loss = ssi_depth_loss(prediction, target, mask, alpha=0.1)
    assert loss.item() == pytest.approx(reference(prediction, target, mask), rel=1e-4)
    assert ssi_mse_loss(prediction, target, mask).item() == pytest.approx(
        reference(prediction, target, mask, alpha=0.0), rel=1e-4
    )
    gradient = reference(prediction, target, mask, alpha=1.0) - reference(
        prediction, target, mask, alpha=0.0
    )
    assert gradient_matching_loss(prediction, target, mask).item() == pytest.approx(gradient, 1e-4)


def test_invariant_to_scale_and_shift_of_the_prediction():
    prediction, target = torch.rand(2, 8, 8), torch.rand(2, 8, 8) + 1
    mask = target > 1.2
    loss = ssi_depth_loss(prediction, target, mask)
    assert ssi_depth_loss(-3 * prediction + 7, target, mask).item() == pytest.approx(
        loss.item(), rel=1e-4
    )


def test_no_valid_pixel_gives_zero_and_bad_shapes_fail():
    prediction = torch.rand(1, 4, 4, requires_grad=True)
    loss = ssi_depth_loss(prediction, torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    with pytest.raises(InputError, match=r"\[B, H, W\]"):
        ssi_depth_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4) > 0)
    with pytest.raises(InputError, match="alpha"):
        ssi_depth_loss(torch.rand(1, 4, 4), torch.rand(1, 4, 4), torch.ones(1, 4, 4) > 0, alpha=-1)
