"""Downstream tasks as LightningModules: a backbone (timm or zoo name) fine-tuned or probed with
the SSL4GIE evaluation protocols. See :mod:`.base` for what every task shares."""

from ssl4gie.tasks.base import TaskModule
from ssl4gie.tasks.classification import ClassificationTask
from ssl4gie.tasks.depth import DepthTask
from ssl4gie.tasks.detection import DetectionTask
from ssl4gie.tasks.meta_embedding import MetaEmbeddingClassifier
from ssl4gie.tasks.segmentation import SegmentationTask

__all__ = [
    "ClassificationTask",
    "DepthTask",
    "DetectionTask",
    "MetaEmbeddingClassifier",
    "SegmentationTask",
    "TaskModule",
]
