"""Benchmarks run in ``nox -s bench`` and on a GPU with ``benchmarks/gpu/run.sh``, never here.
The dry run of that GPU kit (the same stages on CPU at tiny sizes, one step) runs once per
module: it keeps the kit and every script from rotting, and the tests below check the JSON it
writes and the page report.py makes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl4gie.methods import METHODS

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
HAVE_LIGHTLY = importlib.util.find_spec("lightly") is not None  # the bench extra
STAGES = ["gpu_checks", "input_pipeline", "pretrain_throughput", "pretrain_steps", "fast_path",
          "finetune_steps", "load_backbone"]  # fmt: skip


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``bash benchmarks/gpu/run.sh --dry-run OUT``: (OUT, the finished process)."""
    out = tmp_path_factory.mktemp("gpu-kit")
    env = os.environ | {"PYTHON": sys.executable, "PAGE": str(out / "page.md"), "DEADLINE": "900"}
    command = ["bash", str(BENCHMARKS / "gpu" / "run.sh"), "--dry-run", str(out / "results")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    return out, done


def result(dry_run, script: str) -> dict:
    """The JSON the dry run's stage ``script`` wrote, checked for what every result holds."""
    out, done = dry_run
    path = out / "results" / f"{script}.json"
    assert path.is_file(), done.stdout[-3000:]
    payload = json.loads(path.read_text())
    assert payload["benchmark"] == script and payload["hardware"]["cpu_cores"] >= 1
    assert payload["scale"]["name"] == "cpu" and payload["hardware"]["gpu"] is None
    return payload


def report(*paths: Path, tmp_path: Path) -> str:
    """Run report.py on result files; return the page."""
    page = tmp_path / "benchmarks.md"
    command = [sys.executable, str(BENCHMARKS / "report.py"), "--json", *map(str, paths)]
    subprocess.run([*command, "--out", str(page)], check=True, capture_output=True, timeout=60)
    return page.read_text()


@pytest.mark.slow  # the dry run of the GPU kit, once per module
def test_gpu_kit_dry_run(dry_run):
    """Every stage runs and writes its JSON, with timestamped progress lines, every GPU code
    path is checked (a step and the views of every method), and the page is made."""
    out, done = dry_run
    assert done.returncode == 0, done.stdout[-3000:]
    log = (out / "results" / "log.txt").read_text()
    for stage in ["checks", *STAGES[1:]]:
        assert re.search(rf"^\[\d\d:\d\d:\d\d \+\d+s\] done {stage}$", log, re.M), stage
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == sorted(STAGES)
    rows = {row["check"]: row for row in result(dry_run, "gpu_checks")["rows"]}
    expected = ["decode on device", "decode_on_device batch"]
    expected += [f"{kind} {name}" for kind in ("views", "step") for name in sorted(METHODS)]
    assert list(rows) == expected  # no compile row on CPU without --compile
    assert all(row["result"] == "ok" for row in rows.values()), rows
    assert "## Targets" in done.stdout and "0 stage(s) failed" in done.stdout
    page = (out / "page.md").read_text()
    assert "## GPU code paths (CPU)" in page and "## Input pipeline alone (CPU)" in page


@pytest.mark.slow
def test_input_pipeline(dry_run):
    rows = result(dry_run, "input_pipeline")["rows"]
    lightly = [("original", "lightly")] if HAVE_LIGHTLY else []
    assert [(row["input"], row["pipeline"]) for row in rows] == [
        ("fit 73", "decode+resize"), ("fit 73", "+ views (cpu)"),  # 16/7 and 8/7 of 32 px
        ("squash 36", "decode+resize"), ("squash 36", "+ views (cpu)"),
        ("original", "torchvision"), *lightly,
    ]  # fmt: skip
    assert all(row["images_per_s"] > 0 and row["cores"] == 1 for row in rows)
    assert all(row["frames"] == "80x64" for row in rows)
    assert rows[4]["vs_torchvision"] == pytest.approx(1.0)
    # 32 px views of a 36 px square: a crop needs >= 79 % of it not to be upsampled
    assert rows[2]["upsampled"] > 0.8 > rows[0]["upsampled"]
    assert all(row["upsampled"] <= row["upsampled_side"] for row in rows)


@pytest.mark.slow
def test_pretrain_throughput(dry_run):
    (byol,) = result(dry_run, "pretrain_throughput")["rows"]
    assert byol["ours_images_per_s"] > 0 and byol["plain_images_per_s"] > 0
    assert byol["fidelity_cost"] == pytest.approx(
        1 - byol["ours_images_per_s"] / byol["squash_images_per_s"]
    )
    if HAVE_LIGHTLY:
        lightly = byol["lightly_images_per_s"]
        assert byol["speedup_vs_lightly"] == pytest.approx(byol["ours_images_per_s"] / lightly)
    assert byol["epoch_s"] == pytest.approx(99_417 / byol["ours_images_per_s"])


@pytest.mark.slow
def test_pretrain_steps(dry_run, tmp_path):
    simclr, mae = result(dry_run, "pretrain_steps")["rows"]
    for key in ("lightning_s", "views_s", "fwd_bwd_s", "plain_s", "gflop"):
        assert simclr[key] > 0, key
    assert (simclr.get("lightly_s", 0) > 0) is HAVE_LIGHTLY
    assert simclr["images_per_s"] == pytest.approx(4 / simclr["lightning_s"])
    assert simclr["mfu"] is None and simclr["syncs_per_step"] is None  # CPU
    assert "VisionTransformer" in mae["error"]  # MAE needs a ViT: a row saying why
    page = report(dry_run[0] / "results" / "pretrain_steps.json", tmp_path=tmp_path)
    assert "| simclr | test_resnet |" in page and "not measured (no GPU)" in page


@pytest.mark.slow
def test_fast_path(dry_run):
    rows = result(dry_run, "fast_path")["rows"]
    switches = [row["switch"] for row in rows]
    assert switches == [
        "all off", "channels_last", "foreach", "all on",  # LARS: no fused kernel; CPU: no bf16
        "defaults", "decode_on_device", "no persistent workers",  # no pinned memory on CPU
    ]  # fmt: skip
    assert all(row["images_per_s"] > 0 and "error" not in row for row in rows)
    assert rows[0]["speedup"] == 1.0 and rows[4]["speedup"] == 1.0


@pytest.mark.slow
def test_finetune_steps(dry_run):
    rows = result(dry_run, "finetune_steps")["rows"]
    assert [row["task"] for row in rows] == ["classification", "detection"]
    assert all(row["step_s"] > 0 and row["batch"] == 2 for row in rows)


@pytest.mark.slow
def test_load_backbone(dry_run):
    (row,) = result(dry_run, "load_backbone")["rows"]
    assert row["create_s"] > 0 and row["folder_s"] > 0 and row["hub_cache_s"] > 0
    assert row["megabytes"] == pytest.approx(46.8, rel=0.05)  # resnet18 fp32: 11.7M parameters


@pytest.fixture(scope="module")
def input_pipeline():
    """benchmarks/input_pipeline.py as a module."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import input_pipeline

        yield input_pipeline
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("region", [(0, 0, 256, 256), (0, 0, 512, 410), (0, 0, 720, 576)])
def test_crops_upsampled_match_torchvision(input_pipeline, region):
    """The library's crop sampler on a region upsamples as many 224 px crops as torchvision's
    RandomResizedCrop on a frame of the region's size (4,000 crops each: 1-2 % noise)."""
    height, width = region[3], region[2]
    ours = input_pipeline.library_crops(torch.tensor(region, dtype=torch.float32), 4000)
    theirs = input_pipeline.torchvision_crops(height, width, 4000)
    for key, value in input_pipeline.upsampled(ours, 224).items():
        assert value == pytest.approx(input_pipeline.upsampled(theirs, 224)[key], abs=0.03), key


def test_upsampled_counts_by_area_and_by_side(input_pipeline):
    boxes = torch.tensor([[0, 0, 300, 300], [0, 0, 300, 200], [0, 0, 250, 150], [0, 0, 100, 100]])
    # sqrt of the areas: 300, 245, 194, 100 px; shorter sides: 300, 200, 150, 100 px
    assert input_pipeline.upsampled(boxes.float(), 224) == {
        "upsampled": 0.5,
        "upsampled_side": 0.75,
    }


def test_input_region_of_each_input(input_pipeline):
    fit, squash = input_pipeline._common.pretrain_inputs(224).values()
    assert input_pipeline.input_region(squash, 576, 720).tolist() == [0, 0, 256, 256]
    assert input_pipeline.input_region(fit, 576, 720).tolist() == [0, 0, 512, 410]  # 409.6
    assert input_pipeline.input_region(fit, 300, 400).tolist() == [0, 0, 400, 300]  # no upsampling


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
             "speedup_vs_plain": 1.5, "speedup_vs_lightly": 2.0, "epoch_s": 33.1,
             "fidelity_cost": 0.04}]  # fmt: skip
    gpu = tmp_path / "gpu.json"
    gpu.write_text(
        json.dumps(_result("pretrain_throughput", "NVIDIA H100 80GB HBM3", rows, columns))
    )
    common = {"frames": "720x576", "cores": 1}
    pipeline = [common | {"input": "fit 512", "pipeline": "decode+resize", "vs_torchvision": 9.0}]
    pipeline += [common | {"input": "fit 512", "pipeline": "+ views (cpu)", "vs_torchvision": 0.8}]
    pipeline += [
        common | {"input": "squash 256", "pipeline": "decode+resize", "vs_torchvision": 12.6}
    ]
    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps(_result("input_pipeline", None, pipeline, columns)))
    page = report(gpu, cpu, tmp_path=tmp_path)
    assert "images/s | 3000 images/s | yes |" in page
    assert "plain loop) | 1.50x | **no** |" in page  # 1.5x < 2x
    assert ">= 1.5x lightly | 2.00x | yes |" in page
    assert "< 60 s | 33 s | yes |" in page
    assert "data pipeline included | +4.0% | yes |" in page
    detail = "(720x576 frames, fit 512; old input (squash 256): 12.60x; with the views made on "
    assert f"per core | 9.00x {detail}this CPU as well: 0.80x) | yes |" in page
    assert "NVIDIA H100 80GB HBM3 (80 GiB)" in page and "No GPU was available" not in page
    assert "| barlow_twins | 3000.0 |" in page and "- a note" in page


