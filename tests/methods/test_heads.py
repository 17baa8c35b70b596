"""Head shapes and GlobalBatchNorm == BatchNorm on one process."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ssl4gie.errors import InputError
from ssl4gie.methods.heads import mlp
from ssl4gie.nn import GlobalBatchNorm, distributed_batchnorm, global_batchnorm


def test_mlp_shapes_and_layers() -> None:
    head = mlp([12, 32, 32, 8], bias=False, last_bn=True)
    assert head(torch.randn(5, 12)).shape == (5, 8)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    norms = [m for m in head if isinstance(m, nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 32), (32, 32), (32, 8)]
    assert all(m.bias is None for m in linears)
    assert len(norms) == 3 and not norms[-1].affine
    assert sum(isinstance(m, nn.ReLU) for m in head) == 2


def test_mlp_without_last_bn_ends_in_linear() -> None:
    head = mlp([4, 16, 6])
    assert isinstance(head[-1], nn.Linear) and head[-1].bias is not None


def test_mlp_rejects_bad_sizes() -> None:
    with pytest.raises(InputError, match="at least 2"):
        mlp([4])


def _compare_train_step(reference: nn.Module, candidate: nn.Module, shape: tuple) -> None:
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(shape, dtype=torch.float64)
    out_ref, out_new = reference(x_ref), candidate(x_new)
    (out_ref * weights).sum().backward()
    (out_new * weights).sum().backward()
    torch.testing.assert_close(out_new, out_ref)
    torch.testing.assert_close(x_new.grad, x_ref.grad)
    for p_ref, p_new in zip(reference.parameters(), candidate.parameters(), strict=True):
        torch.testing.assert_close(p_new.grad, p_ref.grad)
    for b_ref, b_new in zip(reference.buffers(), candidate.buffers(), strict=True):
        torch.testing.assert_close(b_new, b_ref)


@pytest.mark.parametrize(
    ("norm", "shape"),
    [(nn.BatchNorm1d, (6, 5)), (nn.BatchNorm1d, (4, 5, 3)), (nn.BatchNorm2d, (3, 5, 4, 2))],
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_global_batchnorm_equals_batchnorm(norm: type, shape: tuple, momentum) -> None:
    reference = norm(5, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 2.0)
        reference.bias.uniform_(-1.0, 1.0)
    candidate = global_batchnorm(copy.deepcopy(reference))
    assert isinstance(candidate, GlobalBatchNorm)
    for _ in range(2):  # running statistics after two updates
        _compare_train_step(reference, candidate, shape)
    reference.eval(), candidate.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(candidate(x), reference(x))


def test_global_batchnorm_without_affine_and_state_dict_names() -> None:
    reference = nn.BatchNorm1d(4, affine=False, dtype=torch.float64)
    candidate = global_batchnorm(copy.deepcopy(reference))
    _compare_train_step(reference, candidate, (7, 4))
    assert candidate.state_dict().keys() == reference.state_dict().keys()


def test_global_batchnorm_rejects_one_value_per_channel() -> None:
    with pytest.raises(ValueError, match="more than 1 value"):
        GlobalBatchNorm(3)(torch.randn(1, 3))


def test_conversion_replaces_nested_batchnorms_only() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.LayerNorm(4)))
    converted = global_batchnorm(model)
    assert converted is model and isinstance(model[1], GlobalBatchNorm)
    assert isinstance(model[2][0], nn.LayerNorm)
    assert global_batchnorm(model)[1] is model[1]  # already converted: left alone


def test_distributed_batchnorm_is_a_no_op_on_one_process() -> None:
    model = nn.Sequential(nn.BatchNorm1d(3))
    distributed_batchnorm(model, torch.device("cpu"), num_processes=1)
    assert type(model[0]) is nn.BatchNorm1d
    distributed_batchnorm(model, torch.device("cpu"), num_processes=2)
    assert type(model[0]) is GlobalBatchNorm
