"""The Hub download path through huggingface_hub's own client, against a local olah mirror.

olah (a self-hosted Hub mirror, a test-only dependency) serves a git repository holding an
exported backbone on 127.0.0.1, and ``HF_ENDPOINT`` points the real client at it.
huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` at import, so each load runs in a
fresh process. See ``shared/NOTES-hub.md``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .conftest import features

OLAH = shutil.which("olah-cli") or str(Path(sys.executable).with_name("olah-cli"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(OLAH).exists() and shutil.which("git")), reason="needs olah (dev extra) and git"
    ),
]
REPO = "ssl4gie-test/resnet18-simclr-hk"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _git_repo(folder: Path, files: Path) -> str:
    """Commit ``files``' contents as a git repository at ``folder``; return the commit sha."""
    shutil.copytree(files, folder)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "weights"]):
        subprocess.run([*git, *args], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


@contextlib.contextmanager
def olah_mirror(tmp_path: Path, export: Path) -> Iterator[tuple[str, str]]:
    """Serve ``export`` as ``REPO`` on 127.0.0.1; yield (endpoint, commit sha)."""
    mirrors, port = tmp_path / "mirrors", _free_port()
    sha = _git_repo(mirrors / "models" / REPO, export)
    config = tmp_path / "olah.toml"
    config.write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{tmp_path / "repos"}"\n'
        'hf-scheme = "http"\nhf-netloc = "127.0.0.1:9"\nhf-lfs-netloc = "127.0.0.1:9"\n'
        f'mirror-scheme = "http"\nmirror-netloc = "127.0.0.1:{port}"\n'
        f'mirror-lfs-netloc = "127.0.0.1:{port}"\nmirrors-path = ["{mirrors}"]\n'
        "[accessibility]\noffline = true\n"
    )
    server = subprocess.Popen(
        [OLAH, "-c", str(config), "--log-path", str(tmp_path / "logs")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{endpoint}/api/models/{REPO}/revision/main")
        yield endpoint, sha
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_ready(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.2)
    pytest.fail(f"olah did not answer {url} within {seconds} s")


LOAD = """
import sys, torch, ssl4gie
model = ssl4gie.load_backbone(sys.argv[1]).eval()
generator = torch.Generator().manual_seed(1)
with torch.no_grad():
    out = model(torch.randn(2, 3, 64, 64, generator=generator))
torch.save(out, sys.argv[2])
"""


def _load_in_fresh_process(source: str, out: Path, env: dict[str, str]) -> torch.Tensor:
    subprocess.run([sys.executable, "-c", LOAD, source, str(out)], env=env, check=True,
                   timeout=240)  # fmt: skip
    return torch.load(out, weights_only=True)


def test_load_backbone_downloads_through_the_hub_client(resnet18_export, tmp_path):
    export, model = resnet18_export
    with olah_mirror(tmp_path, export) as (endpoint, sha):
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")}
        env.pop("HF_HUB_OFFLINE")
        downloaded = _load_in_fresh_process(f"hf-hub:{REPO}", tmp_path / "a.pt", env)
        pinned = _load_in_fresh_process(f"hf-hub:{REPO}@{sha}", tmp_path / "b.pt", env)
    snapshot = tmp_path / "hf" / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / sha
    assert (snapshot / "model.safetensors").exists()
    assert torch.allclose(downloaded, features(model), atol=1e-6)
    assert torch.equal(downloaded, pinned)
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    cached = _load_in_fresh_process(f"hf-hub:{REPO}", tmp_path / "c.pt", offline)
    assert torch.equal(downloaded, cached)  # the server is gone: served from the cache