def test_report_keeps_the_cpu_and_gpu_results_of_one_benchmark(tmp_path):
    """Both scales of a benchmark get a section (GPU first); the GPU targets read the GPU one."""
    columns = [["method", "method", "{}"], ["ours_images_per_s", "images/s", "{:.1f}"]]
    paths = []
    for gpu, rate, backbone in (("NVIDIA H100", 2000.0, "resnet50"), (None, 20.0, "resnet18")):
        row = {"method": "barlow_twins", "backbone": backbone, "ours_images_per_s": rate}
        paths.append(tmp_path / f"{gpu}.json")
        paths[-1].write_text(json.dumps(_result("pretrain_throughput", gpu, [row], columns)))
    page = report(*reversed(paths), tmp_path=tmp_path)
    assert "images/s | 2000 images/s | **no** |" in page  # 2000 < 2500, from the GPU file
    gpu_section = page.index("## pretrain_throughput (NVIDIA H100)")
    assert gpu_section < page.index("## pretrain_throughput (CPU)")
    assert "| barlow_twins | 20.0 |" in page and "| barlow_twins | 2000.0 |" in page


def test_report_rejects_a_file_that_is_not_a_result(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    command = [sys.executable, str(BENCHMARKS / "report.py"), "--json", str(bad), "--out", "x"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "is not a benchmark result" in done.stderr
