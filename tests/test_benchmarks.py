"""Benchmarks run in ``nox -s bench``, never here; this only keeps them from rotting."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_input_pipeline_benchmark_smoke(tmp_path):
    out = tmp_path / "figures.json"
    argv = ["--n", "8", "--frame-size", "64", "--size", "32", "--batch", "4", "--workers", "0"]
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "input_pipeline.py"), *argv, "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    figures = json.loads(out.read_text())["images_per_s"]
    assert set(figures) == {"decode_resize", "decode_resize_views", "torchvision_baseline"}
    assert all(value > 0 for value in figures.values())


def test_method_steps_benchmark_smoke(tmp_path):
    out = tmp_path / "steps.json"
    argv = ["--batch", "2", "--size", "32", "--steps", "1", "--methods", "simclr",
            "--backbones", "resnet18", "--json", str(out)]  # fmt: skip
    subprocess.run([sys.executable, str(BENCHMARKS / "method_steps.py"), *argv], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (row,) = json.loads(out.read_text())["rows"]
    assert row["method"] == "simclr" and row["seconds"] > 0 and row["bare_seconds"] > 0
