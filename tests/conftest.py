import os
import tempfile
from pathlib import Path

# Read by huggingface_hub at import: must be set before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Keep index caches and downloads of the whole session out of the real ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ssl4gie-test-cache-")

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """``synthetic(layout, n=32, size=64, seed=0) -> root``: a synthetic dataset in the layout's
    real on-disk form, written once per test session and shared (treat it as read-only)."""
    from ssl4gie.data.synthetic import synthesize

    made = {}

    def make(layout: str, n: int = 32, size: int = 64, seed: int = 0):
        key = (layout, n, size, seed)
        if key not in made:
            root = tmp_path_factory.mktemp(layout) / "data"
            made[key] = synthesize(layout, root, n=n, size=size, seed=seed, progress=False)
        return made[key]

    return make


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (tiny models: OpenMP hand-offs cost more than help)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def landmarks_datamodule(synthetic):
    """A ClassificationDataModule of 92 synthetic HyperKvasir frames, landmark task, 32 px,
    batches of 4, no workers."""
    from ssl4gie.data.datamodules import ClassificationDataModule

    root = str(synthetic("hyperkvasir-labeled", n=92))
    return ClassificationDataModule(
        root, options={"task": "landmarks"}, size=32, batch_size=4, num_workers=0
    )


REALDATA = Path(
    os.environ.get("SSL4GIE_REALDATA", Path(__file__).parents[2] / "shared" / "realdata")
)


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real frames (Kvasir-SEG, HyperKvasir, CVC-ClinicDB, C3VD) beside the
    checkout (``../shared/realdata``) or at ``$SSL4GIE_REALDATA``; read-only. Tests using it are
    marked ``realdata`` and skip with one line where it is absent (a plain clone)."""
    if not REALDATA.is_dir():
        pytest.skip(f"no real frames at {REALDATA} (set SSL4GIE_REALDATA)")
    return REALDATA
