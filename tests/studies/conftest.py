"""Tiny study configs on synthetic data: timm's test models, 32 px, one or two epochs."""

import pytest
import yaml

TRAINER = {
    "accelerator": "cpu",
    "devices": 1,
    "precision": "32",
    "enable_progress_bar": False,
    "log_every_n_steps": 1,
}
LOADER = {"size": 32, "batch_size": 8, "num_workers": 0}


@pytest.fixture
def study_files(tmp_path, synthetic):
    """``make(study, **config) -> path`` writing a study YAML beside tiny task and pretrain
    configs (``landmarks.yaml``, ``polyps.yaml``, ``simclr.yaml``) into ``tmp_path``."""
    labeled = synthetic("hyperkvasir-labeled", n=120)
    polyps = synthetic("kvasir-seg", n=32)
    unlabeled = synthetic("hyperkvasir-unlabeled", n=32)
    configs = {
        "landmarks": {
            "trainer": {**TRAINER, "max_epochs": 2},
            "model": {
                "class_path": "ssl4gie.tasks.ClassificationTask",
                "init_args": {"backbone": "test_resnet", "num_classes": 6},
            },
            "data": {
                "class_path": "ssl4gie.data.datamodules.ClassificationDataModule",
                "init_args": {"root": str(labeled), "options": {"task": "landmarks"}, **LOADER},
            },
        },
        "polyps": {
            "trainer": {**TRAINER, "max_epochs": 1},
            "model": {
                "class_path": "ssl4gie.tasks.SegmentationTask",
                "init_args": {"backbone": "test_resnet", "num_classes": 2, "decoder": "fpn"},
            },
            "data": {
                "class_path": "ssl4gie.data.datamodules.SegmentationDataModule",
                "init_args": {"root": str(polyps), **LOADER},
            },
        },
        "simclr": {
            "trainer": {**TRAINER, "max_epochs": 1},
            "model": {
                "class_path": "ssl4gie.methods.SimCLR",
                "init_args": {
                    "backbone": "test_resnet",
                    "views": {
                        "class_path": "ssl4gie.transforms.TwoViews",
                        "init_args": {"size": 32},
                    },
                },
            },
            "data": {
                "sources": [{"layout": "hyperkvasir-unlabeled", "root": str(unlabeled)}],
                **LOADER,
            },
        },
    }
    for name, config in configs.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))

    def make(study: str, **config) -> str:
        tasks = config.pop("tasks", {"landmarks": {"config": str(tmp_path / "landmarks.yaml")}})
        config = {"study": study, "out": str(tmp_path / "out"), "tasks": tasks, **config}
        path = tmp_path / f"{study}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return str(path)

    make.folder = tmp_path
    return make
