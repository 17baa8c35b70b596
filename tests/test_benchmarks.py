"""Benchmarks run in ``nox -s bench``, never here: these smoke runs (tiny sizes, one step) only
keep the scripts from rotting, and check the JSON they write and the page report.py makes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
HAVE_LIGHTLY = importlib.util.find_spec("lightly") is not None  # the bench extra
TINY = ["--batch", "4", "--size", "32", "--warmup", "0", "--steps", "1"]
TINY += ["--backbones", "test_resnet"]  # timm's 0.4M-parameter ResNet


def run(script: str, *argv: str, tmp_path: Path) -> dict:
    """Run ``benchmarks/<script>.py`` with ``argv``; return the JSON it wrote."""
    out = tmp_path / f"{script}.json"
    command = [sys.executable, str(BENCHMARKS / f"{script}.py"), *argv, "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == script and payload["hardware"]["cpu_cores"] >= 1
    assert payload["scale"]["name"] == "cpu" and payload["hardware"]["gpu"] is None
    return payload


def report(*paths: Path, tmp_path: Path) -> str:
    """Run report.py on result files; return the page."""
    page = tmp_path / "benchmarks.md"
    command = [sys.executable, str(BENCHMARKS / "report.py"), "--json", *map(str, paths)]
    subprocess.run([*command, "--out", str(page)], check=True, capture_output=True, timeout=60)
    return page.read_text()


def test_input_pipeline(tmp_path):
    argv = ["--frames", "4", "--frame-size", "64", "--size", "32", "--batch", "2", "--warmup", "0"]
    rows = run("input_pipeline", *argv, "--steps", "1", tmp_path=tmp_path)["rows"]
    names = [row["pipeline"] for row in rows]
    lightly = ["lightly"] if HAVE_LIGHTLY else []
    assert names == ["decode_resize", "decode_resize + views", "torchvision", *lightly]
    assert all(row["images_per_s"] > 0 and row["cores"] == 1 for row in rows)
    assert rows[2]["vs_torchvision"] == pytest.approx(1.0)


def test_pretrain_steps(tmp_path):
    payload = run("pretrain_steps", *TINY, "--methods", "simclr", "mae", tmp_path=tmp_path)
    simclr, mae = payload["rows"]
    for key in ("lightning_s", "views_s", "fwd_bwd_s", "plain_s", "gflop"):
        assert simclr[key] > 0, key
    assert (simclr.get("lightly_s", 0) > 0) is HAVE_LIGHTLY
    assert simclr["images_per_s"] == pytest.approx(4 / simclr["lightning_s"])
    assert simclr["mfu"] is None and simclr["syncs_per_step"] is None  # CPU
    assert "VisionTransformer" in mae["error"]  # MAE needs a ViT: a row saying why
    page = report(tmp_path / "pretrain_steps.json", tmp_path=tmp_path)
    assert "| simclr | test_resnet |" in page and "not measured (no GPU)" in page


def test_pretrain_throughput(tmp_path):
    argv = [*TINY, "--methods", "byol", "--frames", "4"]
    (byol,) = run("pretrain_throughput", *argv, tmp_path=tmp_path)["rows"]
    assert byol["ours_images_per_s"] > 0 and byol["plain_images_per_s"] > 0
    if HAVE_LIGHTLY:
        lightly = byol["lightly_images_per_s"]
        assert byol["speedup_vs_lightly"] == pytest.approx(byol["ours_images_per_s"] / lightly)
    assert byol["epoch_s"] == pytest.approx(99_417 / byol["ours_images_per_s"])


def test_fast_path(tmp_path):
    rows = run("fast_path", *TINY, tmp_path=tmp_path)["rows"]
    switches = [row["switch"] for row in rows]
    assert switches == [
        "all off", "channels_last", "foreach", "all on",  # LARS: no fused kernel; CPU: no bf16
        "defaults", "decode_on_device", "no persistent workers",  # no pinned memory on CPU
    ]  # fmt: skip
    assert all(row["images_per_s"] > 0 and "error" not in row for row in rows)
    assert rows[0]["speedup"] == 1.0 and rows[4]["speedup"] == 1.0


def test_finetune_steps(tmp_path):
    argv = [*TINY, "--batch", "2", "--tasks", "classification", "detection"]
    rows = run("finetune_steps", *argv, tmp_path=tmp_path)["rows"]
    assert [row["task"] for row in rows] == ["classification", "detection"]
    assert all(row["step_s"] > 0 and row["batch"] == 2 for row in rows)


def test_load_backbone(tmp_path):
    argv = ["--backbones", "resnet18", "--warmup", "0", "--steps", "1"]
    (row,) = run("load_backbone", *argv, tmp_path=tmp_path)["rows"]
    assert row["create_s"] > 0 and row["folder_s"] > 0 and row["hub_cache_s"] > 0
    assert row["megabytes"] == pytest.approx(46.8, rel=0.05)  # resnet18 fp32: 11.7M parameters


HARDWARE = {"cpu": "Test CPU", "cpu_cores": 2, "load_average_1min": 0.5, "torch": "2"}
HARDWARE |= {"python": "3", "platform": "Linux", "gpu_memory_gib": 80}
SCALE = {"backbones": ["resnet50"], "size": 224, "batch": 256, "warmup": 1, "steps": 2}
SCALE |= {"precision": "bf16-mixed", "heads": "official"}


def _result(benchmark: str, gpu: str | None, rows: list[dict], columns: list) -> dict:
    """A result file as the scripts write it, on a GPU machine or (``gpu`` None) a CPU one."""
    return {
        "benchmark": benchmark,
        "title": benchmark,
        "when": "now",
        "hardware": HARDWARE | {"gpu": gpu},
        "scale": SCALE | {"name": "gpu" if gpu else "cpu"},
        "columns": columns,
        "rows": rows,
        "notes": ["a note"],
    }


def test_report_judges_the_targets(tmp_path):
    """GPU results are judged against the targets; CPU-only results leave them not measured."""
    columns = [["method", "method", "{}"], ["ours_images_per_s", "images/s", "{:.1f}"]]
    rows = [{"method": "barlow_twins", "backbone": "resnet50", "ours_images_per_s": 3000.0,
             "speedup_vs_plain": 1.5, "speedup_vs_lightly": 2.0, "epoch_s": 33.1}]  # fmt: skip
    gpu = tmp_path / "gpu.json"
    gpu.write_text(
        json.dumps(_result("pretrain_throughput", "NVIDIA H100 80GB HBM3", rows, columns))
    )
    pipeline = [{"pipeline": "decode_resize", "cores": 1, "vs_torchvision": 1.2}]
    pipeline += [{"pipeline": "decode_resize + views", "cores": 1, "vs_torchvision": 0.8}]
    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps(_result("input_pipeline", None, pipeline, columns)))
    page = report(gpu, cpu, tmp_path=tmp_path)
    assert "images/s | 3000 images/s | yes |" in page
    assert "plain loop) | 1.50x | **no** |" in page  # 1.5x < 2x
    assert ">= 1.5x lightly | 2.00x | yes |" in page
    assert "< 60 s | 33 s | yes |" in page
    assert "per core | 1.20x (with the views made on this CPU as well: 0.80x) | **no** |" in page
    assert "NVIDIA H100 80GB HBM3 (80 GiB)" in page and "No GPU was available" not in page
    assert "| barlow_twins | 3000.0 |" in page and "- a note" in page


def test_report_rejects_a_file_that_is_not_a_result(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    command = [sys.executable, str(BENCHMARKS / "report.py"), "--json", str(bad), "--out", "x"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "is not a benchmark result" in done.stderr
