"""Analysis of learned representations: collapse metrics and frozen-feature probes."""

from ssl4gie.analysis.collapse import COLLAPSE_THRESHOLD, effective_rank, normalised_std
from ssl4gie.analysis.probe import knn_accuracy, linear_probe_accuracy

__all__ = [
    "COLLAPSE_THRESHOLD",
    "effective_rank",
    "knn_accuracy",
    "linear_probe_accuracy",
    "normalised_std",
]
