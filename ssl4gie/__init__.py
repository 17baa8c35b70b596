"""ssl4gie: self-supervised pretraining and fine-tuning for gastrointestinal endoscopy.

The public API stays small: backbones come from :mod:`ssl4gie.zoo`, pretraining methods live in
:mod:`ssl4gie.methods`, downstream tasks in :mod:`ssl4gie.tasks`, losses in
:mod:`ssl4gie.losses` and data in :mod:`ssl4gie.data`.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
