"""Analysis of learned representations: collapse metrics, frozen-feature probes and CKA."""

from ssl4gie.analysis.cka import block_features, layerwise_cka, linear_cka
from ssl4gie.analysis.collapse import COLLAPSE_THRESHOLD, effective_rank, normalised_std
from ssl4gie.analysis.probe import knn_accuracy, linear_probe_accuracy

__all__ = [
    "COLLAPSE_THRESHOLD",
    "block_features",
    "effective_rank",
    "knn_accuracy",
    "layerwise_cka",
    "linear_cka",
    "linear_probe_accuracy",
    "normalised_std",
]
