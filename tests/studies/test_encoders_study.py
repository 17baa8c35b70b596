"""The encoders study: probes for every encoder, fine-tuning for the top-k, the ranked report."""

import csv
import json
import math

import pytest
import timm
import torch

from ssl4gie.analysis.probe import knn_predict
from ssl4gie.cli import main
from ssl4gie.errors import InputError
from ssl4gie.studies import load_config, run_study
from ssl4gie.studies.cells import expand
from ssl4gie.studies.config import BackboneSpec, StudyConfig, TaskSpec
from ssl4gie.studies.encoders import probe_order, task_ranking
from ssl4gie.studies.report import Results
from ssl4gie.studies.stats import mean_std
from ssl4gie.zoo import export_backbone
from ssl4gie.zoo.convert import Converted

SILENT = {"echo": lambda line: None}


def test_knn_vote_is_weighted_by_similarity():
    """Query (1, 0) against bank A = (1, 0) [class 0], B = (0.6, 0.8) and C = (0.8, 0.6)
    [class 1], k = 3. Cosine similarities 1.0, 0.6, 0.8. At T = 0.07 class 0 gets
    e^(1/0.07) = 1.6e6 against e^(0.6/0.07) + e^(0.8/0.07) = 9.7e4: class 0, where a plain
    majority says 1. At T = 1: e^1 = 2.72 against e^0.6 + e^0.8 = 4.05: class 1."""
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[2.0, 0.0]])  # any scale: features are l2-normalised
    assert knn_predict(bank, labels, query, 2, k=3, temperature=0.07).tolist() == [0]
    assert knn_predict(bank, labels, query, 2, k=3, temperature=1.0).tolist() == [1]
    assert knn_predict(bank, labels, query, 2, k=1, temperature=1.0).tolist() == [0]


@pytest.fixture
def constant_encoder(tmp_path):
    """An export folder of a test_resnet whose weights are all zero: every image's features are
    the same (zero) vector, so no probe can beat the majority class. Its card normalises by
    mean (0.1, 0.2, 0.3) and std (0.4, 0.5, 0.6)."""
    model = timm.create_model("test_resnet", num_classes=0)
    zeros = {name: torch.zeros_like(value) for name, value in model.state_dict().items()}
    folder = export_backbone(Converted(zeros, "test_resnet", {}, [], "timm"), tmp_path / "zero")
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"] |= {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_config_problems(study_files):
    path = study_files(
        "encoders",
        modes=["linear"],
        label_fractions=[0.5, None],
        top_k=0,
        backbones={"a": {"backbone": "test_resnet"}, "fused": {"members": ["a"]}},
    )
    with pytest.raises(InputError) as error:
        load_config(path)
    message = str(error.value)
    for problem in ("drop modes", "one label fraction", "top_k must be", "not members"):
        assert problem in message


