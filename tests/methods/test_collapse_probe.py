"""Collapse metrics on known embeddings; kNN and linear probes on separable and random labels."""

from __future__ import annotations

import pytest
import torch

from ssl4gie.analysis import effective_rank, knn_accuracy, linear_probe_accuracy, normalised_std
from ssl4gie.errors import InputError


def test_isotropic_gaussian_is_not_collapsed() -> None:
    z = torch.randn(4096, 64)
    assert normalised_std(z).item() == pytest.approx(1.0, abs=0.02)
    assert effective_rank(z).item() > 60


def test_identical_embeddings_are_collapsed() -> None:
    z = torch.randn(1, 64).expand(256, 64)
    assert normalised_std(z).item() == pytest.approx(0.0, abs=1e-5)
    assert effective_rank(z).item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("k", [1, 4, 16])
def test_rank_k_embeddings(k: int) -> None:
    basis = torch.linalg.qr(torch.randn(64, 64))[0][:k]  # k orthonormal rows
    z = torch.randn(4096, k) @ basis
    assert k - 0.5 < effective_rank(z).item() <= k + 1e-3


def _clusters(n: int, classes: int, dim: int = 32, spread: float = 0.1):
    centres = torch.randn(classes, dim) * 3
    labels = torch.arange(n) % classes
    return centres[labels] + spread * torch.randn(n, dim), labels


def test_probes_separate_clusters() -> None:
    features, labels = _clusters(200, 5)
    assert knn_accuracy(features, labels) == pytest.approx(1.0)
    assert linear_probe_accuracy(features, labels) == pytest.approx(1.0)


def test_probes_are_at_chance_on_random_labels() -> None:
    features = torch.randn(2000, 32)
    labels = torch.randint(0, 4, (2000,))
    assert abs(knn_accuracy(features, labels) - 0.25) < 0.06
    assert abs(linear_probe_accuracy(features, labels) - 0.25) < 0.06


def test_probe_rejects_mismatched_labels() -> None:
    with pytest.raises(InputError, match="labels"):
        knn_accuracy(torch.randn(8, 4), torch.zeros(7, dtype=torch.long))
