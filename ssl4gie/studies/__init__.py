"""The seed studies as one command each: a grid of fine-tuning cells, resumable, with a report.

    ssl4gie study ssl4gie-table --config configs/studies/ssl4gie-table.yaml

- :mod:`.config`: the YAML config and its checks (every problem listed before any training);
- :mod:`.cells`: the grid and one cell's run (fine-tune, test the best checkpoint, shifts, CKA);
- :mod:`.pretraining`: pretraining inside a study (two-stage, wild vs self);
- :mod:`.runner`: the resumable loop; :mod:`.report` and :mod:`.reports`: tables and figures.

Studies (``STUDIES``): ``ssl4gie-table``, ``label-efficiency``, ``convergence``,
``linear-vs-finetune``, ``dvme``, ``wild-vs-self`` and ``encoders`` (:mod:`.encoders`: kNN and
linear probes for every encoder, fine-tuning for the best).
"""

from ssl4gie.studies.config import StudyConfig, load_config
from ssl4gie.studies.reports import STUDIES, Study
from ssl4gie.studies.runner import StudyOutcome, render_report, run_study

__all__ = [
    "STUDIES",
    "Study",
    "StudyConfig",
    "StudyOutcome",
    "load_config",
    "render_report",
    "run_study",
]