@pytest.mark.slow
def test_encoders_rank_probe_and_finetune(study_files, constant_encoder, capsys):
    folder = study_files.folder
    path = study_files(
        "encoders",
        seeds=[0, 1],
        top_k=1,
        trainer={"max_epochs": 1},
        backbones={
            "resnet": {"backbone": "test_resnet"},
            "constant": {"backbone": constant_encoder},
            "convnext": {"backbone": "test_convnext"},
            "broken": {"backbone": "test_resnet", "backbone_kwargs": {"no_such_argument": 1}},
        },
        tasks={
            "landmarks": {"config": str(folder / "landmarks.yaml")},
            "polyps": {"config": str(folder / "polyps.yaml")},
        },
    )
    config = load_config(path)
    probes = expand(config)  # before any result: the probe cells only, classification tasks
    assert {(c.task, c.mode) for c in probes} == {("landmarks", "probe")} and len(probes) == 8

    assert main(["study", "encoders", "--config", path]) == 1  # the broken encoder's probes
    assert "10 cells run, 0 finished before, 2 failed" in capsys.readouterr().out
    cells = json.loads((config.out_dir / "report" / "results.json").read_text())
    probe = {
        (c["cell"]["backbone"], c["cell"]["seed"]): c["metrics"]
        for c in cells
        if c["cell"]["mode"] == "probe"
    }
    linear = {
        b: mean_std([probe[b, s]["test_linear_accuracy"] for s in (0, 1)])[0]
        for b in ("resnet", "constant", "convnext")
    }
    # constant features: every test image gets the same class, so both accuracies are the
    # share of one class among the test labels
    features = torch.load(config.out_dir / "features" / "landmarks__constant.pt")
    counts = torch.bincount(features["test"]["labels"], minlength=6).tolist()
    shares = [count / sum(counts) for count in counts]
    for name in ("test_linear_accuracy", "test_knn_accuracy"):
        assert any(math.isclose(probe["constant", 0][name], share) for share in shares)
    assert linear["constant"] < min(linear["resnet"], linear["convnext"])

    tuned = {
        (c["cell"]["task"], c["cell"]["backbone"]) for c in cells if c["cell"]["mode"] == "finetune"
    }
    best = max(linear, key=linear.get)  # on landmarks; on polyps: the best mean rank, the same
    assert tuned == {("landmarks", best), ("polyps", best)}

    with open(config.out_dir / "report" / "ranking.csv") as handle:
        ranking = [row for row in csv.DictReader(handle)]
    landmarks = [row for row in ranking if row["task"] == "landmarks"]
    ranked = sorted(linear, key=lambda b: -linear[b])
    assert [row["encoder"] for row in landmarks] == [*ranked, "broken"]
    assert [row["finetune_seeds"] for row in landmarks] == ["2", "0", "0", "0"]
    values = [
        c["metrics"]["test_f1"]
        for c in cells
        if c["cell"]["mode"] == "finetune" and c["cell"]["task"] == "landmarks"
    ]
    assert math.isclose(float(landmarks[0]["finetune_mean"]), mean_std(values)[0], abs_tol=1e-9)
    assert math.isclose(float(landmarks[0]["finetune_std"]), mean_std(values)[1], abs_tol=1e-9)
    for row in landmarks[:3]:
        assert math.isclose(float(row["linear_mean"]), linear[row["encoder"]], abs_tol=1e-9)

    text = (config.out_dir / "report" / "README.md").read_text()
    assert "| 3 | constant |" in text  # the useless encoder ranks last of those probed
    assert "| 4 | broken | – | – | – | – | – | – |" in text
    # normalised by its card, shown on both tasks
    assert text.count("| 0.100, 0.200, 0.300 / 0.400, 0.500, 0.600 |") == 2
    timm_mean = timm.create_model("test_resnet").pretrained_cfg["mean"]
    assert ", ".join(f"{v:.3f}" for v in timm_mean) in text.split("| resnet |")[1].splitlines()[0]
    assert (config.out_dir / "report" / "encoders.png").stat().st_size > 1000
    assert len(list((config.out_dir / "features").glob("landmarks__*.pt"))) == 2 + 1 + 2

    again = run_study(load_config(path), **SILENT)
    assert len(again.ran) == 0 and len(again.skipped) == 10 and len(again.failed) == 2


def _cell(task, backbone, mode, seed, **metrics):
    cell = {"task": task, "backbone": backbone, "mode": mode, "fraction": None, "seed": seed}
    metric = "test_rmse" if task == "depth" else "test_linear_accuracy"
    return {"cell": cell, "metrics": metrics, "metric": metric, "value": metrics.get(metric)}


def test_ranking_by_probe_then_finetune():
    """Probe order on a classification task; on depth (no probe) the mean rank over the probed
    tasks; fine-tuned encoders first by their metric (RMSE: lowest first)."""
    config = StudyConfig(
        "encoders",
        backbones={name: BackboneSpec("test_resnet") for name in ("a", "b", "c")},
        tasks={"cls1": TaskSpec("x"), "cls2": TaskSpec("x"), "depth": TaskSpec("x")},
    )
    linear = {"cls1": {"a": 0.5, "b": 0.9, "c": 0.7}, "cls2": {"a": 0.8, "b": 0.6, "c": 0.7}}
    probes = [
        _cell(task, b, "probe", 0, test_linear_accuracy=v)
        for task, values in linear.items()
        for b, v in values.items()
    ]
    order = probe_order(config, probes)
    # ranks cls1: b 0, c 1, a 2; cls2: a 0, c 1, b 2 -> mean a 1, b 1, c 1: config order
    assert order == {"cls1": ["b", "c", "a"], "cls2": ["a", "c", "b"], "depth": ["a", "b", "c"]}
    tuned = [_cell("depth", b, "finetune", s, test_rmse=v + s) for b, v in (("a", 3), ("b", 2))
             for s in (0, 1)]  # fmt: skip
    results = Results(config, probes + tuned)
    assert task_ranking(results, "depth", order["depth"]) == ["b", "a", "c"]
