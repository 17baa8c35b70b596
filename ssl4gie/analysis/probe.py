"""Frozen-feature evaluation: weighted kNN and linear-probe accuracy on a labelled feature set.

Both split the set into deterministic halves: even rows are the bank (training set), odd rows
the queries (test set), so a class-ordered set keeps its balance in both halves. The online
probe of :class:`~ssl4gie.methods.base.SSLMethod` runs both at the end of each validation epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl4gie.errors import InputError

__all__ = [
    "bank_query_split",
    "knn_accuracy",
    "knn_predict",
    "knn_scores",
    "linear_probe_accuracy",
    "linear_probe_predict",
]


def bank_query_split(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``features`` ``[N, D]``, ``labels`` ``[N]`` -> bank (even rows) and queries (odd rows):
    ``bank_features, bank_labels, query_features, query_labels``."""
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise InputError(
            f"probe needs features [N, D] and labels [N], got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if features.shape[0] < 2:
        raise InputError(f"probe needs at least 2 labelled images, got {features.shape[0]}")
    return features[0::2], labels[0::2], features[1::2], labels[1::2]


def knn_accuracy(features: Tensor, labels: Tensor, k: int = 20, temperature: float = 0.07) -> float:
    """Accuracy of the weighted cosine kNN classifier [Wu et al. 2018, Sec. 3.4; DINO ``eval_knn``].

    Each query's ``k`` most similar bank features (cosine similarity ``s``) vote for their label
    with weight ``exp(s / temperature)``; the class with the largest total wins.

    Args:
        features: ``[N, D]`` frozen features, any scale (they are l2-normalised here).
        labels: ``[N]`` int64 class indices.
        k: neighbours (20 as in DINO; fewer if the bank is smaller).
        temperature: 0.07, as in Wu et al. 2018 and DINO.

    Examples:
        >>> labels = torch.arange(40) // 2 % 2  # even rows: bank, odd rows: queries
        >>> features = torch.nn.functional.one_hot(labels).float() + 0.1 * torch.randn(40, 2)
        >>> knn_accuracy(features, labels, k=5)
        1.0
    """
    bank, bank_labels, queries, query_labels = bank_query_split(features.float(), labels)
    predicted = knn_predict(bank, bank_labels, queries, int(labels.max()) + 1, k, temperature)
    return (predicted == query_labels).float().mean().item()


def knn_scores(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> Tensor:
    """Weighted cosine kNN class scores [Wu et al. 2018, arXiv:1805.01978, Sec. 3.4; DINO].

    Each query's ``k`` most similar bank features (cosine similarity ``s``) vote for their label
    with weight ``exp(s / temperature)``; votes are normalised to sum to 1.

    Args:
        bank: ``[N, D]`` features; bank_labels: int ``[N]``; queries: ``[Q, D]``.

    Returns:
        ``[Q, num_classes]`` class scores (rows sum to 1).
    """
    queries, bank = F.normalize(queries.float(), dim=1), F.normalize(bank.float(), dim=1)
    similarity, neighbour = (queries @ bank.T).topk(min(k, len(bank)), dim=1)
    votes = queries.new_zeros(len(queries), num_classes)
    votes.scatter_add_(1, bank_labels[neighbour], torch.exp(similarity / temperature))
    return votes / votes.sum(dim=1, keepdim=True)


def knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> Tensor:
    """Weighted cosine kNN labels ``[Q]`` of ``queries`` ``[Q, D]`` from ``bank`` ``[N, D]``
    with ``bank_labels`` ``[N]`` (the vote of :func:`knn_accuracy`): the argmax of
    :func:`knn_scores`."""
    return knn_scores(bank, bank_labels, queries, num_classes, k, temperature).argmax(dim=1)


def linear_probe_accuracy(
    features: Tensor, labels: Tensor, weight_decay: float = 1e-4, max_iter: int = 100
) -> float:
    """Accuracy of multinomial logistic regression fit on the bank half with L-BFGS.

    Features are standardised with the bank's mean and std; the objective is the mean
    cross-entropy plus ``weight_decay / 2 * ||W||^2``. Runs with gradients even when called
    inside Lightning's validation loop (inference mode).

    Examples:
        >>> labels = torch.arange(40) // 2 % 2  # even rows: bank, odd rows: queries
        >>> features = torch.nn.functional.one_hot(labels).float() + 0.1 * torch.randn(40, 2)
        >>> linear_probe_accuracy(features, labels)
        1.0
    """
    bank, bank_labels, queries, query_labels = bank_query_split(features.float(), labels)
    num_classes = int(labels.max()) + 1
    predicted = linear_probe_predict(
        bank, bank_labels, queries, num_classes, weight_decay, max_iter
    )
    return (predicted == query_labels).float().mean().item()


def linear_probe_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    weight_decay: float = 1e-4,
    max_iter: int = 100,
) -> Tensor:
    """Labels ``[Q]`` of ``queries`` ``[Q, D]`` by the logistic regression of
    :func:`linear_probe_accuracy` fit on ``bank`` ``[N, D]`` and ``bank_labels`` ``[N]``."""
    with torch.inference_mode(False), torch.enable_grad():
        bank, queries = bank.float().clone(), queries.float().clone()
        mean, std = bank.mean(dim=0), bank.std(dim=0, unbiased=False) + 1e-6
        bank, queries = (bank - mean) / std, (queries - mean) / std
        classifier = _fit_logistic_regression(
            bank, bank_labels.clone(), num_classes, weight_decay, max_iter
        )
        with torch.no_grad():
            return classifier(queries).argmax(dim=1)


def _fit_logistic_regression(
    x: Tensor, y: Tensor, num_classes: int, weight_decay: float, max_iter: int
) -> torch.nn.Linear:
    """``[N, D]`` standardised features, ``[N]`` labels -> a fitted ``Linear(D, num_classes)``."""
    classifier = torch.nn.Linear(x.shape[1], num_classes, device=x.device)
    torch.nn.init.zeros_(classifier.weight)
    torch.nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.LBFGS(
        classifier.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        penalty = classifier.weight.pow(2).sum() * (weight_decay / 2)
        loss = F.cross_entropy(classifier(x), y) + penalty
        loss.backward()
        return loss

    optimizer.step(closure)
    return classifier
