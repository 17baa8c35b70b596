"""Every script in ``examples/`` runs top to bottom in smoke mode, so the examples cannot rot.

Each runs in its own subprocess (``python examples/<name>.py --smoke --out <tmp>``) with the
network off; two at a time, one thread each, to keep the module near a minute on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
OUTPUTS = {  # example -> files it must write under --out
    "extract_features": ["embedding.png", "features.pt"],
    "pretrain_barlow_twins": ["last.ckpt", "export/model.safetensors", "export/README.md"],
    "finetune_polyp_segmentation": ["predictions.png"],
    "compare_backbones_linear_probe": ["results.json", "comparison.png"],
    "export_and_publish": ["resnet18-barlow-smoke/model.safetensors"],
}
SCRIPTS = sorted(path.stem for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))


def _run(name: str, out: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "XDG_CACHE_HOME": str(out / "xdg-cache"),
    }
    command = [sys.executable, str(EXAMPLES / f"{name}.py"), "--smoke", "--out", str(out)]
    return subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Run every example once, two at a time; name -> (finished process, its --out folder)."""
    root = tmp_path_factory.mktemp("examples")
    outs = {name: root / name for name in SCRIPTS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(SCRIPTS, pool.map(_run, SCRIPTS, outs.values()), strict=True))
    return {name: (done[name], outs[name]) for name in SCRIPTS}


def test_every_example_is_checked():
    assert set(SCRIPTS) == set(OUTPUTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_example_runs_in_smoke_mode(runs, name):
    finished, out = runs[name]
    assert finished.returncode == 0, finished.stderr[-3000:]
    for relative in OUTPUTS[name]:
        assert (out / relative).stat().st_size > 100, relative
